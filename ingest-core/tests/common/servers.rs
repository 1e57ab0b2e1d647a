//! Real storage servers for integration tests, started and stopped by the tests themselves:
//! Azurite (Azure Blob, from npm) and s3s-fs (S3 with signatures and conditional writes, from
//! crates.io). `bash .ci/install-deps` installs both; a missing binary fails the test with the
//! command that installs it (a test never passes by skipping).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::proxy::Front;

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const S3_ACCESS_KEY: &str = "ingest-test-access";
pub const S3_SECRET_KEY: &str = "ingest-test-secret-key";

fn found(binary: &str) -> bool {
    Command::new(binary)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The binary, when installed. A missing one fails the test with the command that installs
/// it: a test never passes by skipping.
pub fn binary(name: &str, install: &str) -> String {
    assert!(
        found(name),
        "{name} is not installed; run `{install}` (or `bash .ci/install-deps`)"
    );
    name.to_string()
}

/// Checks that Python can import `module`; a missing one fails the test with the command that
/// installs it.
#[allow(dead_code)] // not every test binary reads files back with Python
pub fn python_module(module: &str, install: &str) {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "Python's {module} is not installed; run `{install}` (or `bash .ci/install-deps`)"
    );
}

/// Runs `scripts/<script>` (a DuckDB reader) with `args`; its output, one JSON value a line.
pub fn duckdb_script(script: &str, args: &[&str]) -> Vec<serde_json::Value> {
    python_module("duckdb", "pip install duckdb");
    python_script(script, args)
}

/// Runs `scripts/<script>` with `args`; the lines of its output that are JSON objects, parsed
/// (Spark and other tools may print their own lines too). A failing script fails the test with
/// its stderr.
pub fn python_script(script: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .arg(format!(
            "{}/../scripts/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which store a server is, with what the service and the tests need to reach it.
pub trait Server {
    /// `INGEST_STORAGE_URL` and the credential variables for the service.
    fn env(&self, container: &str, prefix: &str) -> Vec<(String, String)>;
    /// Creates a bucket or container (the service never does).
    fn create_container(&self, name: &str);
    /// Stops the server (an outage); data on disk survives.
    fn stop(&mut self);
    /// Starts it again on the same port and data.
    fn restart(&mut self);
}

/// Azurite's blob service, persisting to a temporary directory so it survives a restart.
pub struct Azurite {
    child: Option<Child>,
    pub port: u16,
    binary: String,
    dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let binary = binary("azurite-blob", "npm install -g azurite@3.37.0");
        let mut a = Azurite {
            child: None,
            port: free_port(),
            binary,
            dir: tempfile::tempdir().unwrap(),
        };
        a.restart();
        a
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};",
            self.port
        )
    }

    /// Runs a line of Python with the Azure SDK (`azure-storage-blob`, installed by
    /// `.ci/install-deps`) against this Azurite; returns its stdout.
    pub fn python(&self, code: &str) -> String {
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "from azure.storage.blob import *\nimport datetime, sys\ncs = sys.argv[1]\n{code}"
            ))
            .arg(self.connection_string())
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A SAS token for one container with read, write, create, delete and list.
    pub fn container_sas(&self, container: &str) -> String {
        self.container_sas_listing(container, true)
    }

    /// A SAS token for one container with read, write, create and delete, and list if `list`.
    pub fn container_sas_listing(&self, container: &str, list: bool) -> String {
        let list = if list { "True" } else { "False" };
        self.python(&format!(
            "print(generate_container_sas('{AZURITE_ACCOUNT}', '{container}', account_key='{AZURITE_KEY}', \
             permission=ContainerSasPermissions(read=True, write=True, create=True, delete=True, list={list}), \
             expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)))"
        ))
    }
}

impl Server for Azurite {
    fn env(&self, container: &str, prefix: &str) -> Vec<(String, String)> {
        vec![
            (
                "INGEST_STORAGE_URL".into(),
                format!("az://{container}/{prefix}"),
            ),
            (
                "AZURE_STORAGE_CONNECTION_STRING".into(),
                self.connection_string(),
            ),
        ]
    }

    fn create_container(&self, name: &str) {
        self.python(&format!(
            "BlobServiceClient.from_connection_string(cs).create_container('{name}')"
        ));
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: Azurite saves its metadata database on the way out.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        let mut child = Command::new(&self.binary)
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string())
            .arg("--location")
            .arg(self.dir.path())
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        wait_listening(self.port, &mut child, "azurite-blob");
        self.child = Some(child);
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh lowercase name valid as a bucket and as a container.
pub fn bucket_name(prefix: &str) -> String {
    super::unique(prefix).to_ascii_lowercase().replace('_', "-")
}

/// `vars` landing in the store `store_env` names (a server's [`Server::env`], or
/// [`s3_env`] through a proxy) instead of local disk.
pub fn landing_in(
    vars: &[(String, String)],
    store_env: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut vars = vars.to_vec();
    vars.retain(|(k, _)| k != "INGEST_STORAGE_URL");
    vars.extend(store_env);
    vars
}

/// The service's environment for an S3 server on `127.0.0.1:port` with static keys.
pub fn s3_env(
    bucket: &str,
    prefix: &str,
    port: u16,
    (key, secret): (&str, &str),
) -> Vec<(String, String)> {
    [
        ("INGEST_STORAGE_URL", format!("s3://{bucket}/{prefix}")),
        ("AWS_ACCESS_KEY_ID", key.into()),
        ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// s3s-fs: an S3 server on a local directory (buckets are its subdirectories), checking
/// SigV4 signatures and honouring `If-None-Match: *`, behind a [`Front`] that makes those
/// creates atomic, as S3's are (s3s-fs alone lets two creates of one key at once both succeed).
pub struct S3Fs {
    child: Option<Child>,
    front: Option<Front>,
    /// The front's port: where clients connect.
    pub port: u16,
    /// s3s-fs's own port.
    pub server_port: u16,
    binary: String,
    pub root: tempfile::TempDir,
}

impl S3Fs {
    pub fn start() -> S3Fs {
        let binary = binary(
            "s3s-fs",
            "cargo install s3s-fs --version 0.14.1 --locked --features binary",
        );
        let mut s = S3Fs {
            child: None,
            front: None,
            port: free_port(),
            server_port: free_port(),
            binary,
            root: tempfile::tempdir().unwrap(),
        };
        s.restart();
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Multipart parts s3s-fs still holds (uploads neither completed nor aborted).
    pub fn leftover_parts(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".upload_id-"))
            .collect()
    }
}

impl Server for S3Fs {
    fn env(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        s3_env(bucket, prefix, self.port, (S3_ACCESS_KEY, S3_SECRET_KEY))
    }

    fn create_container(&self, name: &str) {
        std::fs::create_dir(self.root.path().join(name)).unwrap();
    }

    fn stop(&mut self) {
        self.front = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        let mut child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.server_port.to_string())
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        wait_listening(self.server_port, &mut child, "s3s-fs");
        self.child = Some(child);
        self.front = Some(Front::start(self.port, self.server_port));
    }
}

impl Drop for S3Fs {
    fn drop(&mut self) {
        self.front = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A client of the store the service wrote to, for reading back what landed.
pub fn reader(env: &[(String, String)]) -> Arc<dyn ObjectStore> {
    let config = ingest::Config::from_pairs(
        env.iter()
            .filter(|(k, _)| k != "INGEST_TOPIC" && k != "INGEST_KAFKA_BOOTSTRAP_SERVERS")
            .cloned()
            .chain([
                ("INGEST_TOPIC".to_string(), "reader".to_string()),
                (
                    "INGEST_KAFKA_BOOTSTRAP_SERVERS".to_string(),
                    "unused:9092".to_string(),
                ),
            ]),
    )
    .expect("valid storage settings");
    ingest::storage::Storage::from_config(&config)
        .expect("store builds")
        .object_store()
}

/// Every object under the store's root: path → (e_tag, last_modified, size).
pub async fn listing(store: &Arc<dyn ObjectStore>) -> BTreeMap<String, (Option<String>, i64, u64)> {
    store
        .list(None)
        .map_ok(|m| {
            (
                m.location.to_string(),
                (m.e_tag, m.last_modified.timestamp_millis(), m.size),
            )
        })
        .try_collect()
        .await
        .unwrap()
}

/// Downloads everything under `prefix` into `dir`, so the local-disk readers apply.
pub async fn mirror(store: &Arc<dyn ObjectStore>, prefix: &str, dir: &FsPath) -> Vec<PathBuf> {
    let metas: Vec<_> = store
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut written = Vec::new();
    for meta in metas {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let path = dir.join(meta.location.as_ref());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        written.push(path);
    }
    written
}

/// s3rver (npm): an S3 server that ignores `If-None-Match` and overwrites, standing in for
/// stores without conditional writes. Accepts the access key pair `S3RVER` / `S3RVER`.
pub struct S3rver {
    child: Option<Child>,
    pub port: u16,
    root: tempfile::TempDir,
}

impl S3rver {
    pub fn start() -> S3rver {
        let binary = binary("s3rver", "npm install -g s3rver@3.7.1");
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(binary)
            .arg("-d")
            .arg(root.path())
            .args(["-a", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .arg("--silent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3rver starts");
        wait_listening(port, &mut child, "s3rver");
        S3rver {
            child: Some(child),
            port,
            root,
        }
    }
}

impl Server for S3rver {
    /// With `INGEST_ACCEPT_AT_LEAST_ONCE=true`: without it the service refuses such a store.
    fn env(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        let mut env = s3_env(bucket, prefix, self.port, ("S3RVER", "S3RVER"));
        env.push(("INGEST_ACCEPT_AT_LEAST_ONCE".into(), "true".into()));
        env
    }

    fn create_container(&self, name: &str) {
        // s3rver keeps each bucket as a directory of its data directory.
        std::fs::create_dir(self.root.path().join(name)).unwrap();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        unimplemented!("the tests do not restart s3rver")
    }
}

impl Drop for S3rver {
    fn drop(&mut self) {
        self.stop();
    }
}

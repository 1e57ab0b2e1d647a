//! The benchmark's child processes (broker and sink, each this binary under a subcommand) and
//! what `/proc` tells about them: CPU time (utime + stime) and peak RSS (`VmHWM`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{bail, Context as _};
use serde::Serialize;

/// A broker process; stops when dropped (its stdin closes, then it is killed).
pub struct BrokerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pub bootstrap: String,
}

impl BrokerProcess {
    pub fn start(topic: &str, partitions: i32) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "broker",
                "--topic",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the broker process")?;
        let stdout = child.stdout.take().context("broker stdout")?;
        let mut bootstrap = String::new();
        BufReader::new(stdout).read_line(&mut bootstrap)?;
        let bootstrap = bootstrap.trim().to_string();
        if bootstrap.is_empty() {
            bail!("the broker process exited before printing its address");
        }
        let stdin = child.stdin.take();
        Ok(BrokerProcess {
            child,
            stdin,
            bootstrap,
        })
    }
}

impl BrokerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment the service's image sets for the process itself (the Dockerfile's `ENV`,
/// checked by a test), so the sink runs as deployed; `--set` overrides it.
pub const IMAGE_ENV: &[(&str, &str)] = &[("MALLOC_ARENA_MAX", "1")];

/// The sink under test: `ingest::run()` in its own process, configured only by `IMAGE_ENV` and
/// `vars` (any `INGEST_*` of the caller's environment is removed so defaults are really
/// defaults).
pub struct SinkProcess {
    child: Child,
    /// SIGTERM was sent (a second one would make it exit at once, code 130).
    signalled: bool,
}

impl SinkProcess {
    pub fn start(vars: &[(String, String)], log: &Path) -> anyhow::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("sink")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("INGEST_")) {
            cmd.env_remove(k);
        }
        cmd.envs(IMAGE_ENV.iter().copied());
        cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        Ok(SinkProcess {
            child: cmd.spawn().context("cannot start the sink process")?,
            signalled: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the sink has exited unasked.
    pub fn check_running(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!("the sink exited early ({status}): {}", tail.join(" | "));
        }
        Ok(())
    }

    /// Sends SIGTERM: the sink stops fetching, flushes every buffer, commits and exits 0.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        if std::mem::replace(&mut self.signalled, true) {
            return Ok(());
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("cannot signal the sink (pid {})", self.child.id());
        }
        Ok(())
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()?;
        let exit = self.child.wait()?;
        if !exit.success() {
            bail!("the sink exited with {exit} after SIGTERM");
        }
        Ok(())
    }
}

/// CPU seconds (user + system, all threads) a live process has used.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let fields = stat_fields(pid)?;
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks())
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces), from the
/// state (field 3) on.
fn stat_fields(pid: u32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(") ").context("malformed /proc stat")?.1;
    let fields: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
    anyhow::ensure!(fields.len() > 12, "short /proc stat");
    Ok(fields)
}

/// Minor page faults of the whole process, and context switches (voluntary and not) summed
/// over its live threads.
pub fn kernel_counts(pid: u32) -> anyhow::Result<(u64, u64)> {
    let minflt: u64 = stat_fields(pid)?[7].parse()?;
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        switches += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok((minflt, switches))
}

/// A process's CPU seconds by what its threads do, read off each live thread's
/// `/proc/<pid>/task/<tid>/stat`; threads that already ended are in neither.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ThreadCpu {
    /// The main thread: the service's loop (intake into the batches, starting flushes).
    pub main_loop: f64,
    /// librdkafka's own threads (`rdk:*`: fetching and parsing, the group).
    pub librdkafka: f64,
    /// tokio's workers and blocking threads (`tokio-rt-worker`: encoding, compressing, uploads).
    pub workers: f64,
    /// Any other live thread.
    pub other: f64,
}

pub fn thread_cpu(pid: u32) -> anyhow::Result<ThreadCpu> {
    let ticks = clock_ticks();
    let mut cpu = ThreadCpu::default();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?;
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (Some((head, rest)), Some(tid)) = (
            stat.rsplit_once(") "),
            task.file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok()),
        ) else {
            continue;
        };
        let name = head.split_once(" (").map_or("", |(_, n)| n);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let Some(seconds) = fields
            .get(11..13)
            .and_then(|f| Some(f[0].parse::<u64>().ok()? + f[1].parse::<u64>().ok()?))
            .map(|t| t as f64 / ticks)
        else {
            continue;
        };
        let slot = if tid == pid {
            &mut cpu.main_loop
        } else if name.starts_with("rdk:") {
            &mut cpu.librdkafka
        } else if name == "tokio-rt-worker" {
            &mut cpu.workers
        } else {
            &mut cpu.other
        };
        *slot += seconds;
    }
    Ok(cpu)
}

/// The CPU time this thread has run, in seconds (`/proc/thread-self/schedstat`, nanoseconds):
/// unlike the wall clock, it does not count the time a shared or virtual core spent elsewhere.
pub fn thread_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .context("malformed /proc/thread-self/schedstat")?;
    Ok(ns as f64 / 1e9)
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `/proc/<pid>/status` field in bytes (`VmHWM` peak RSS, `VmRSS` current).
pub fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb: u64 = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

/// This machine in one line: cores, CPU model, memory.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|s| s.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{cores} cores ({model}), {mem_gb:.1} GiB memory")
}

/// A free local port for the sink's `/metrics` endpoint.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Reads one counter from the sink's Prometheus endpoint; `None` while it is not up yet.
pub fn scrape(port: u16, metric: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(
        body.lines()
            .find_map(|l| {
                l.strip_prefix(metric)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::IMAGE_ENV;

    #[test]
    fn a_thread_counts_by_its_name() {
        // Two busy threads named as librdkafka's and tokio's are, each until it has run 0.5 s,
        // then parked while the process is read.
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        let (ready, busy) = std::sync::mpsc::channel();
        for name in ["rdk:busy", "tokio-rt-worker"] {
            let (ready, wait) = (ready.clone(), std::sync::Arc::clone(&wait));
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    while super::thread_cpu_seconds().unwrap() < 0.5 {}
                    ready.send(()).unwrap();
                    let _ = wait.lock().unwrap().recv();
                })
                .unwrap();
        }
        busy.recv().unwrap();
        busy.recv().unwrap();
        let cpu = super::thread_cpu(std::process::id()).unwrap();
        drop(done);
        assert!(cpu.librdkafka >= 0.3, "{cpu:?}");
        assert!(cpu.workers >= 0.3, "{cpu:?}");
        // The test itself runs on a thread of the harness, not the main one.
        assert!(cpu.librdkafka < 2.0 && cpu.workers < 2.0, "{cpu:?}");
    }

    #[test]
    fn the_sink_runs_with_the_environment_the_image_sets() {
        let dockerfile = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"),
        )
        .unwrap();
        let runtime = dockerfile.rsplit("FROM ").next().unwrap();
        let set: Vec<&str> = runtime
            .lines()
            .map(|l| {
                l.trim()
                    .trim_start_matches("ENV ")
                    .trim_end_matches('\\')
                    .trim()
            })
            .collect();
        for (k, v) in IMAGE_ENV {
            assert!(
                set.contains(&format!("{k}={v}").as_str()),
                "the runtime image sets {k}={v}, as the benchmark's sink runs"
            );
        }
    }
}

use super::*;
use crate::config::defaults;
use crate::config::tests::with;

#[test]
fn plain_absolute_paths_and_cloud_urls_are_accepted() {
    assert_eq!(
        with(&[("INGEST_STORAGE_URL", "/data/lake")])
            .unwrap()
            .storage_url
            .as_str(),
        "file:///data/lake/"
    );
    for url in [
        "s3://bucket/prefix",
        "az://container/prefix",
        "abfss://c@acct.dfs.core.windows.net/p",
    ] {
        assert!(with(&[("INGEST_STORAGE_URL", url)]).is_ok(), "{url}");
    }
}

#[test]
fn cloud_variables_reach_the_storage_settings_and_stay_hidden() {
    let c = with(&[
        ("INGEST_STORAGE_URL", "s3://lake/raw"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_SECRET_ACCESS_KEY", "hunter2"),
        ("UNRELATED", "x"),
    ])
    .unwrap();
    assert_eq!(c.cloud_env.get("AWS_REGION"), Some("eu-west-1"));
    assert_eq!(c.cloud_env.get("UNRELATED"), None);
    assert!(c.azure_connection.is_none(), "only read for Azure URLs");
    let shown = format!("{c:?}");
    assert!(shown.contains("AWS_SECRET_ACCESS_KEY") && !shown.contains("hunter2"));
    assert_eq!(
        c.multipart,
        MultipartPolicy {
            threshold_bytes: defaults::MULTIPART_THRESHOLD_BYTES,
            part_bytes: defaults::MULTIPART_PART_BYTES,
        }
    );
}

#[test]
fn a_bad_connection_string_or_part_size_is_one_line_without_secrets() {
    let e = with(&[
        ("INGEST_STORAGE_URL", "az://raw/events"),
        ("AZURE_STORAGE_CONNECTION_STRING", "AccountKey=c2VjcmV0"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("AZURE_STORAGE_CONNECTION_STRING=*** is invalid")
            && e.contains("AccountKey needs AccountName"),
        "{e}"
    );
    assert!(!e.contains("c2VjcmV0") && !e.contains('\n'), "{e}");

    let e = with(&[("INGEST_MULTIPART_PART_BYTES", "1048576")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 5242880"), "{e}");
    let e = with(&[("INGEST_MULTIPART_THRESHOLD_BYTES", "6000000")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least INGEST_MULTIPART_PART_BYTES"), "{e}");
}

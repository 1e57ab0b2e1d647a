use crate::config::tests::with;

#[test]
fn batch_must_fit_the_buffer_cap() {
    let err = with(&[
        ("INGEST_FLUSH_MAX_BYTES", "2000"),
        ("INGEST_MAX_BUFFER_BYTES", "1000"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("INGEST_MAX_BUFFER_BYTES (1000)"), "{err}");
}

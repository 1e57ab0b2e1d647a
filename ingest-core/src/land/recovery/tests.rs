use super::*;

/// A claim of partition 2 of topic `t` over `first..=last`, as the land tests use.
pub(crate) fn claim(first: i64, last: i64) -> Claim {
    Claim {
        version: 1,
        topic: "t".into(),
        partition: 2,
        first_offset: first,
        last_offset: last,
        data: "t/dt=1970-01-01/hour=00/t+2+00000000000000000010.ndjson.gz".into(),
        dead_letters: "_dead_letters/t/x".into(),
        claimed_at_ms: 0,
        first_record: None,
        first_record_offset: None,
        last_record: None,
        cluster: None,
        encoding: None,
        files: Vec::new(),
        placed_by: None,
    }
}

fn meet(first: i64, last: i64) -> Meeting<'static> {
    Meeting {
        first,
        last,
        first_record: "",
        range_closed: false,
    }
}

#[test]
fn a_claim_whose_records_the_log_lost_is_gone_or_completed_with_what_is_left() {
    // Chain position 10, claim 10..=20; retention left our batch starting at 25.
    assert_eq!(
        decide("t", 2, 10, meet(25, 40), &claim(10, 20), false),
        Ok(Recovery::Gone { through: 20 })
    );
    // Its last records were compacted away and the consumer reached the log's end.
    let at_end = Meeting {
        range_closed: true,
        ..meet(12, 15)
    };
    assert_eq!(
        decide("t", 2, 10, at_end, &claim(10, 20), false),
        Ok(Recovery::Complete { through: 20 })
    );
}

#[test]
fn the_first_record_is_compared_only_at_its_claimed_offset() {
    let mut c = claim(10, 20);
    c.first_record = Some("00000000000000aa".into());
    c.first_record_offset = Some(12);
    let with = |first, digest| Meeting {
        first_record: digest,
        ..meet(first, 30)
    };
    let d = |m| decide("t", 2, 10, m, &c, false);
    assert_eq!(
        d(with(12, "00000000000000aa")),
        Ok(Recovery::Complete { through: 20 })
    );
    assert!(matches!(
        d(with(12, "00000000000000bb")),
        Err(ClaimMismatch::OtherRecords { .. })
    ));
    assert_eq!(
        d(with(14, "00000000000000bb")),
        Ok(Recovery::Complete { through: 20 }),
        "the claimed record was compacted away"
    );
    assert!(
        matches!(
            d(with(11, "00000000000000bb")),
            Err(ClaimMismatch::OtherRecords { .. })
        ),
        "a record the claimant never saw"
    );
}

#[test]
fn an_existing_file_means_skip_past_its_last_offset_whatever_our_batch_covers() {
    // Our batch may be shorter, equal or longer than the landed file; only the claim counts.
    for our_last in [12, 20, 35] {
        assert_eq!(
            decide("t", 2, 10, meet(10, our_last), &claim(10, 20), true),
            Ok(Recovery::AlreadyLanded { through: 20 })
        );
    }
}

#[test]
fn a_claim_without_its_file_is_completed_at_the_claimed_end() {
    assert_eq!(
        decide("t", 2, 10, meet(10, 20), &claim(10, 20), false),
        Ok(Recovery::Complete { through: 20 })
    );
    assert_eq!(
        decide("t", 2, 10, meet(10, 99), &claim(10, 20), false),
        Ok(Recovery::Complete { through: 20 })
    );
    assert_eq!(
        decide("t", 2, 10, meet(10, 15), &claim(10, 20), false),
        Ok(Recovery::NeedMore { through: 20 })
    );
}

#[test]
fn gaps_in_offsets_do_not_matter_because_nothing_is_counted() {
    // A claim over 10..=1000 may hold three records (compaction); the decision is the same.
    assert_eq!(
        decide("t", 2, 10, meet(10, 10), &claim(10, 1000), true),
        Ok(Recovery::AlreadyLanded { through: 1000 })
    );
}

#[test]
fn claims_for_another_batch_or_from_the_future_are_refused() {
    assert!(matches!(
        decide("t", 3, 10, meet(10, 20), &claim(10, 20), true),
        Err(ClaimMismatch::WrongBatch { .. })
    ));
    assert!(matches!(
        decide("t", 2, 10, meet(10, 20), &claim(10, 5), true),
        Err(ClaimMismatch::Inverted { .. })
    ));
    let mut newer = claim(10, 20);
    newer.version = 3;
    assert_eq!(
        decide("t", 2, 10, meet(10, 20), &newer, true),
        Err(ClaimMismatch::Version(3))
    );
}

#[test]
fn claims_round_trip_through_json() {
    let c = claim(10, 20);
    let json = serde_json::to_vec(&c).unwrap();
    assert_eq!(serde_json::from_slice::<Claim>(&json).unwrap(), c);
    let full = Claim {
        first_record: Some("00112233445566ff".into()),
        encoding: Some(ClaimedEncoding::new(&super::super::claimed::Encoding {
            envelope: crate::config::Envelope::Metadata,
            compression: crate::config::Compression::Gzip { level: 3 },
            format: crate::config::Format::Ndjson,
        })),
        ..claim(10, 20)
    };
    let json = serde_json::to_vec(&full).unwrap();
    assert_eq!(serde_json::from_slice::<Claim>(&json).unwrap(), full);
}

fn record(key: &[u8], value: &[u8], ts: i64) -> crate::batch::Batch {
    let mut b = crate::batch::Batch::new(std::time::Instant::now(), 0);
    b.push(&crate::batch::RecordRef {
        offset: 10,
        timestamp_ms: Some(ts),
        key: Some(key),
        value: Some(value),
        headers: &[],
        flaw: None,
        cursor: None,
    });
    b
}

#[test]
fn a_claim_for_other_records_at_the_same_offset_is_told_apart() {
    let digest = |b: &crate::batch::Batch| record_digest(&b.records().next().unwrap());
    let ours = digest(&record(b"k", b"{\"a\":1}", 1_000));
    assert_eq!(ours, digest(&record(b"k", b"{\"a\":1}", 1_000)), "stable");
    assert_eq!(ours.len(), 16);
    for other in [
        record(b"k", b"{\"a\":2}", 1_000),
        record(b"j", b"{\"a\":1}", 1_000),
        record(b"k", b"{\"a\":1}", 1_001),
        record(b"", b"k{\"a\":1}", 1_000),
    ] {
        assert_ne!(digest(&other), ours);
    }
    let mut c = claim(10, 20);
    assert_eq!(
        same_records(&c, 10, &ours),
        Ok(()),
        "an earlier release's claim has no digest"
    );
    c.first_record = Some(ours.clone());
    assert_eq!(same_records(&c, 10, &ours), Ok(()));
    assert!(matches!(
        same_records(&c, 10, "0000000000000000"),
        Err(ClaimMismatch::OtherRecords { .. })
    ));
}

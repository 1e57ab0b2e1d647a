use super::*;
use crate::land::naming::claim_path;
use crate::land::recovery::tests::claim;

fn path(first: i64) -> String {
    claim_path("t", 2, first)
}

fn last(first: i64, through: i64, present: bool) -> Found {
    let mut c = claim(first, through);
    c.last_record = Some("00000000000000aa".into());
    Found {
        last: Some(Last {
            path: path(first),
            claim: c,
            files_present: present,
        }),
        beyond_high: None,
    }
}

fn partition(low: i64, high: i64, hint: Option<Hint>) -> Partition {
    Partition {
        low,
        high,
        cluster: None,
        hint,
    }
}

fn decide(source: &Partition, found: &Found) -> Result<Start, Refused> {
    decide_start("t", 2, source, found, path)
}

#[test]
fn an_empty_store_starts_where_the_group_would() {
    assert_eq!(
        decide(&partition(0, 500, None), &Found::default()),
        Ok(Start::New)
    );
    let old_mark = Some(Hint {
        next: 300,
        claim: None,
    });
    assert_eq!(
        decide(&partition(0, 500, old_mark), &Found::default()),
        Ok(Start::New),
        "an earlier release's mark names no claim: nothing says one should be here"
    );
}

#[test]
fn a_landed_chain_continues_after_its_end_checking_its_last_record() {
    let start = decide(&partition(0, 500, None), &last(200, 299, true)).unwrap();
    assert_eq!(
        start,
        Start::After {
            seek: 299,
            chain_next: 300,
            gone: 0,
            verify: Some(Verify {
                offset: 299,
                digest: "00000000000000aa".into(),
                path: path(200),
            }),
            commit: Some((200, 299)),
        }
    );
    assert_eq!(start.chain_next(), Some(300));
}

#[test]
fn the_group_offset_never_moves_the_start_whatever_it_says() {
    // Expired offsets (replay from 0), a reset into the chain, a reset past it: the chain decides.
    for next in [0, 150, 250, 300, 450] {
        let hint = Some(Hint { next, claim: None });
        let start = decide(&partition(0, 500, hint), &last(200, 299, true)).unwrap();
        assert_eq!(start.chain_next(), Some(300), "hint {next}");
    }
}

#[test]
fn a_chain_at_or_past_the_high_watermark_is_a_recreated_topic_or_another_cluster() {
    for high in [0, 150, 299] {
        assert!(
            matches!(
                decide(&partition(0, high, None), &last(200, 299, true)),
                Err(Refused::BeyondHigh { last: 299, .. })
            ),
            "high {high}"
        );
    }
    let found = Found {
        beyond_high: Some((path(700), 799)),
        ..last(200, 299, true)
    };
    assert!(matches!(
        decide(&partition(0, 500, None), &found),
        Err(Refused::BeyondHigh { last: 799, .. })
    ));
}

#[test]
fn the_group_offset_is_committed_at_the_chain_end_unless_it_is_there() {
    let commit = |hint| match decide(&partition(0, 500, hint), &last(200, 299, true)) {
        Ok(Start::After { commit, .. }) => commit,
        other => panic!("{other:?}"),
    };
    let ours = Hint {
        next: 300,
        claim: Some(200),
    };
    assert_eq!(commit(Some(ours)), None, "a normal restart commits nothing");
    for other in [
        None,
        Some(Hint {
            next: 300,
            claim: None,
        }),
        Some(Hint {
            next: 150,
            claim: Some(100),
        }),
    ] {
        assert_eq!(commit(other), Some((200, 299)), "{other:?}");
    }
}

#[test]
fn a_claim_made_on_another_cluster_is_refused() {
    let mut found = last(200, 299, true);
    found.last.as_mut().unwrap().claim.cluster = Some("a".into());
    let mut source = partition(0, 500, None);
    source.cluster = Some("b".into());
    assert!(matches!(
        decide(&source, &found),
        Err(Refused::OtherCluster { .. })
    ));
    source.cluster = Some("a".into());
    assert!(decide(&source, &found).is_ok());
    source.cluster = None;
    assert!(
        decide(&source, &found).is_ok(),
        "a broker without a cluster id"
    );
}

#[test]
fn a_committed_mark_naming_a_claim_the_store_lacks_is_refused() {
    let hint = Some(Hint {
        next: 300,
        claim: Some(200),
    });
    assert!(matches!(
        decide(&partition(0, 500, hint), &Found::default()),
        Err(Refused::NoChain { next: 300, .. })
    ));
}

#[test]
fn the_last_claim_without_its_file_is_completed_from_its_start() {
    let start = decide(&partition(0, 500, None), &last(200, 299, false)).unwrap();
    let Start::Complete {
        seek, gone, claim, ..
    } = &start
    else {
        panic!("{start:?}")
    };
    assert_eq!((*seek, *gone, claim.last_offset), (200, 0, 299));
    assert_eq!(start.chain_next(), Some(200), "the next claim is that one");
    // Retention took the claim's first records: complete it with what is left, count the rest.
    let start = decide(&partition(250, 500, None), &last(200, 299, false)).unwrap();
    assert!(
        matches!(
            start,
            Start::Complete {
                seek: 250,
                gone: 50,
                ..
            }
        ),
        "{start:?}"
    );
}

#[test]
fn a_deleted_file_whose_end_was_committed_is_history_not_work() {
    let hint = Some(Hint {
        next: 300,
        claim: Some(200),
    });
    let start = decide(&partition(0, 500, hint), &last(200, 299, false)).unwrap();
    assert!(
        matches!(
            start,
            Start::After {
                chain_next: 300,
                ..
            }
        ),
        "{start:?}"
    );
}

#[test]
fn offsets_the_log_no_longer_has_are_gone_not_waited_for() {
    // A stranded claim whose records are all gone: nothing can complete it.
    let start = decide(&partition(400, 500, None), &last(200, 299, false)).unwrap();
    assert_eq!(
        start,
        Start::After {
            seek: 400,
            chain_next: 300,
            gone: 100,
            verify: None,
            commit: Some((200, 299)),
        }
    );
    // A landed chain whose last record was removed: nothing to compare, start at the log.
    let start = decide(&partition(350, 500, None), &last(200, 299, true)).unwrap();
    assert!(
        matches!(
            start,
            Start::After {
                seek: 350,
                gone: 50,
                verify: None,
                ..
            }
        ),
        "{start:?}"
    );
}

#[test]
fn a_claim_of_another_partition_at_the_chain_end_is_refused() {
    let mut found = last(200, 299, true);
    found.last.as_mut().unwrap().claim.partition = 3;
    assert!(matches!(
        decide(&partition(0, 500, None), &found),
        Err(Refused::Unusable { .. })
    ));
}

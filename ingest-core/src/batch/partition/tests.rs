use std::time::Duration;

use super::*;
use crate::batch::MIN_CHUNK;

type Batch = super::Batch;
type PartitionState = super::PartitionState;

const POLICY: FlushPolicy = FlushPolicy {
    max_records: 3,
    max_bytes: 1000,
    max_age: Duration::from_secs(5),
};

fn push(p: &mut PartitionState, offsets: impl IntoIterator<Item = i64>, now: Instant) {
    for o in offsets {
        p.push(
            &RecordRef {
                offset: o,
                timestamp_ms: None,
                key: None,
                value: Some(b"1"),
                headers: &[],
                flaw: None,
                cursor: None,
            },
            now,
            0,
            &POLICY,
        );
    }
}

fn offsets(b: &Batch) -> Vec<i64> {
    b.records().map(|r| r.offset()).collect()
}

#[test]
fn one_batch_in_flight_at_a_time_and_the_rest_queue_in_order() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, 0..7, t0);
    assert!(p.ready_to_upload());
    let first = p.start_next().unwrap();
    assert_eq!(first.reason, FlushReason::Records);
    assert_eq!(offsets(&first.batch), vec![0, 1, 2]);
    assert!(
        p.start_next().is_none(),
        "second upload must wait for the first commit"
    );
    assert_eq!(
        p.held_bytes(),
        3 * MIN_CHUNK,
        "three batches of one chunk each"
    );
    p.landed(2);
    assert_eq!(offsets(&p.start_next().unwrap().batch), vec![3, 4, 5]);
    p.landed(5);
    assert!(p.start_next().is_none(), "offset 6 is still open");
    assert!(!p.is_drained());
}

#[test]
fn the_timer_seals_a_quiet_partition() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, [10], t0);
    assert_eq!(p.deadline(&POLICY), Some(t0 + Duration::from_secs(5)));
    assert!(!p.tick(t0 + Duration::from_secs(4), &POLICY));
    assert!(p.tick(t0 + Duration::from_secs(5), &POLICY));
    assert_eq!(p.start_next().unwrap().reason, FlushReason::Age);
    assert_eq!(p.deadline(&POLICY), None);
}

#[test]
fn landing_past_our_batch_drops_what_the_landed_file_holds() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, [0, 1, 2, 3, 4, 6, 8], t0);
    let _in_flight = p.start_next().unwrap(); // 0..=2
    p.landed(5); // an earlier incarnation's file held 0..=5
    assert_eq!(offsets(&p.start_next().unwrap().batch), vec![6]);
    p.landed(6);
    // Records the consumer still delivers below the landed end are dropped.
    let mut q = PartitionState::default();
    q.landed(9);
    assert!(q
        .push(
            &RecordRef {
                offset: 9,
                timestamp_ms: None,
                key: None,
                value: None,
                headers: &[],
                flaw: None,
                cursor: None,
            },
            t0,
            0,
            &POLICY
        )
        .is_none());
    assert!(q.is_drained());
}

#[test]
fn completing_a_claim_merges_the_buffer_and_cuts_exactly_at_its_end() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, [0, 1, 2, 3], t0);
    let first = p.start_next().unwrap(); // 0..=2; 3 is open
    p.need_more(first.batch, 5);
    assert!(p.completing_claim());
    assert!(p.start_next().is_none());
    assert!(
        !p.tick(t0 + Duration::from_secs(60), &POLICY),
        "no age flush while completing"
    );
    assert!(!p.seal_open(FlushReason::Shutdown));
    push(&mut p, [4], t0);
    assert!(
        p.start_next().is_none(),
        "max_records does not apply while completing"
    );
    push(&mut p, [7, 8], t0); // 5 and 6 were compacted away: 7 proves we passed the end
    let head = p.start_next().unwrap();
    assert_eq!(head.reason, FlushReason::Recovery);
    assert_eq!(offsets(&head.batch), vec![0, 1, 2, 3, 4]);
    assert!(!p.completing_claim());
    p.landed(5);
    assert!(p.seal_open(FlushReason::Shutdown));
    assert_eq!(offsets(&p.start_next().unwrap().batch), vec![7, 8]);
}

#[test]
fn need_more_already_satisfied_cuts_at_once() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, [0, 1, 2, 3, 4], t0);
    let first = p.start_next().unwrap();
    p.need_more(first.batch, 3);
    assert_eq!(offsets(&p.start_next().unwrap().batch), vec![0, 1, 2, 3]);
    p.landed(3);
    assert!(p.seal_open(FlushReason::Shutdown));
    assert_eq!(offsets(&p.start_next().unwrap().batch), vec![4]);
}

#[test]
fn a_failed_upload_is_retried_first() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, 0..6, t0);
    let first = p.start_next().unwrap();
    p.retry(first);
    assert_eq!(offsets(&p.start_next().unwrap().batch), vec![0, 1, 2]);
}

#[test]
fn memory_pressure_only_picks_batches_that_can_upload_now() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, [0], t0);
    assert_eq!(p.idle_held_bytes(), Some(MIN_CHUNK));
    push(&mut p, [1, 2, 3], t0); // 0..=2 sealed, 3 open
    assert_eq!(
        p.idle_held_bytes(),
        None,
        "a sealed batch is already waiting"
    );
}

#[test]
fn a_record_served_again_is_found_only_when_the_same_one_is_buffered() {
    let t0 = Instant::now();
    let mut p = PartitionState::default();
    push(&mut p, [10, 11, 12, 13], t0); // 10..=12 sealed by count, 13 open
    let at = |offset, value: &'static [u8]| RecordRef {
        offset,
        timestamp_ms: None,
        key: None,
        value: Some(value),
        headers: &[],
        flaw: None,
        cursor: None,
    };
    assert!(p.holds_same(&at(11, b"1")), "sealed");
    assert!(p.holds_same(&at(13, b"1")), "open");
    assert!(
        !p.holds_same(&at(11, b"2")),
        "another record at that offset"
    );
    assert!(!p.holds_same(&at(9, b"1")), "before what is buffered");
    let uploading = p.start_next().unwrap();
    assert_eq!(offsets(&uploading.batch), [10, 11, 12]);
    assert!(
        !p.holds_same(&at(11, b"1")),
        "no longer held once uploading"
    );
}

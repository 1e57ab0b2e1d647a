use super::*;
use crate::batch::record::tests::rec;
use crate::batch::record::{Flaw, RECORD_HEADER};

type Batch = super::Batch;

#[test]
fn the_arena_never_holds_much_more_than_it_stores() {
    let t0 = Instant::now();
    let mut b = Batch::new(t0, 0);
    let value = [b'7'; 600];
    for o in 0..10_000 {
        b.push(&rec(o, &value));
    }
    let held: usize = b.frozen.iter().map(|c| c.capacity()).sum::<usize>() + b.open.capacity();
    assert_eq!(held, b.held_bytes());
    let stored = b.bytes() + b.len() * RECORD_HEADER;
    assert!(
        held <= stored + stored / 100 + MAX_CHUNK,
        "{held} for {stored}"
    );
    let big = vec![b'1'; 3 * MAX_CHUNK];
    b.push(&rec(10_000, &big));
    b.push(&rec(10_001, b"2"));
    let values: Vec<_> = b
        .records()
        .skip(9_999)
        .map(|r| r.value().unwrap().len())
        .collect();
    assert_eq!(values, vec![600, 3 * MAX_CHUNK, 1]);
}

#[test]
fn the_last_record_is_read_from_the_last_chunk_whether_open_or_frozen() {
    let t0 = Instant::now();
    let mut b = Batch::new(t0, 0);
    assert!(b.last_record().is_none());
    let value = [b'7'; 600];
    for o in 0..10_000 {
        b.push(&rec(o, &value));
        if o % 997 == 0 {
            assert_eq!(b.last_record().map(|r| r.offset()), Some(o));
        }
    }
    assert!(b.frozen.len() > 1);
    assert_eq!(b.last_record().map(|r| r.offset()), Some(9_999));
    // A record too large for a chunk freezes the open one and ends in a chunk of its own.
    b.push(&rec(10_000, &vec![b'1'; 3 * MAX_CHUNK]));
    assert_eq!(b.last_record().map(|r| r.offset()), Some(10_000));
    assert_eq!(
        b.last_record().map(|r| r.offset()),
        b.records().last().map(|r| r.offset())
    );
}

#[test]
fn a_batch_keeps_the_cursor_of_its_last_record_through_splits_and_appends() {
    let t0 = Instant::now();
    let mut b = Batch::new(t0, 0);
    let cursors: Vec<String> = (0..5).map(|o| format!("{}", 1000 + o * 250)).collect();
    for (o, c) in cursors.iter().enumerate() {
        b.push(&RecordRef {
            cursor: Some(c),
            ..rec(o as i64, b"{}")
        });
    }
    assert_eq!(b.last_cursor(), Some((4, "2000")));
    let (head, tail) = b.clone().split_after(2);
    assert_eq!(head.last_cursor(), None, "not kept for earlier records");
    assert_eq!(tail.last_cursor(), Some((4, "2000")));
    let (whole, _) = b.clone().split_after(9);
    assert_eq!(whole.last_cursor(), Some((4, "2000")));
    let mut joined = head;
    joined.append(&tail);
    assert_eq!(joined.last_cursor(), Some((4, "2000")));
    joined.append(&Batch::new(t0, 0));
    assert_eq!(
        joined.last_cursor(),
        Some((4, "2000")),
        "an empty append keeps it"
    );
    b.push(&rec(5, b"{}"));
    assert_eq!(b.last_cursor(), None, "a record without one clears it");
}

#[test]
fn split_and_append_keep_every_field() {
    let t0 = Instant::now();
    let mut b = Batch::new(t0, 42);
    let headers = [("h", Some(&b"v"[..])), ("n", None)];
    for o in [10, 12, 15] {
        b.push(&RecordRef {
            offset: o,
            timestamp_ms: Some(o * 1000),
            key: Some(b"k"),
            value: Some(b"[1]"),
            headers: &headers,
            flaw: None,
            cursor: None,
        });
    }
    let (head, tail) = b.clone().split_after(12);
    assert_eq!(
        (head.first_offset(), head.last_offset()),
        (Some(10), Some(12))
    );
    assert_eq!(
        (tail.first_offset(), tail.last_offset()),
        (Some(15), Some(15))
    );
    assert_eq!(head.bytes() + tail.bytes(), b.bytes());
    assert_eq!(tail.opened_at_ms(), 42);
    let r = tail.records().next().unwrap();
    assert_eq!(r.key(), Some(&b"k"[..]));
    assert_eq!(r.value(), Some(&b"[1]"[..]));
    assert_eq!(r.timestamp_ms(), Some(15_000));
    assert_eq!(r.headers().collect::<Vec<_>>(), headers.to_vec());
    // Splits outside the batch move it whole.
    let (all, none) = b.clone().split_after(15);
    assert_eq!((all.len(), none.len()), (3, 0));
    let (none, all) = b.clone().split_after(9);
    assert_eq!((none.len(), all.len(), all.bytes()), (0, 3, b.bytes()));
    let mut joined = head;
    joined.append(&tail);
    assert_eq!(
        joined.records().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![10, 12, 15]
    );
    assert_eq!(joined.bytes(), b.bytes());
}

#[test]
fn a_records_flaw_stays_marked_through_split_and_append() {
    let mut b = Batch::new(Instant::now(), 0);
    let header: &[(&str, Option<&[u8]>)] = &[("h", Some(b"v"))];
    let flaws = [
        (1, None),
        (2, Some(Flaw::UnreadableHeaders)),
        (3, Some(Flaw::AmqpValueWithoutJson)),
        (4, None),
    ];
    for (o, flaw) in flaws {
        b.push(&RecordRef {
            flaw,
            headers: if o == 2 { &[] } else { header },
            ..rec(o, b"{}")
        });
    }
    let (mut head, tail) = b.split_after(2);
    head.append(&tail);
    let marked: Vec<(i64, Option<Flaw>)> = head.records().map(|r| (r.offset(), r.flaw())).collect();
    assert_eq!(marked, flaws);
    let headers: Vec<usize> = head.records().map(|r| r.headers().count()).collect();
    assert_eq!(
        headers,
        [1, 0, 1, 1],
        "the flaw's bits leave the header count alone"
    );
}

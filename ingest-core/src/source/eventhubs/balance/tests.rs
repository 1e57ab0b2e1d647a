use super::*;

const EXPIRY: i64 = 60_000;

fn parts(n: usize) -> Vec<String> {
    (0..n).map(|p| p.to_string()).collect()
}

fn owned(partition: usize, owner: &str, at: i64) -> Ownership {
    Ownership {
        partition: partition.to_string(),
        owner: (!owner.is_empty()).then(|| owner.to_string()),
        last_modified_ms: at,
        etag: format!("e{partition}-{owner}-{at}"),
    }
}

#[test]
fn a_lone_replica_claims_free_partitions_create_only() {
    let plan = plan(&parts(4), &[], "me", &[], 1_000, EXPIRY, 2);
    assert!(plan.renew.is_empty());
    assert_eq!(
        plan.claim,
        Some(Claim {
            partition: "2".into(),
            etag: None
        })
    );
}

#[test]
fn a_newcomer_takes_from_an_owner_above_its_share() {
    let records: Vec<_> = (0..4).map(|p| owned(p, "other", 1_000)).collect();
    let plan = plan(&parts(4), &records, "me", &[], 2_000, EXPIRY, 0);
    let claim = plan.claim.expect("steals one");
    assert_eq!(
        claim.etag,
        Some(records[0].etag.clone()),
        "ETag-conditional"
    );
}

#[test]
fn balanced_replicas_only_renew() {
    let records = vec![
        owned(0, "me", 1_000),
        owned(1, "other", 1_000),
        owned(2, "me", 1_000),
        owned(3, "other", 1_000),
        owned(4, "other", 1_000),
    ];
    let plan = plan(&parts(5), &records, "me", &[], 2_000, EXPIRY, 0);
    assert_eq!(plan.claim, None, "2 of 5 with the other at 3 is balanced");
    let renewed: Vec<&str> = plan.renew.iter().map(|c| c.partition.as_str()).collect();
    assert_eq!(renewed, ["0", "2"]);
    assert!(plan.renew.iter().all(|c| c.etag.is_some()));
}

#[test]
fn one_below_the_share_takes_from_an_owner_at_the_maximum() {
    // 5 partitions, 3 owners: shares are 2, 2, 1. "a" holds 3 (above), "b" 2, me 0.
    let records = vec![
        owned(0, "a", 1_000),
        owned(1, "a", 1_000),
        owned(2, "a", 1_000),
        owned(3, "b", 1_000),
        owned(4, "b", 1_000),
    ];
    let plan = plan(&parts(5), &records, "me", &[], 2_000, EXPIRY, 1);
    let claim = plan.claim.unwrap();
    assert!(
        ["0", "1", "2"].contains(&claim.partition.as_str()),
        "{claim:?}"
    );
}

#[test]
fn expired_and_released_records_are_free_and_claimed_with_their_etag() {
    let records = vec![
        owned(0, "dead", 1_000),
        owned(1, "", 50_000),
        owned(2, "me", 60_000),
    ];
    let now = 1_000 + EXPIRY; // partition 0's record has just expired
    for pick in 0..2 {
        let claim = plan(&parts(3), &records, "me", &[], now, EXPIRY, pick)
            .claim
            .unwrap();
        let seen = &records[claim.partition.parse::<usize>().unwrap()];
        assert!(["0", "1"].contains(&claim.partition.as_str()));
        assert_eq!(claim.etag.as_deref(), Some(seen.etag.as_str()));
    }
    // One tick earlier "dead" still counts: two owners, 3 partitions, me at 1 with one free.
    let claim = plan(&parts(3), &records, "me", &[], now - 1, EXPIRY, 0)
        .claim
        .unwrap();
    assert_eq!(claim.partition, "1");
}

#[test]
fn a_partition_still_received_is_renewed_however_old_its_record() {
    // Renewals failed for longer than the expiry (a storage outage): the records of what "me"
    // still receives have expired, but the ETags are still the ones it wrote.
    let records = vec![
        owned(0, "me", 1_000),
        owned(1, "me", 1_000),
        owned(2, "other", 60_000),
    ];
    let now = 1_000 + EXPIRY + 5_000;
    let held = parts(2);
    let plan = plan(&parts(3), &records, "me", &held, now, EXPIRY, 0);
    let renewed: Vec<(&str, Option<&str>)> = plan
        .renew
        .iter()
        .map(|c| (c.partition.as_str(), c.etag.as_deref()))
        .collect();
    assert_eq!(
        renewed,
        [
            ("0", Some(records[0].etag.as_str())),
            ("1", Some(records[1].etag.as_str()))
        ]
    );
    assert_eq!(plan.claim, None, "2 of 3 against the other's 1 is balanced");
    // Not received (say, an earlier run under the same owner id): expired means free.
    let cold = super::plan(&parts(3), &records, "me", &[], now, EXPIRY, 0);
    assert!(cold.renew.is_empty());
    assert!(cold.claim.is_some_and(|c| c.partition != "2"));
}

#[test]
fn after_an_outage_longer_than_the_expiry_replicas_keep_what_they_receive() {
    let partitions = parts(6);
    let mut store = Store::default();
    let mut now = 0;
    run(&mut store, &["a", "b"], &partitions, 10, &mut now);
    // Nobody can write for three expiries; then rounds resume. Each replica renews what it
    // receives (run asserts that none claims a partition it still receives); the other's
    // records look expired to it, so a partition may change hands once, ETag-decided.
    now += 3 * EXPIRY;
    run(&mut store, &["a", "b"], &partitions, 8, &mut now);
    let counts = store.counts(now);
    assert_eq!(counts.get("a"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&3), "{counts:?}");
}

#[test]
fn records_of_unknown_partitions_are_ignored() {
    let records = vec![owned(7, "other", 1_000)];
    let plan = plan(&parts(2), &records, "me", &[], 2_000, EXPIRY, 0);
    assert!(plan.claim.is_some());
    assert!(plan.renew.is_empty());
}

/// A store of ownership records with ETag conditions, like the blob store.
#[derive(Default)]
struct Store {
    records: BTreeMap<String, Ownership>,
    next_etag: u64,
}

impl Store {
    fn write(&mut self, claim: &Claim, owner: &str, now: i64) -> bool {
        let current = self.records.get(&claim.partition).map(|r| r.etag.clone());
        if current != claim.etag {
            return false;
        }
        self.next_etag += 1;
        self.records.insert(
            claim.partition.clone(),
            Ownership {
                partition: claim.partition.clone(),
                owner: Some(owner.to_string()),
                last_modified_ms: now,
                etag: format!("etag-{}", self.next_etag),
            },
        );
        true
    }

    fn held_by(&self, me: &str) -> Vec<String> {
        self.records
            .values()
            .filter(|r| r.owner.as_deref() == Some(me))
            .map(|r| r.partition.clone())
            .collect()
    }

    fn counts(&self, now: i64) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for r in self.records.values() {
            if now - r.last_modified_ms < EXPIRY {
                *c.entry(r.owner.clone().unwrap()).or_default() += 1;
            }
        }
        c
    }
}

/// Runs rounds of `replicas` (each plans on the same listing order a real store gives, then
/// writes renewals and its claim) every 10 s of simulated time.
fn run(store: &mut Store, replicas: &[&str], partitions: &[String], rounds: usize, now: &mut i64) {
    let mut seed = 7usize;
    for _ in 0..rounds {
        *now += 10_000;
        for me in replicas {
            let listed: Vec<Ownership> = store.records.values().cloned().collect();
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // What a live replica receives: what it last wrote and nobody overwrote since.
            let held = store.held_by(me);
            let plan = plan(partitions, &listed, me, &held, *now, EXPIRY, seed >> 8);
            if let Some(claim) = &plan.claim {
                assert!(
                    !held.contains(&claim.partition),
                    "{me} claims {} which it still receives",
                    claim.partition
                );
            }
            for c in plan.renew.iter().chain(plan.claim.as_ref()) {
                store.write(c, me, *now);
            }
        }
    }
}

#[test]
fn replicas_converge_to_balanced_shares_and_take_over_after_a_death() {
    let partitions = parts(8);
    let mut store = Store::default();
    let mut now = 0;
    run(&mut store, &["a", "b", "c"], &partitions, 12, &mut now);
    let counts = store.counts(now);
    assert_eq!(counts.values().sum::<usize>(), 8, "every partition owned");
    assert!(
        counts.values().all(|c| (2..=3).contains(c)),
        "balanced: {counts:?}"
    );

    // "c" dies (stops renewing). Before the expiry its partitions stay with it.
    run(&mut store, &["a", "b"], &partitions, 5, &mut now);
    assert!(store.counts(now).contains_key("c"));
    // After the expiry, "a" and "b" share all partitions 4 and 4.
    run(&mut store, &["a", "b"], &partitions, 8, &mut now);
    let counts = store.counts(now);
    assert_eq!(counts.get("a"), Some(&4), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&4), "{counts:?}");
}

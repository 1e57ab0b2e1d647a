//! A resume position inside a landed range: the claim that covers it.
//!
//! A partition's first batch after an assignment starts wherever the source resumes. That is a
//! claim boundary when it is the position this service committed (the offset after a landed
//! file), and usually not otherwise: the group's offsets expired and the consumer replays from
//! the earliest offset, retention or compaction removed a landed batch's first records, or an
//! operator reset the group. Claims are named by first offset only, so such a batch would not
//! meet the claim it starts inside and would land its records a second time. Before it does, the
//! flush looks for the claim with the greatest first offset before the batch's and, if that claim
//! reaches the batch, skips to its end.
//!
//! Pure: names, search windows and the decision; the listing is [`crate::storage::Storage`]'s.

use super::naming::padded_number;
use super::recovery::{check_claim, Claim, ClaimMismatch};

/// The first offset a claim's name stands for (`.../<20 digits>.json`), if it is a claim name.
pub fn claim_first_offset(name: &str) -> Option<i64> {
    padded_number(name, 20).and_then(|n| i64::try_from(n).ok())
}

/// How far back the search for a claim before `offset` reaches in each listing, nearest first:
/// 10⁴, 10⁶, 10⁸ and 10¹⁰ offsets back (`Some(from)`), then the partition's start (`None`).
/// Listings on sorted stores start at `from` and stop at `offset`, so each reads only the
/// claims in between: a file holds far fewer than 10⁴ offsets in most deployments, and the first
/// listing finds the claim before.
pub fn search_from(offset: i64) -> impl Iterator<Item = Option<i64>> {
    [10_000i64, 1_000_000, 100_000_000, 10_000_000_000]
        .into_iter()
        .map(move |back| offset - back)
        .take_while(|from| *from > 0)
        .map(Some)
        .chain(std::iter::once(None))
}

/// The greatest claim before `offset` among listed `names` (other objects are ignored).
pub fn greatest_before<'a>(
    names: impl IntoIterator<Item = &'a str>,
    offset: i64,
) -> Option<(i64, &'a str)> {
    names
        .into_iter()
        .filter_map(|n| claim_first_offset(n).map(|o| (o, n)))
        .filter(|(o, _)| *o < offset)
        .max()
}

/// What a claim before a batch's first offset means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    /// The claim ends before the batch: nothing covers it.
    Before,
    /// The claim reaches into the batch and its file is in storage: offsets through `through`
    /// are landed.
    Landed { through: i64 },
    /// The claim reaches into the batch but its file is not in storage, and the records before
    /// the batch that it must hold cannot be read any more: it cannot be completed.
    Stranded { through: i64 },
}

/// Decides about `claim` (the greatest before `first`) for a batch of `topic`/`partition`
/// starting at `first`; `data_exists` tells whether the claimed file is in storage.
pub fn decide_cover(
    topic: &str,
    partition: i32,
    first: i64,
    claim: &Claim,
    data_exists: bool,
) -> Result<Cover, ClaimMismatch> {
    check_claim(claim, topic, partition, first, |found| found < first)?;
    let through = claim.last_offset;
    Ok(if through < first {
        Cover::Before
    } else if data_exists {
        Cover::Landed { through }
    } else {
        Cover::Stranded { through }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::land::naming::{claim_path, claims_dir};
    use crate::land::recovery::tests::claim;

    #[test]
    fn claim_names_give_their_first_offset_and_nothing_else_does() {
        assert_eq!(claim_first_offset(&claim_path("t", 2, 42)), Some(42));
        assert_eq!(claims_dir("t", 2), "_ingest/claims/t/2/");
        assert!(claim_path("t", 2, 42).starts_with(&claims_dir("t", 2)));
        for other in [
            "_ingest/claims/t/2/42.json",
            "_ingest/claims/t/2/0000000000000000004x.json",
            "_ingest/claims/t/2/00000000000000000042.json.tmp",
        ] {
            assert_eq!(claim_first_offset(other), None, "{other}");
        }
    }

    #[test]
    fn the_search_widens_back_to_the_start_of_the_partition() {
        assert_eq!(search_from(50).collect::<Vec<_>>(), vec![None]);
        assert_eq!(
            search_from(2_000_000).collect::<Vec<_>>(),
            vec![Some(1_990_000), Some(1_000_000), None]
        );
        assert_eq!(search_from(20_000_000_000).count(), 5);
    }

    #[test]
    fn the_greatest_claim_before_the_offset_wins_in_any_listing_order() {
        let names = [
            claim_path("t", 2, 300),
            claim_path("t", 2, 0),
            "_ingest/claims/t/2/notes.txt".to_string(),
            claim_path("t", 2, 100),
            claim_path("t", 2, 200),
        ];
        let names = names.iter().map(String::as_str);
        assert_eq!(greatest_before(names.clone(), 250).map(|c| c.0), Some(200));
        assert_eq!(
            greatest_before(names.clone(), 200).map(|c| c.0),
            Some(100),
            "a claim at the offset itself is the batch's own, found by name"
        );
        assert_eq!(greatest_before(names, 0), None);
    }

    #[test]
    fn a_claim_reaching_into_the_batch_is_landed_or_stranded() {
        let d = |first, c: &Claim, exists| decide_cover("t", 2, first, c, exists);
        assert_eq!(
            d(150, &claim(100, 199), true),
            Ok(Cover::Landed { through: 199 })
        );
        assert_eq!(
            d(199, &claim(100, 199), true),
            Ok(Cover::Landed { through: 199 })
        );
        assert_eq!(d(200, &claim(100, 199), true), Ok(Cover::Before));
        assert_eq!(d(200, &claim(100, 199), false), Ok(Cover::Before));
        assert_eq!(
            d(150, &claim(100, 199), false),
            Ok(Cover::Stranded { through: 199 })
        );
    }

    #[test]
    fn a_claim_for_another_partition_or_not_before_the_batch_is_refused() {
        let mut other = claim(100, 199);
        other.partition = 3;
        assert!(decide_cover("t", 2, 150, &other, true).is_err());
        assert!(decide_cover("t", 2, 100, &claim(100, 199), true).is_err());
        assert!(decide_cover("t", 2, 150, &claim(120, 110), true).is_err());
    }
}

//! Searching a partition's claims by name: which names are claims, and how far back each
//! listing reaches when the end of a chain is looked for without a hint ([`super::chain`]).
//!
//! Pure: names and search windows; the listing is [`crate::storage::Storage`]'s.

use super::naming::padded_number;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::land::naming::{claim_path, claims_dir};

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
}

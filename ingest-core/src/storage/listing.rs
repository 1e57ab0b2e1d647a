//! Listing names under a directory, for the claim search ([`crate::land::cover`]).

use futures::TryStreamExt as _;

use super::{Kind, Storage, StorageError};

impl Storage {
    /// Names under `dir` (ending in `/`) greater than `after` and less than `until`. Cloud
    /// stores list in name order starting after `after` (S3 `start-after`, Azure `startFrom`)
    /// and the listing stops at `until`; a local directory is read whole.
    pub async fn names_between(
        &self,
        dir: &str,
        after: Option<&str>,
        until: &str,
    ) -> Result<Vec<String>, StorageError> {
        let prefix = super::key(dir.trim_end_matches('/'));
        let mut listed = match after {
            Some(after) => self
                .store
                .list_with_offset(Some(&prefix), &super::key(after)),
            None => self.store.list(Some(&prefix)),
        };
        let in_order = self.lists_in_order();
        let mut names = Vec::new();
        while let Some(meta) = listed
            .try_next()
            .await
            .map_err(|e| self.error("list", dir, e))?
        {
            let name = meta.location.as_ref();
            if name >= until {
                if in_order {
                    break;
                }
                continue;
            }
            if after.is_none_or(|a| name > a) {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    /// Whether [`Storage::names_between`] reads only the names between its bounds (a sorted
    /// listing), so narrow searches are cheaper than one wide one.
    pub fn lists_in_order(&self) -> bool {
        self.kind != Kind::Local
    }
}

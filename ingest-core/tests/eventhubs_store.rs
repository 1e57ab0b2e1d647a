//! The Event Hubs checkpoint and ownership store against Azurite: the Azure SDKs' blob layout
//! and metadata, read and written both ways with the Python Azure Storage SDK, and ETag
//! conditions deciding ownership races. Azurite is started by the test (`common::servers`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::servers::*;
use common::unique;
use futures::stream::BoxStream;
use ingest::source::eventhubs::balance::Claim;
use ingest::source::eventhubs::layout::Checkpoint;
use ingest::source::eventhubs::store::CheckpointStore;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const NAMESPACE: &str = "MyNamespace.servicebus.windows.net";
const HUB: &str = "Orders";

/// A fresh container holding data under `raw/` and checkpoints at its root (where the SDKs
/// put them), and a store for consumer group `$Default` of `HUB`.
fn store(azurite: &Azurite) -> (String, CheckpointStore) {
    let container = unique("eh").to_ascii_lowercase().replace('_', "-");
    azurite.create_container(&container);
    let config = settings(azurite, &container);
    let store = CheckpointStore::from_config(&config)
        .expect("store builds")
        .expect("an Event Hubs source");
    (container, store)
}

/// The service's settings for `container` (files under `raw/`, checkpoints at the root).
fn settings(azurite: &Azurite, container: &str) -> ingest::Config {
    let mut vars = azurite.env(container, "raw");
    vars.extend(
        [
            ("INGEST_SOURCE", "eventhubs".to_string()),
            ("INGEST_EVENTHUBS_NAMESPACE", NAMESPACE.to_string()),
            ("INGEST_EVENTHUBS_EVENT_HUB", HUB.to_string()),
            (
                "INGEST_EVENTHUBS_CHECKPOINT_URL",
                format!("az://{container}"),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    ingest::Config::from_pairs(vars).expect("valid settings")
}

/// `store(azurite)`'s store over a [`Counting`] wrapper of the same container.
fn counted(
    azurite: &Azurite,
    container: &str,
    like: &CheckpointStore,
) -> (CheckpointStore, Arc<Counting>) {
    let config = settings(azurite, container);
    let url = url::Url::parse(&format!("az://{container}")).unwrap();
    let (inner, _) =
        ingest::storage::store_at(&config, &url, ingest::storage::Holds::Checkpoints).unwrap();
    let counting = Arc::new(Counting {
        inner,
        gets: AtomicUsize::new(0),
        lists: AtomicUsize::new(0),
    });
    let store = CheckpointStore::new(counting.clone(), like.address().clone(), "counted");
    (store, counting)
}

/// Azurite's store for the container of `store`'s settings, counting the reads (GETs) and
/// listings sent through it.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    gets: AtomicUsize,
    lists: AtomicUsize,
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "counting({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        l: &Path,
        p: PutPayload,
        o: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_opts(l, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

/// (partition, owner) of each record, in partition order.
fn owners(listed: &[ingest::source::eventhubs::balance::Ownership]) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = listed
        .iter()
        .map(|r| (r.partition.clone(), r.owner.clone().unwrap_or_default()))
        .collect();
    o.sort();
    o
}

/// The SDKs' blob name for `kind` (`checkpoint` or `ownership`) of partition `p`.
fn sdk_name(kind: &str, p: &str) -> String {
    format!("mynamespace.servicebus.windows.net/orders/$default/{kind}/{p}")
}

#[tokio::test]
async fn checkpoints_round_trip_with_the_azure_sdks_layout() {
    let azurite = Azurite::start();
    let (container, store) = store(&azurite);
    assert_eq!(store.checkpoint("0").await.unwrap(), None);

    // Ours, read by the Azure SDK: lowercased name, metadata keys and values as the SDKs write.
    let ours = Checkpoint {
        sequence_number: Some(41),
        offset: Some("8589934592".into()),
        claim: None,
    };
    store.set_checkpoint("0", &ours).await.unwrap();
    let seen = azurite.python(&format!(
        "b = BlobServiceClient.from_connection_string(cs).get_blob_client('{container}', '{}')\n\
         p = b.get_blob_properties()\n\
         print(p.size, sorted(p.metadata.items()))",
        sdk_name("checkpoint", "0")
    ));
    assert_eq!(
        seen,
        "0 [('offset', '8589934592'), ('sequencenumber', '41')]"
    );
    // Moving it forward replaces it.
    let later = Checkpoint {
        sequence_number: Some(99),
        offset: Some("8589944592".into()),
        claim: None,
    };
    store.set_checkpoint("0", &later).await.unwrap();
    assert_eq!(store.checkpoint("0").await.unwrap(), Some(later));

    // Written by an Azure SDK processor (an empty blob with metadata, as the Python and .NET
    // checkpoint stores upload it), read back by us.
    azurite.python(&format!(
        "b = BlobServiceClient.from_connection_string(cs).get_blob_client('{container}', '{}')\n\
         b.upload_blob(b'', overwrite=True, metadata={{'offset': '12884901888', 'sequencenumber': '1234'}})",
        sdk_name("checkpoint", "1")
    ));
    assert_eq!(
        store.checkpoint("1").await.unwrap(),
        Some(Checkpoint {
            sequence_number: Some(1234),
            offset: Some("12884901888".into()),
            claim: None,
        })
    );

    // The Rust SDK's checkpoint store keeps the case of hub and group (its users pass the
    // namespace host, lowercase as Azure shows it); found when no lowercased name exists.
    azurite.python(&format!(
        "b = BlobServiceClient.from_connection_string(cs).get_blob_client('{container}', 'mynamespace.servicebus.windows.net/{HUB}/$Default/checkpoint/2')\n\
         b.upload_blob(b'', overwrite=True, metadata={{'sequencenumber': '7', 'offset': '700'}})"
    ));
    assert_eq!(
        store.checkpoint("2").await.unwrap(),
        Some(Checkpoint {
            sequence_number: Some(7),
            offset: Some("700".into()),
            claim: None,
        })
    );

    // Unreadable metadata is an error, never "start from the beginning".
    azurite.python(&format!(
        "b = BlobServiceClient.from_connection_string(cs).get_blob_client('{container}', '{}')\n\
         b.upload_blob(b'', overwrite=True, metadata={{'sequencenumber': 'abc'}})",
        sdk_name("checkpoint", "3")
    ));
    let err = store.checkpoint("3").await.unwrap_err().to_string();
    assert!(err.contains("checkpoint/3") && err.contains("abc"), "{err}");
}

#[tokio::test]
async fn ownership_claims_are_decided_by_etags() {
    let azurite = Azurite::start();
    let (container, store) = store(&azurite);
    let fresh = Claim {
        partition: "0".into(),
        etag: None,
    };
    let etag_a = store
        .claim(&fresh, "replica-a")
        .await
        .unwrap()
        .expect("first claim wins");
    assert_eq!(
        store.claim(&fresh, "replica-b").await.unwrap(),
        None,
        "a second create-only claim loses"
    );
    let listed = store.ownerships().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].partition, "0");
    assert_eq!(listed[0].owner.as_deref(), Some("replica-a"));
    assert_eq!(listed[0].etag, etag_a);
    assert!(listed[0].last_modified_ms > 0);
    let seen = azurite.python(&format!(
        "b = BlobServiceClient.from_connection_string(cs).get_blob_client('{container}', '{}')\n\
         print(b.get_blob_properties().metadata['ownerid'])",
        sdk_name("ownership", "0")
    ));
    assert_eq!(seen, "replica-a");

    // Renewal with the current ETag succeeds and changes it; the old ETag then loses.
    let renew = Claim {
        partition: "0".into(),
        etag: Some(etag_a.clone()),
    };
    let etag_a2 = store.claim(&renew, "replica-a").await.unwrap().unwrap();
    assert_ne!(etag_a2, etag_a);
    assert_eq!(store.claim(&renew, "replica-b").await.unwrap(), None);

    // Released (empty ownerid, as the SDKs release): listed as unowned, claimable by its ETag.
    assert!(store.release("0", &etag_a2).await.unwrap());
    let listed = store.ownerships().await.unwrap();
    assert_eq!(listed[0].owner, None);
    let steal = Claim {
        partition: "0".into(),
        etag: Some(listed[0].etag.clone()),
    };
    assert!(store.claim(&steal, "replica-b").await.unwrap().is_some());

    // An ownership blob an Azure SDK processor wrote is listed with its owner and ETag.
    azurite.python(&format!(
        "b = BlobServiceClient.from_connection_string(cs).get_blob_client('{container}', '{}')\n\
         b.upload_blob(b'', overwrite=False, metadata={{'ownerid': 'dotnet-processor'}})",
        sdk_name("ownership", "1")
    ));
    let listed = store.ownerships().await.unwrap();
    let one = listed.iter().find(|o| o.partition == "1").unwrap();
    assert_eq!(one.owner.as_deref(), Some("dotnet-processor"));
    let take = Claim {
        partition: "1".into(),
        etag: Some(one.etag.clone()),
    };
    assert!(store.claim(&take, "replica-a").await.unwrap().is_some());
}

#[tokio::test]
async fn a_round_reads_only_the_ownership_records_that_changed() {
    let azurite = Azurite::start();
    let (container, other) = store(&azurite);
    let (mine, count) = counted(&azurite, &container, &other);
    // This replica claims 0..4; another claims 4 and 5.
    for p in 0..6 {
        let claim = Claim {
            partition: p.to_string(),
            etag: None,
        };
        let store = if p < 4 { &mine } else { &other };
        store
            .claim(&claim, if p < 4 { "me" } else { "them" })
            .await
            .unwrap()
            .unwrap();
    }
    let first = mine.ownerships().await.unwrap();
    assert_eq!(
        owners(&first),
        [
            ("0", "me"),
            ("1", "me"),
            ("2", "me"),
            ("3", "me"),
            ("4", "them"),
            ("5", "them")
        ]
        .map(|(p, o)| (p.to_string(), o.to_string()))
    );
    assert_eq!(
        count.gets.load(Ordering::SeqCst),
        2,
        "what it wrote itself is known by its ETag: only the other replica's two are read"
    );
    // Nothing changed: a listing and no reads.
    let again = mine.ownerships().await.unwrap();
    assert_eq!(owners(&again), owners(&first));
    assert_eq!(
        again.iter().map(|r| &r.etag).collect::<Vec<_>>(),
        first.iter().map(|r| &r.etag).collect::<Vec<_>>()
    );
    assert_eq!(
        (
            count.lists.load(Ordering::SeqCst),
            count.gets.load(Ordering::SeqCst)
        ),
        (2, 2)
    );
    // The other replica takes partition 1 (with the ETag it listed) and renews 4: those two,
    // and only they, are read again, and the new owner is seen.
    let listed = other.ownerships().await.unwrap();
    for (p, owner) in [("1", "them"), ("4", "them")] {
        let r = listed.iter().find(|r| r.partition == p).unwrap();
        let claim = Claim {
            partition: p.into(),
            etag: Some(r.etag.clone()),
        };
        other.claim(&claim, owner).await.unwrap().unwrap();
    }
    let after = mine.ownerships().await.unwrap();
    assert_eq!(
        owners(&after),
        [
            ("0", "me"),
            ("1", "them"),
            ("2", "me"),
            ("3", "me"),
            ("4", "them"),
            ("5", "them")
        ]
        .map(|(p, o)| (p.to_string(), o.to_string()))
    );
    assert_eq!(count.gets.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn on_azure_a_round_is_one_listing_that_carries_the_owners() {
    let azurite = Azurite::start();
    let (container, mine) = store(&azurite);
    let other = CheckpointStore::from_config(&settings(&azurite, &container))
        .unwrap()
        .unwrap();
    let sent = |s: &CheckpointStore| s.metadata_listings().expect("lists with metadata on Azure");
    for p in 0..8 {
        let claim = Claim {
            partition: p.to_string(),
            etag: None,
        };
        let (store, owner) = if p < 4 {
            (&mine, "me")
        } else {
            (&other, "them")
        };
        store.claim(&claim, owner).await.unwrap().unwrap();
    }
    let before = sent(&mine);
    let first = mine.ownerships().await.unwrap();
    assert_eq!(sent(&mine), before + 1, "one request for eight partitions");
    let expected: Vec<(String, String)> = (0..8)
        .map(|p| (p.to_string(), if p < 4 { "me" } else { "them" }.to_string()))
        .collect();
    assert_eq!(owners(&first), expected);

    // The other replica renews all of its own and takes partition 1: still one request, and
    // every change is seen.
    let listed = other.ownerships().await.unwrap();
    for r in listed
        .iter()
        .filter(|r| r.partition == "1" || r.owner.as_deref() == Some("them"))
    {
        let claim = Claim {
            partition: r.partition.clone(),
            etag: Some(r.etag.clone()),
        };
        other
            .claim(&claim, "them")
            .await
            .unwrap()
            .expect("the listed ETag is current");
    }
    let before = sent(&mine);
    let after = mine.ownerships().await.unwrap();
    assert_eq!(sent(&mine), before + 1);
    let mut expected = expected;
    expected[1].1 = "them".into();
    assert_eq!(owners(&after), expected);
    // A listed ETag is the one a conditional write needs; a stale one loses.
    let zero = after.iter().find(|r| r.partition == "0").unwrap();
    let renew = Claim {
        partition: "0".into(),
        etag: Some(zero.etag.clone()),
    };
    assert!(mine.claim(&renew, "me").await.unwrap().is_some());
    assert!(
        mine.claim(&renew, "me").await.unwrap().is_none(),
        "the old ETag is stale now"
    );
    // Released blobs (an empty owner) are listed as unowned.
    let one = after.iter().find(|r| r.partition == "1").unwrap();
    assert!(other.release("1", &one.etag).await.unwrap());
    let released = mine.ownerships().await.unwrap();
    assert_eq!(
        released.iter().find(|r| r.partition == "1").unwrap().owner,
        None
    );
}

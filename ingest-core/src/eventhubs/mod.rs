//! The Azure Event Hubs source's checkpoints and partition ownership, in the Azure SDKs' blob
//! checkpoint store layout, so a service can resume from a checkpoint an Azure SDK processor
//! wrote, and the other way round.
//!
//! `layout` (names, metadata, start position) and `balance` (which partition to claim) are pure;
//! `store` reads and writes the blobs through object_store with ETag conditions. The AMQP
//! receiver and its wiring into the pipeline are not here yet (README, Event Hubs).

pub mod balance;
pub mod identity;
pub mod layout;
pub mod source;
pub mod store;

//! Corridor's network layer: it owns the sockets and drives the sans-IO engine.
//!
//! One thread, one engine: each shard of the switch runs on a current-thread tokio runtime
//! inside a `LocalSet` (shard 0 on the caller's, the others on threads of their own), and
//! every task of a shard borrows its engine in turn (no lock, no channel hop per message).
//! Shards meet only at their hops: bounded lock-free queues of write batches ([`hop`]). A
//! link's reader hands each read's bytes to the engine, which frames, checks, routes and
//! appends to destination write batches; each destination's writer is woken once per batch
//! and writes it with one syscall.
//!
//! # Layout
//!
//! - [`limits`]: the bounds of this layer.
//! - [`memory`]: the allocator's hook for giving memory back after a flood of connections.
//! - [`backoff`]: reconnection delays, one for every transport.
//! - [`error`]: what setting up a link's TLS or QUIC, or authenticating its peer, can fail with.
//! - [`quic`]: QUIC links (quinn): lanes of native frames, mutual TLS 1.3, explicit limits.
//! - [`tls`]: mutual TLS for links, and the check that a certificate is the link's participant.
//! - [`switch`]: a shard's shared state and the driver's network side (every engine input
//!   through `Shared::input`, which flushes in `corridor_engine::driver`'s order), the
//!   switch and its shards' threads, the timer task; in its own files: `config` (the
//!   transports as one enum, listening and dialed links), `accept` (listeners, the
//!   connection limit, handshakes), `dial` (connectors with backoff), `connection` (the
//!   per-connection reader — sized buffers, backpressure — and writer — flushed batches,
//!   delivery reports — and the linger of a close), `journaling` (the journal's loop: the
//!   driver's batch cycle over the files, checkpoints), `reload` (a reloaded configuration
//!   applied in one step: new listeners bound first, the engine's `reconfigure`, loops
//!   started, stopped or given their new settings, retired connections closed as they
//!   drain), `relayed` (connections other nodes relay here) and `ops` (control
//!   directory, handle commands, graceful drain, snapshots).
//! - [`hop`]: the hand-off between two shards: two bounded lock-free lanes of write
//!   batches, one wake-up a batch, back-pressure when full.
//! - [`relay`]: a cluster's node links: a partner's connection on a node that does not
//!   serve its participant carried, after the link's handshake, to the node that does (the
//!   edge's `front`; the owner takes them in `switch`'s `relayed`).
//! - [`journal`]: the journal's files: segments read for recovery, a torn tail cut, batches
//!   appended and synced (the format is `corridor-journal`'s); `direct`: its writes around
//!   the page cache.
//! - [`control`]: the journal directory's lock, and operators' requests to a running
//!   switch through it (the exception queue's retry and drop).
//! - [`handle`]: a `Send` handle to a running switch: snapshots (counters, histograms,
//!   links, queues, the journal writer's figures), operators' calls run on the switch's
//!   thread, reconfiguration, the route table, shutdown.
//! - [`running`]: a switch on a thread of its own.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod control;
mod direct;
pub mod error;
pub mod handle;
pub mod hop;
pub mod journal;
pub mod limits;
pub mod memory;
pub mod quic;
pub mod relay;
pub mod running;
pub mod switch;
pub mod tls;

pub use error::{LinkError, ReconfigureError};
pub use handle::{Handle, JournalMetrics, LinkSnapshot, ReplicaMetrics, Shutdown, Snapshot};
pub use quic::{QuicLink, QuicSettings, QuicSide};
pub use running::Running;
pub use switch::{
    shard_links, Dial, LinkPlan, Listen, NetConfig, OwnerLookup, Reconfigure, RelayServe, Report, ShardParts,
    Switch, Transport,
};
pub use tls::{Identity, LinkTls, TlsFiles, TlsSide};

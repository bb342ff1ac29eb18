//! Helpers shared by Corridor's end-to-end and interoperability tests.
//!
//! # Layout
//!
//! - [`peer`]: blocking acquirer and issuer peers that speak the protocol over loopback.
//! - [`ops`]: a switch with its admin server, issuers and an idle second issuer.
//! - [`switch`]: a switch started from configuration text on its own thread, as `serve` does.
//! - [`quic`]: a QUIC partner or issuer (quinn) speaking native frames on lanes.
//! - [`tls`]: a blocking mutual-TLS client and per-test development certificates.
//! - [`toxics`]: a fault-injecting TCP proxy (toxiproxy's toxics) between the switch and a
//!   real peer.
//! - [`python`]: a Python interpreter with the test's pinned PyPI packages, provisioned into
//!   a virtual environment under `target/` the first time a test asks for it.
//! - [`node`]: Node.js with the tests' pinned npm packages, provisioned likewise.
//! - [`nats`]: the pinned NATS server, three on loopback as one JetStream cluster, killed and
//!   restarted as a test asks.
//! - [`scratch`]: a test's own temporary directory, removed when the test is done with it.

#![forbid(unsafe_code)]
// Test support: a failed expectation is a failed test, and says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "nats.rs"]
pub mod nats;
#[path = "node.rs"]
pub mod node;
#[path = "ops.rs"]
pub mod ops;
#[path = "peer.rs"]
pub mod peer;
#[path = "python.rs"]
pub mod python;
#[path = "quic.rs"]
pub mod quic;
#[path = "scratch.rs"]
pub mod scratch;
#[path = "switch.rs"]
pub mod switch;
#[path = "tls.rs"]
pub mod tls;
#[path = "toxics.rs"]
pub mod toxics;

/// A loopback port nothing listens on now, for a test to hand to another process to listen
/// on: below the kernel's ephemeral range ([`corridor_load::demo_cluster::nats_port`], which
/// the cluster demo picks its servers' ports with too). One bound from `127.0.0.1:0` and
/// closed is in that range, where an outgoing connection made meanwhile (a node's to NATS, a
/// load generator's) may be given it before that process binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    corridor_load::demo_cluster::nats_port(CALLS.fetch_add(1, Ordering::Relaxed)).expect("a free port")
}

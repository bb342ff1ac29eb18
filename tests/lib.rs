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
///
/// A port nothing listens on may still be one another test picked a moment ago and has not
/// yet listened on (a test's threads, and the test binaries running beside it, all pick from
/// the same range): each port handed out is reserved for [`PORT_RESERVED`] by a file named
/// for it in the temporary directory, made with `create_new`, and a reserved one is passed
/// over ("address already in use" at a switch's start, now and then, before).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join("corridor-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    for _ in 0..PORT_TRIES {
        let port = corridor_load::demo_cluster::nats_port(CALLS.fetch_add(1, Ordering::Relaxed))
            .expect("a free port");
        if reserve(&dir.join(port.to_string())) {
            return port;
        }
    }
    panic!("no port both free and unreserved in {PORT_TRIES} tries")
}

/// How long a port [`free_port`] handed out stays reserved: far longer than a test takes to
/// start what listens on it (after that, a port in use is not free anyway).
pub const PORT_RESERVED: std::time::Duration = std::time::Duration::from_secs(120);

/// Ports [`free_port`] tries before it gives up.
const PORT_TRIES: u32 = 1_000;

/// Whether the reservation `path` is this caller's now: made anew, or older than
/// [`PORT_RESERVED`] and renewed (removed and made anew: of callers renewing at once, the
/// one whose `create_new` succeeds). A directory that cannot be written reserves nothing.
fn reserve(path: &std::path::Path) -> bool {
    let create = || std::fs::OpenOptions::new().write(true).create_new(true).open(path);
    match create() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let age = path.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            age.is_some_and(|a| a > PORT_RESERVED) && std::fs::remove_file(path).is_ok() && create().is_ok()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::{reserve, PORT_RESERVED};

    #[test]
    fn a_port_is_handed_to_one_taker_until_its_reservation_is_old() {
        let dir = crate::scratch::Scratch::new("port-reservations");
        let path = dir.join("20000");
        assert!(reserve(&path), "a port nobody reserved");
        assert!(!reserve(&path), "reserved a moment ago");
        let old = std::time::SystemTime::now() - PORT_RESERVED - std::time::Duration::from_secs(1);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        assert!(reserve(&path), "a reservation past its time is renewed");
        assert!(!reserve(&path), "and is the renewer's");
    }

    #[test]
    fn ports_handed_out_at_once_differ() {
        let ports: std::collections::HashSet<u16> = (0..200).map(|_| super::free_port()).collect();
        assert_eq!(ports.len(), 200);
    }
}

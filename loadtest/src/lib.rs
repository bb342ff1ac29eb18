//! `corridor-load`: the load generator, the participant simulator and the side-by-side
//! comparison harness for Corridor — or for anything that speaks its protocol.
//!
//! Latency is measured the way coordinated omission cannot fool: in open loop every send time
//! is fixed in advance (`start + i / rate`, or Poisson arrivals from a seed) and latency runs
//! from the intended send time ("corrected") as well as from the actual one ("naive"). When
//! the generator itself falls behind, the schedule lag says so, and a run whose lag is large
//! next to its p99 is flagged invalid: then the generator, not the target, was measured.
//!
//! # Layout
//!
//! - [`limits`]: every bound of the generator and the simulator, in one place.
//! - [`wire`]: framing and dialect of one connection, over blocking sockets.
//! - [`traffic`]: the message mix, PANs drawn from BIN lists, unique STAN and RRN.
//! - [`schedule`]: intended send times (constant or Poisson) and the pacing thread's wait.
//! - [`recorder`]: what one connection measured: HdrHistograms, outcome counts, a timeline.
//! - [`report`]: the summary table, JSON, `.hgrm` spectrum, per-second CSV and HTML report.
//! - [`threshold`]: SLO thresholds (`p99<2ms`) that set the exit status.
//! - `driver`: the generator's event loop (epoll and a timerfd, one thread per share of the
//!   connections).
//! - [`run`]: the acquirer side — connections, sign-on, open and closed loop, matching.
//! - [`respond`]: the issuer/wallet simulator.
//! - [`secure`]: the generator over TLS and QUIC (tokio, rustls, quinn), with the same rules.
//! - [`compare`]: the same workload against several paths, interleaved and repeated.
//! - [`demo`]: the README's first command: a switch (the product's own crates, on a thread)
//!   between an acquirer and two simulated QR networks.
//! - [`demo_cluster`]: `demo --cluster`: two nodes (real processes) on three `nats-server`,
//!   the serving one killed under load, a partner failing over to the standby.
//! - [`placement`]: CPU pinning.

#![forbid(unsafe_code)]

pub mod compare;
pub mod demo;
pub mod demo_cluster;
mod driver;
pub mod limits;
pub mod placement;
pub mod recorder;
pub mod report;
pub mod respond;
pub mod run;
pub mod schedule;
pub mod secure;
pub mod threshold;
pub mod traffic;
pub mod wire;

//! Corridor's operations: what an operator reaches a running switch through, apart from
//! its configuration (`corridor-config`) and the switch itself (`corridor-net`). A library
//! behind the thin `corridor` binary, so tests and tools start it as the binary does
//! without depending on the binary's crate.
//!
//! # Layout
//!
//! - [`startup`]: from a checked configuration to a running switch: engines made, journals
//!   recovered, links assigned, bound or started (configuration only configures).
//! - [`serve`]: the serve loop — the switch, the admin server, reloads on `SIGHUP` and
//!   `POST /reload`, the drain on `SIGTERM`, systemd's notify protocol and watchdog.
//! - [`shared_config`]: a cluster's one configuration — served at start, published by a
//!   reload on any node, followed by every other.
//! - [`admin`]: the loopback admin HTTP API (token, audit trail), the Prometheus exposition
//!   (`admin::exposition`), the sans-IO anomaly monitor (`admin::monitor`), the transactions
//!   view read from the journal (`admin::transactions`), the cluster's status
//!   (`admin::cluster`, on a node of one) and the live monitoring page.

#![forbid(unsafe_code)]

pub mod admin;
mod front;
pub mod serve;
pub mod shared_config;
pub mod startup;

//! Corridor's switching engine: participants, links, routes, the transaction lifecycle and
//! its timers, with no I/O.
//!
//! The quinn-proto pattern: bytes and events come in through `handle_*` with the current
//! time as an argument; work goes out through `poll_*` and [`Engine::take_output`] (bytes to
//! write per link, links to close or to read again, the next deadline). The engine never
//! touches a socket, a clock or a thread, so every rule of the switch is tested in memory
//! with a manual clock.
//!
//! # Layout
//!
//! - [`limits`]: every bound, in one place.
//! - [`config`]: participants, links and settings, already validated.
//! - [`routes`]: the immutable route table (DE 100, QR networks, longest PAN prefix,
//!   default).
//! - [`exchange`]: currencies (ISO 4217 as data), N8 rates, exact conversion, the rate table.
//! - `qr`: a QR payment's admission: its payload read, its networks ordered by the
//!   originator's partnership policy, the merchant's fields, currencies filled or checked,
//!   the participants' limits.
//! - [`engine`]: the `Engine` type: its inputs and outputs, framing, drain.
//! - [`driver`]: what runs around an engine without a runtime — the order of polls after
//!   each input, the journal's batch cycle with its full-disk path — shared by the network
//!   layer and the simulator.
//! - `admission`: one decision per request — hold, decline with a code, or forward on a
//!   chosen link — and the forwarding.
//! - `registry`: the open links by id and by participant, the choice of a link, ids.
//! - [`link`]: one connection of a configured link: correlation and STAN allocation, the
//!   outbox (write batch with a release point, approvals not yet delivered), held requests.
//! - `duplicates`: the key that makes two transmissions one request.
//! - `inflight`: requests in flight, response matching and relaying, timeouts.
//! - `pending`: what is in flight as a type — every entry awaiting an answer, the requests
//!   among them and their duplicate keys, kept consistent by construction.
//! - [`journal`]: journal before answer: records out, durability in, held frames released.
//! - `gate`: the journal gate — the journal, the links waiting for it, a full disk — as
//!   one type.
//! - `reversals`: reversals (0420/0421 until 0430) and late responses.
//! - `saf`: the store-and-forward queue's books (entries, order, exception queue, the
//!   indexes into them), its invariants held by its own type.
//! - `network`: sign-on, sign-off, echo.
//! - [`reconfigure`]: a reloaded configuration taken while running.
//! - [`operator`]: an operator's link actions, the store-and-forward list, the audit trail.
//! - `timers`: the one timer system (one FIFO queue per distinct duration).
//! - `throttle`: at most one line per link per kind of warning per interval.
//! - `compose`: the reversals the switch makes.
//! - [`shards`]: which shard owns what, the hops between shards.
//! - [`stats`]: the counters.
//! - [`metrics`]: latency histograms and answers by code, per destination and corridor.

#![forbid(unsafe_code)]

/// Takes one from a count that cannot go below zero (in-flight slots, pending requests,
/// queue lengths). Going below is a programmer error, asserted in every build: a wrapped
/// count would route and bound traffic wrongly without a word.
macro_rules! take_one {
    ($count:expr, $what:literal) => {
        $count =
            $count.checked_sub(1).unwrap_or_else(|| unreachable!(concat!($what, " never goes below zero")))
    };
}

mod admission;
mod compose;
pub mod config;
pub mod driver;
mod duplicates;
pub mod engine;
pub mod exchange;
mod gate;
mod inflight;
pub mod journal;
pub mod limits;
pub mod link;
pub mod metrics;
mod network;
pub mod operator;
mod pending;
pub mod qr;
pub mod reconfigure;
mod registry;
mod reversals;
pub mod routes;
mod saf;
pub mod shards;
pub mod stats;
mod throttle;
mod timers;

pub use config::{AtLimit, Config, Framing, LinkSpec, Participant, Roles, Settings};
pub use corridor_wire::{network_request, WallClock};
pub use engine::{Engine, Event};
pub use journal::{Journal, Resumed};
pub use link::{CloseReason, LinkId, LinkStatus, ReadState};
pub use operator::{LinkAction, SafEntry};
pub use routes::{InvalidRoute, QrTarget, Route, RouteKey, RouteQuery, RouteTable};
pub use stats::{LinkCounts, Stats};

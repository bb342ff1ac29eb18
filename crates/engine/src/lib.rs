//! Corridor's switching engine: participants, links, routes, the transaction lifecycle and
//! its timers, with no I/O.
//!
//! The quinn-proto pattern: bytes and events come in through `handle_*` with the current
//! time as an argument; work goes out through `poll_*` and [`Engine::take_output`] (bytes to
//! write per link, links to close, the next deadline). The engine never touches a socket, a
//! clock or a thread, so every rule of the switch is tested in memory with a manual clock.
//!
//! # Layout
//!
//! - [`limits`]: every bound, in one place.
//! - [`config`]: participants, links and settings, already validated.
//! - [`routes`]: the immutable route table (DE 100, longest PAN prefix, default).
//! - [`engine`]: the state machine: matching, declines, timeouts and reversals, network
//!   management, echo-based down detection, drain.
//! - `compose`: the messages the switch makes itself.
//! - `deadlines`: request deadlines, one FIFO queue per distinct timeout.
//! - [`stats`], the counters.

#![forbid(unsafe_code)]

mod compose;
pub mod config;
mod deadlines;
pub mod engine;
pub mod limits;
pub mod routes;
pub mod stats;

pub use compose::{network_request, WallClock};
pub use config::{Config, Framing, LinkSpec, Participant, Roles, Settings};
pub use engine::{CloseReason, Engine, Event, LinkId, LinkStatus};
pub use routes::{InvalidRoute, Route, RouteKey, RouteTable};
pub use stats::{LinkCounts, Stats};

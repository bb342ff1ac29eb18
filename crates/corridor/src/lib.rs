//! The `corridor` binary's library half: what its commands do, so they are tested as the
//! binary runs them. The configuration lives in `corridor-config`, the running switch in
//! `corridor-net`; this crate only wires them.
//!
//! # Layout
//!
//! - [`serve`]: the serve loop and its signals.
//! - [`admin`]: the admin HTTP server, metrics and the live monitoring page.
//! - [`clearing`]: clearing files from the journal, and their reconciliation.

#![forbid(unsafe_code)]

pub mod admin;
pub mod clearing;
mod records;
pub mod serve;

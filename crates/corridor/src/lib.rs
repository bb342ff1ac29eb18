//! The `corridor` binary's library half: configuration loading and the serve loop, so the
//! end-to-end tests wire the switch exactly as the binary does.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration file, checked whole.
//! - [`serve`]: builds the engine and the network layer from a configuration and runs them.

#![forbid(unsafe_code)]

pub mod config;
pub mod serve;

//! The `corridor` binary's library half: configuration loading and the serve loop, so the
//! end-to-end tests wire the switch exactly as the binary does.
//!
//! # Layout
//!
//! - [`certs`]: `corridor certs dev`, development certificates for TLS and QUIC links.
//! - [`config`]: the TOML configuration file, checked whole.
//! - [`demo`]: `corridor demo`, a switch and simulated networks driven by the load generator.
//! - [`serve`]: builds the engine and the network layer from a configuration and runs them.

#![forbid(unsafe_code)]

pub mod certs;
pub mod config;
pub mod demo;
pub mod serve;

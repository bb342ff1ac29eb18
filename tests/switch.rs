//! A switch for end-to-end tests: configuration text in, the real engine and network layer
//! on a thread of their own (a current-thread runtime, as `corridor serve` runs them).

use std::{collections::HashMap, net::SocketAddr};

/// A running switch; dropping it drains and stops it.
pub struct TestSwitch {
    /// The bound address of each listening link, by name.
    pub addrs: HashMap<String, SocketAddr>,
    running: Option<corridor_net::Running>,
}

impl TestSwitch {
    /// Starts a switch from configuration text (listening links may use port 0).
    ///
    /// # Panics
    ///
    /// If the configuration is invalid or the switch cannot start.
    #[must_use]
    pub fn start(config: &str) -> Self {
        let loaded = corridor_config::parse(config).unwrap_or_else(|e| panic!("test config: {e:#}"));
        let running = loaded.start().unwrap_or_else(|e| panic!("switch starts: {e:#}"));
        let addrs = running.addrs().iter().cloned().collect();
        Self { addrs, running: Some(running) }
    }

    /// The address of listening link `name`.
    ///
    /// # Panics
    ///
    /// If there is no such link.
    #[must_use]
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    /// The switch's handle: counters, links, routes.
    ///
    /// # Panics
    ///
    /// After `stop`.
    #[must_use]
    pub fn handle(&self) -> &corridor_net::Handle {
        self.running.as_ref().expect("running").handle()
    }

    /// Drains and stops the switch, waiting for its thread, and returns its report.
    ///
    /// # Panics
    ///
    /// If the switch failed.
    pub fn stop(mut self) -> corridor_net::Report {
        self.running.take().expect("running").stop().expect("the switch stops cleanly")
    }
}

/// Configuration text for an issuer `iss` the switch dials over TCP at `addr` (native), and
/// the route of BIN 476173 to it (its keys may follow).
#[must_use]
pub fn tcp_issuer(addr: SocketAddr) -> String {
    format!(
        "[[participant]]\nid = \"iss\"\nroles = [\"issuer\"]\n  [[participant.link]]\n  name = \"iss-1\"\n  \
         mode = \"dial\"\n  address = \"{addr}\"\n  framing = \"native\"\n  dialect = \"native\"\n\n\
         [[route]]\npan_prefix = \"476173\"\ndestination = \"iss\"\n"
    )
}

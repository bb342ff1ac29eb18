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
        let running = corridor_ops::startup::start(loaded).unwrap_or_else(|e| panic!("switch starts: {e:#}"));
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

    /// Waits (bounded) until every configured link named in `dialed` has a connection that
    /// is signed on, as the switch itself sees it.
    ///
    /// # Panics
    ///
    /// If that does not happen within the peers' wait bound.
    pub fn wait_signed_on(&self, dialed: &[&str]) {
        let ok = self.wait_until(|links, _| {
            dialed.iter().all(|n| links.iter().any(|l| l.name == *n && l.status.signed_on))
        });
        assert!(ok, "links {dialed:?} signed on");
    }

    /// Until every shard's journal is replicated and its lease renewed within its time to
    /// live (a node of a cluster takes no request before: it declines them 96).
    ///
    /// # Panics
    ///
    /// After [`crate::peer::WAIT_MAX`] three times over (the stream's first election), or if
    /// the switch is not a node of a cluster.
    pub fn wait_replicating(&self) {
        let deadline = std::time::Instant::now() + crate::peer::WAIT_MAX * 3;
        loop {
            let snap = self.handle().snapshot_blocking();
            let now = snap.as_ref().and_then(|s| s.journal.replicating());
            // Every lease renewed within its time to live too: else new requests get 96.
            let leased = snap.as_ref().is_some_and(|s| {
                s.journal.replicas.iter().all(|m| m.lease.is_none_or(|l| !l.stale_at(s.at)))
            });
            match now {
                Some(true) if leased => return,
                Some(true) => assert!(std::time::Instant::now() < deadline, "a lease is not renewed"),
                Some(false) => assert!(std::time::Instant::now() < deadline, "the journal is not replicated"),
                None => panic!("not a node of a cluster"),
            }
            #[allow(clippy::disallowed_methods)] // a test helper on its own thread, outside any runtime
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until nothing is in flight: every forwarded request answered or timed
    /// out, every reversal acknowledged or abandoned.
    ///
    /// # Panics
    ///
    /// If that does not happen within the peers' wait bound.
    pub fn wait_quiet(&self) {
        let ok = self.wait_until(|_, r| r.requests_pending == 0 && r.reversals_pending == 0);
        assert!(ok, "the switch went quiet");
    }

    /// Polls the switch's handle until `done` holds, for at most the peers' wait bound.
    pub fn wait_until(
        &self,
        done: impl Fn(&[corridor_net::LinkSnapshot], &corridor_net::Report) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + crate::peer::WAIT_MAX;
        while std::time::Instant::now() < deadline {
            let h = self.handle();
            if let (Some(links), Some(report)) = (h.links_blocking(), h.report_blocking()) {
                if done(&links, &report) {
                    return true;
                }
            }
            // A test thread, not a runtime's: polling with a short sleep is how it waits.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
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

//! A reloaded configuration, taken while the switch runs.
//!
//! Indices never move: the configuration layer builds the new [`Config`] with every
//! participant and link of the one in force at its old index (a removed one stays, as it
//! was, so the connections it still has keep their meaning) and new ones after them. Routes
//! are swapped whole through the route table's `ArcSwap`; a request in progress keeps the
//! table it started with. Limits apply at once to open connections (in-flight limit, what an
//! originator at it gets, sign-on), the rest to new connections. The connections of a link
//! that was removed, or changed in a way an open connection cannot take (framing, dialect,
//! address, transport, certificates), are retired: no new request is routed to them or taken
//! from them (answered 91), a dialed one is signed off, and each is closed once what it
//! carries is answered, or at the retire deadline.

use std::{sync::Arc, time::Instant};

use corridor_wire::NetworkCode;
use tracing::info;

use crate::{config::Config, engine::Engine, link::CloseReason, link::LinkId};

/// Why a configuration cannot be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incompatible(pub String);

impl std::fmt::Display for Incompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Incompatible {}

impl Engine {
    /// Takes `config` (see the module docs): `retire` lists the configured links whose open
    /// connections are retired, to be closed by `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// A configuration that moved or dropped a participant or link of the one in force (the
    /// configuration layer never builds one); nothing is changed then.
    pub fn reconfigure(
        &mut self,
        config: Config,
        retire: &[usize],
        deadline: Instant,
        now: Instant,
    ) -> Result<(), Incompatible> {
        let old = &self.config;
        if config.participants.len() < old.participants.len() || config.links.len() < old.links.len() {
            return Err(Incompatible(
                "participants and links may be added, never taken out of the table".into(),
            ));
        }
        for (i, (a, b)) in old.participants.iter().zip(&config.participants).enumerate() {
            if a.id != b.id {
                return Err(Incompatible(format!("participant {i} is {:?}, was {:?}", b.id, a.id)));
            }
        }
        for (i, (a, b)) in old.links.iter().zip(&config.links).enumerate() {
            if a.name != b.name {
                return Err(Incompatible(format!("link {i} is {:?}, was {:?}", b.name, a.name)));
            }
        }
        let (n, n_links) = (config.participants.len(), config.links.len());
        self.links.resize(n, n_links);
        self.throttle.grow(n_links);
        self.metrics.grow(n, n_links);
        self.routes.store(Arc::new(config.routes.clone()));
        // Limits an open connection can take at once.
        for l in self.links.values_mut() {
            let s = &config.links[l.spec];
            l.inflight_max = s.inflight_max;
            l.at_limit = s.at_limit;
            l.sign_on_required = s.sign_on_required;
        }
        self.interop_active = config.interop_active();
        self.config = config;
        for id in self.links.select(|l| retire.contains(&l.spec)) {
            let Some(l) = self.links.get_mut(&id) else { continue };
            if !l.retire(deadline) {
                continue;
            }
            let signed_dial = l.dial && l.signed_on();
            if signed_dial {
                self.send_network(id, NetworkCode::SIGN_OFF, now);
            }
        }
        info!(
            participants = self.config.participants.len(),
            links = self.config.links.len(),
            retiring = self.retiring(),
            "configuration taken"
        );
        // Slots freed by a higher limit let held requests go.
        let held = self.links.select(|l| !l.held.is_empty());
        self.resumable.extend(held);
        self.run_held(now);
        self.poll_retired(now);
        Ok(())
    }

    /// Connections being retired now.
    #[must_use]
    pub fn retiring(&self) -> usize {
        self.links.values().filter(|l| l.retiring().is_some()).count()
    }

    /// Closes the retired connections that carry nothing any more (no request in flight
    /// from or to them, nothing left to write), and those past their deadline. Call it
    /// now and then while [`Engine::retiring`] is not zero.
    pub fn poll_retired(&mut self, now: Instant) {
        let done: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| {
                l.retiring().is_some_and(|at| {
                    now >= at
                        || (l.inflight_in == 0
                            && l.inflight_out == 0
                            && l.held.is_empty()
                            && l.out.is_empty())
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.close(id, CloseReason::Reconfigured, now);
        }
    }
}

//! What an operator asks of a running engine: sign a configured link's connections on or
//! off, echo them, close them; the store-and-forward queue as a list; the audit trail.

use std::time::{Duration, Instant};

use corridor_journal::entry::Entry;
use corridor_wire::{Mti, NetworkCode};
use tracing::info;

use crate::{
    engine::Engine,
    link::{CloseReason, LinkId},
};

/// An operator's action on a configured link's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAction {
    /// Send a sign-on (0800/001) and route to it again after a sign-off.
    SignOn,
    /// Send a sign-off (0800/002) and route no new requests to it (requests in flight on
    /// it are still answered).
    SignOff,
    /// Send an echo (0800/301).
    Echo,
    /// Close its connections (a dialed link is redialed); requests forwarded on them
    /// time out and are reversed as on any closed link.
    Close,
}

impl LinkAction {
    /// Its name in the admin API.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::SignOn => "sign-on",
            Self::SignOff => "sign-off",
            Self::Echo => "echo",
            Self::Close => "close",
        }
    }

    /// The action named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::SignOn, Self::SignOff, Self::Echo, Self::Close].into_iter().find(|a| a.name() == s)
    }
}

/// A store-and-forward entry, as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafEntry {
    /// Its id.
    pub id: u64,
    /// The destination participant's id.
    pub destination: String,
    /// Its MTI (first form).
    pub mti: Mti,
    /// Transmissions made.
    pub attempts: u32,
    /// How long ago it was stored.
    pub age: Duration,
    /// Whether a participant sent it (else the switch made it).
    pub from_participant: bool,
    /// Whether a transmission is waiting for its acknowledgement now.
    pub outstanding: bool,
}

impl Engine {
    /// The open connections of configured link `spec`.
    fn connections_of(&self, spec: usize) -> Vec<LinkId> {
        self.links.select(|l| l.spec == spec && !l.closing())
    }

    /// Does `action` on every open connection of configured link `spec`; how many.
    pub fn operator_link(&mut self, spec: usize, action: LinkAction, now: Instant) -> usize {
        let ids = self.connections_of(spec);
        for &id in &ids {
            match action {
                LinkAction::SignOn => {
                    if let Some(l) = self.links.get_mut(&id) {
                        l.operator_sign(true);
                    }
                    self.send_network(id, NetworkCode::SIGN_ON, now);
                }
                LinkAction::SignOff => {
                    if let Some(l) = self.links.get_mut(&id) {
                        l.operator_sign(false);
                    }
                    self.send_network(id, NetworkCode::SIGN_OFF, now);
                }
                LinkAction::Echo => self.send_network(id, NetworkCode::ECHO, now),
                LinkAction::Close => self.close(id, CloseReason::Operator, now),
            }
        }
        if let Some(s) = self.config.links.get(spec) {
            info!(link = %s.name, action = action.name(), connections = ids.len(), "operator: link action");
        }
        ids.len()
    }

    /// The store-and-forward queue, in the order entries were stored.
    #[must_use]
    pub fn saf_entries(&self, now: Instant) -> Vec<SafEntry> {
        self.saf
            .in_order()
            .map(|(id, r)| SafEntry {
                id,
                destination: self.config.participants[r.destination].id.clone(),
                mti: r.mti,
                attempts: r.attempts,
                age: now.saturating_duration_since(r.queued),
                from_participant: r.from_participant,
                outstanding: r.outstanding.is_some(),
            })
            .collect()
    }

    /// Journals an operator's change (who, what, when, outcome); a no-op without a journal.
    pub fn record_audit(&mut self, at_unix_ms: u64, who: &str, action: &str, outcome: &str, now: Instant) {
        if self.journal.on() {
            // One record, one line: whatever a file or a peer put in the text (a refused
            // reload's TOML error spans lines).
            let entry = Entry::Audit {
                at_unix_ms,
                who: corridor_journal::entry::one_line(who).into_owned(),
                action: corridor_journal::entry::one_line(action).into_owned(),
                outcome: corridor_journal::entry::one_line(outcome).into_owned(),
            };
            self.record(&entry, now);
        }
    }
}

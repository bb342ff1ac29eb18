//! What the engine is configured with: participants, their links, routes and timings.
//!
//! Plain values, already validated: the binary reads and checks the TOML file and builds
//! these. Nothing here parses text.

use std::{sync::Arc, time::Duration};

use corridor_wire::{Dialect, InstitutionId};

use crate::{
    exchange::{Currency, Rates},
    routes::RouteTable,
};

/// How frames are cut on a link (the wire crate's, named here for configurations).
pub use corridor_wire::Framing;

/// What a participant does in the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// Sends requests (wallets, acquirers).
    pub acquirer: bool,
    /// Answers requests (issuers, wallets on the paying side).
    pub issuer: bool,
    /// Forwards for others (national QR networks, card networks): may send DE 33.
    pub network: bool,
}

/// An institution connected to the switch.
#[derive(Clone, Debug)]
pub struct Participant {
    /// Short, unique id used in configuration and logs.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Its roles.
    pub roles: Roles,
    /// The acquiring institution ids (DE 32) it may send as.
    pub acquirer_ids: Vec<InstitutionId>,
    /// The forwarding institution ids (DE 33) it may send as.
    pub forwarder_ids: Vec<InstitutionId>,
    /// Its entry in the participant directory.
    pub directory: DirectoryEntry,
    /// Set on the participant that stands for shard `k` of this switch (its hop; see
    /// [`crate::shards`]): trusted, it carries only what its owner admitted.
    pub hop: Option<usize>,
    /// Set on a participant another shard owns: the hop participant it is reached through.
    pub via: Option<usize>,
    /// The shard the configuration pins it to (modulo the shard count); `None`: by the hash
    /// of its id.
    pub shard: Option<usize>,
}

/// What the participant directory says of a participant: the market it is in, its
/// currency, its limit per transaction, the QR networks it runs or acquires for, and its
/// partnership policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// Its market: ISO 3166-1 alpha-2 (`VN`).
    pub market: Option<[u8; 2]>,
    /// Its currency: a wallet's cardholder billing currency (DE 51) when the request names
    /// none, a merchant network's transaction currency; the currency its limit is in.
    pub currency: Option<Currency>,
    /// Other currencies it holds accounts in: a wallet may name one of these (or its
    /// `currency`) in DE 51; any other is declined `12`. Empty: any.
    pub currencies: Vec<Currency>,
    /// The largest transaction it takes, in minor units of `currency`.
    pub limit: Option<u64>,
    /// The QR networks (registry indices) it runs or acquires for.
    pub networks: Vec<u16>,
    /// Its partnership policy: the QR networks (registry indices) its payments may go to,
    /// in order of preference; empty for any network, in the payload's order.
    pub qr_policy: Vec<u16>,
}

/// One configured link of a participant: a listening address it dials in to, or an address
/// the switch dials. Each TCP connection made for it is a `LinkId` in the engine.
#[derive(Clone, Debug)]
pub struct LinkSpec {
    /// Unique link name.
    pub name: String,
    /// Index of its participant in [`Config::participants`].
    pub participant: usize,
    /// Whether the switch dials it (and so signs on to it).
    pub dial: bool,
    /// Frame cutting.
    pub framing: Framing,
    /// Body encoding.
    pub dialect: Dialect,
    /// Largest frame body accepted.
    pub frame_bytes_max: usize,
    /// Most requests in flight toward this link (and from it).
    pub inflight_max: u32,
    /// Whether financial traffic needs a sign-on first.
    pub sign_on_required: bool,
    /// An idle link is echoed this often.
    pub echo_interval: Duration,
    /// The link is marked down after this many unanswered echoes.
    pub echo_missed_max: u32,
    /// What an originator at its in-flight limit gets.
    pub at_limit: AtLimit,
    /// A listening link that requires a sign-on is closed if none comes within this.
    pub sign_on_timeout: Duration,
    /// A frame whose first bytes arrived must be whole within this, or the link is closed.
    pub frame_timeout: Duration,
    /// This many timeouts in a row on the link, with nothing received on it in between,
    /// take it out of routing (it is closed; a dialed link is redialed).
    pub timeouts_down_max: u32,
}

#[cfg(test)]
impl LinkSpec {
    /// A listening native link `name` of `participant`, with the smallest limits and
    /// timers that are still valid: what the crate's own unit tests start from.
    pub(crate) fn for_test(name: String, participant: usize) -> Self {
        Self {
            name,
            participant,
            dial: false,
            framing: Framing::Native,
            dialect: corridor_wire::Dialect::Native,
            frame_bytes_max: 1024,
            inflight_max: 1,
            sign_on_required: false,
            echo_interval: std::time::Duration::from_secs(1),
            echo_missed_max: 1,
            at_limit: AtLimit::Backpressure,
            sign_on_timeout: std::time::Duration::from_secs(1),
            frame_timeout: std::time::Duration::from_secs(1),
            timeouts_down_max: 1,
        }
    }
}

/// What an originator at its in-flight limit gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AtLimit {
    /// Its further requests wait (the switch stops reading them) until answers go out.
    #[default]
    Backpressure,
    /// Its further requests are declined 91 at once.
    Decline,
}

/// Switch-wide timings and identity.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The switch's own institution id (DE 33 on messages it makes).
    pub institution_id: Option<InstitutionId>,
    /// Reversals are repeated (as 0421) this often until acknowledged.
    pub reversal_retry: Duration,
    /// A store-and-forward entry (a reversal or advice) moves to the exception queue after
    /// this many repeats.
    pub reversal_repeats_max: u32,
    /// ... or once it is this old, whatever its repeats.
    pub saf_age_max: Duration,
    /// How long a timed-out transaction is remembered for its late response.
    pub late_window: Duration,
    /// How long a completed request's outcome answers its repeats.
    pub duplicate_window: Duration,
    /// Whether the engine records latency histograms and answers by response code (its
    /// counters are kept either way).
    pub metrics: bool,
    /// Most completed requests the duplicate window remembers (at most
    /// [`OUTCOMES_MAX`](crate::limits::OUTCOMES_MAX), its room reserved at start); the
    /// oldest is forgotten first past it, whatever `duplicate_window` says.
    pub duplicate_window_entries: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            institution_id: None,
            reversal_retry: Duration::from_secs(10),
            reversal_repeats_max: 5,
            saf_age_max: Duration::from_secs(86_400),
            late_window: Duration::from_secs(120),
            duplicate_window: Duration::from_secs(86_400),
            metrics: true,
            duplicate_window_entries: crate::limits::OUTCOMES_MAX,
        }
    }
}

/// Everything the engine needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Participants, indexed by position.
    pub participants: Vec<Participant>,
    /// Links, indexed by position.
    pub links: Vec<LinkSpec>,
    /// The initial route table.
    pub routes: RouteTable,
    /// Switch-wide settings.
    pub settings: Settings,
    /// QR networks, the rate table, the settlement currency, the switch's market.
    pub interop: Interop,
}

impl Config {
    /// Whether participant `p` stands for another shard of this switch (a hop; see
    /// [`crate::shards`]).
    #[must_use]
    pub fn is_hop(&self, p: usize) -> bool {
        self.participants.get(p).is_some_and(|x| x.hop.is_some())
    }

    /// Whether the switch converts currencies or checks limits: it has quotes, a settlement
    /// currency, or a participant with a currency or a limit. Otherwise requests skip that
    /// step (and a QR payment only has its merchant's fields taken from the payload).
    #[must_use]
    pub fn interop_active(&self) -> bool {
        !self.interop.rates.is_empty()
            || self.interop.settlement.is_some()
            || self.participants.iter().any(|p| p.directory.currency.is_some() || p.directory.limit.is_some())
    }
}

/// A payment's flow from the originator's market to the destination's, seen from the
/// switch's: `inbound` into the switch's market, `outbound` out of it, `third-market`
/// between two others, `domestic` within one; empty when a market is unknown.
#[must_use]
pub fn flow(from: Option<[u8; 2]>, to: Option<[u8; 2]>, home: Option<[u8; 2]>) -> &'static str {
    match (from, to, home) {
        (Some(f), Some(t), _) if f == t => "domestic",
        (Some(f), Some(t), Some(h)) if t == h && f != h => "inbound",
        (Some(f), Some(t), Some(h)) if f == h && t != h => "outbound",
        (Some(_), Some(_), Some(_)) => "third-market",
        _ => "",
    }
}

/// What cross-border QR payments need, switch-wide.
#[derive(Clone, Debug)]
pub struct Interop {
    /// The QR networks the switch recognizes.
    pub registry: Arc<corridor_qr::Registry>,
    /// The rate table.
    pub rates: Arc<Rates>,
    /// The currency networks settle in (DE 50), when the switch fills DE 5/9/50.
    pub settlement: Option<Currency>,
    /// The switch's own market: a payment into it is inbound, out of it outbound, between
    /// two others third-market.
    pub market: Option<[u8; 2]>,
}

impl Default for Interop {
    fn default() -> Self {
        Self {
            registry: Arc::new(corridor_qr::Registry::builtin().clone()),
            rates: Arc::default(),
            settlement: None,
            market: None,
        }
    }
}

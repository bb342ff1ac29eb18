//! Shards: one switch as N engines, each on a thread of its own, joined by hops.
//!
//! # The assignment rule
//!
//! Every participant has one **owner shard**: its `shard` setting (taken modulo the shard
//! count, so a configuration runs on any machine), else a stable hash of its id. The owner
//! holds everything of the participant: the connections of its links (listened and dialed),
//! the requests it originated in flight, its duplicate window and its outcomes, its
//! in-flight limits and the reversals and advices stored toward it. Nothing of a
//! participant is split, so each invariant of the design holds on one shard as it does in a
//! single engine:
//!
//! - *exactly one answer*, *timeouts with reversals*, *stored before acknowledged*: each
//!   shard is a whole engine for its participants; a hop is a link like any other to it, so a
//!   request that crosses has one engine answering its originator (the originator's owner)
//!   and one forwarding it to its destination (the destination's owner), each keeping the
//!   rules for its own side;
//! - *duplicates*: every transmission of a participant reaches its owner (all its
//!   connections are there), so its repeats meet its window;
//! - *a participant speaks as itself*: checked on its owner, where its links are; a hop is
//!   trusted (it is the switch itself) and carries only what its owner admitted;
//! - *bounded*: a hop has an in-flight limit and its originator side is held back
//!   (back-pressure) at it, its queue is bounded (the network layer's), and each shard keeps
//!   the engine's bounds.
//!
//! # Hops
//!
//! Shard `k` reaches the participants of shard `j` through the **hop participant** standing
//! for shard `j` (appended after the configured participants, index `n + j`) and its one
//! link (appended after the configured links, index `links + j`), native framing and
//! dialect. A participant owned elsewhere has `via` set to its owner's hop participant, and
//! [`crate::Engine`] sends what it routes to it on that hop.
//!
//! What crosses a hop needs no second routing: the correlation id of a request sent on a
//! hop carries its destination and its timeout ([`hop_key`]). The receiving shard forwards it
//! to that destination with that timeout; the sending one waits [`HOP_MARGIN`] longer, so the
//! timeout (and its reversal) is the destination's owner's to make, never both shards'.
//!
//! # A hop adds no durable step
//!
//! A transaction waits for two durable writes in a row wherever its participants live: the
//! originator's owner journals the request before it sends it on the hop and the answer
//! before it answers. The destination's owner journals its side too, but waits for none of
//! it: it forwards a request that came over a hop, and sends its destination's answer back
//! over the hop, at once. The originator's owner's records cover them:
//!
//! - the request was durable there before it crossed, so whatever happens to the
//!   destination's owner, the originator's owner knows it is open: its restart (or, should
//!   only the other side have gone, its timeout a margin later) reverses it toward the
//!   destination, across the hop;
//! - so a restart of the destination's owner never reverses a request a hop brought (see
//!   `Engine::resume`): it closes it 68 and remembers it unreversed, so the originator's
//!   reversal, when it comes, is forwarded — and an approval the originator's owner did
//!   answer (its record durable, the destination's owner's not) is never reversed;
//! - what the destination's owner decides itself — a 68 on its timeout with the reversal it
//!   owes, the acknowledgement of an advice it stored — waits for its own records as
//!   anywhere: the originator's owner takes that answer as final.

use std::time::Duration;

use crate::config::{AtLimit, Config, DirectoryEntry, Framing, LinkSpec, Participant, Roles};

/// The id of the hop participant standing for shard `j` is this and `j`: a `:` no
/// configured id may have, so none is taken for one (and the journal's views know what
/// another shard sent).
pub const HOP_ID_PREFIX: &str = "shard:";

/// The id of the hop participant standing for shard `j` (what the other shards journal the
/// requests it sends them under).
#[must_use]
pub fn hop_participant_id(j: usize) -> String {
    format!("{HOP_ID_PREFIX}{j}")
}

/// Most shards one switch runs.
pub const SHARDS_MAX: usize = 256;

/// The originator's owner waits this much past the route's timeout for an answer that
/// crossed a hop: the destination's owner times it out (and reverses it) first.
pub const HOP_MARGIN: Duration = Duration::from_millis(500);

/// Most requests in flight on one hop, each way (the sum of what the originators of a shard
/// may have toward another).
pub const HOP_INFLIGHT_MAX: u32 = 1 << 16;

const _: () = assert!(SHARDS_MAX <= u16::MAX as usize);
const _: () = assert!((HOP_INFLIGHT_MAX as usize) <= crate::limits::PENDING_MAX);

/// An idle hop is echoed this often (it is never taken down for missing echoes): a hop
/// between two nodes is heard from at least this often while it lives, so a silent one is
/// known dead (`corridor_net::limits::HOP_SILENT_MAX`).
pub const HOP_ECHO_INTERVAL: Duration = Duration::from_secs(1);

/// Bits of a hop's correlation id that count (the rest carry the route).
const HOP_COUNTER_BITS: u32 = 32;
/// A hop's timeout travels in units of this many milliseconds (16 bits: up to 655 s).
const HOP_TIMEOUT_UNIT_MS: u64 = 10;

/// The correlation id of a frame sent on a hop: the link's counter in the low 32 bits, the
/// destination participant + 1 in the next 16 (0: none, a switch-made message), the timeout
/// in units of 10 ms in the top 16.
#[must_use]
pub fn hop_key(counter: u64, destination: Option<usize>, timeout: Duration) -> u64 {
    let low = counter & ((1 << HOP_COUNTER_BITS) - 1);
    let dest = destination.map_or(0, |d| (d as u64 + 1).min(0xffff));
    let units = (timeout.as_millis() as u64).div_ceil(HOP_TIMEOUT_UNIT_MS).min(0xffff);
    low | (dest << 32) | (units << 48)
}

/// What a hop's correlation id says: the destination and its timeout, if it names one.
#[must_use]
pub fn hop_route(correlation: u64) -> Option<(usize, Duration)> {
    let dest = ((correlation >> 32) & 0xffff) as usize;
    let units = correlation >> 48;
    (dest > 0).then(|| (dest - 1, Duration::from_millis(units * HOP_TIMEOUT_UNIT_MS)))
}

/// Which shard owns what, for a switch of `count` shards, and where the hops sit in each
/// shard's configuration.
///
/// A shard's configuration is the configured participants and links with the hops
/// inserted at fixed places: after the participants (and links) the switch started with.
/// A reload appends participants and links after the hops, so no index moves while the
/// switch runs (the engine's reconfiguration needs that); a restart puts them all first
/// again (the journal names participants by id, not index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// The number of shards.
    pub count: usize,
    /// Per configured participant, its owner shard.
    pub owner: Vec<usize>,
    /// Where the hop participants start in a shard's configuration.
    pub hop_at: usize,
    /// Where the hop links start.
    pub hop_link_at: usize,
}

/// Why a reload cannot keep the shards' plan ([`ShardPlan::extended`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Participants or links were taken out of the configuration's places (a reload only
    /// adds; a removed one is retired in place).
    PlacesTaken,
    /// A participant would change shards: that needs a restart.
    Moves {
        /// Its id.
        participant: String,
        /// The shard it is on.
        from: usize,
        /// The shard the new configuration puts it on.
        to: usize,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PlacesTaken => {
                f.write_str("participants or links were taken out of the configuration's places")
            }
            Self::Moves { participant, from, to } => write!(
                f,
                "participant {participant} would move from shard {from} to shard {to}: that needs a restart"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl ShardPlan {
    /// The plan for `base` over `count` shards: each participant's `shard` (modulo
    /// `count`) where set, else the stable hash of its id; the hops after what `base` has.
    #[must_use]
    pub fn new(count: usize, base: &Config) -> Self {
        let count = count.clamp(1, SHARDS_MAX);
        let owner = base.participants.iter().map(|p| owner_of(p, count)).collect();
        Self { count, owner, hop_at: base.participants.len(), hop_link_at: base.links.len() }
    }

    /// The plan for `base`, a reload of the configuration this plan was made for: the hops
    /// stay where they are, the participants it adds get their owners. An error when a
    /// participant would change shards (a restart moves it) or places were taken away.
    ///
    /// # Errors
    ///
    /// The participant that would move, or the places that went.
    pub fn extended(&self, base: &Config) -> Result<Self, PlanError> {
        if base.participants.len() < self.owner.len() || base.links.len() < self.hop_link_at {
            return Err(PlanError::PlacesTaken);
        }
        let mut next = self.clone();
        for (i, p) in base.participants.iter().enumerate() {
            let o = owner_of(p, self.count);
            match self.owner.get(i) {
                Some(&was) if was != o => {
                    return Err(PlanError::Moves { participant: p.id.clone(), from: was, to: o })
                }
                Some(_) => {}
                None => next.owner.push(o),
            }
        }
        Ok(next)
    }

    /// Configured participant `i`'s index in a shard's configuration.
    #[must_use]
    pub fn participant_index(&self, i: usize) -> usize {
        if self.count > 1 && i >= self.hop_at {
            i + self.count
        } else {
            i
        }
    }

    /// The configured participant at index `i` of a shard's configuration (the inverse of
    /// [`Self::participant_index`]; a hop's index is returned as it is).
    #[must_use]
    pub fn configured_participant(&self, i: usize) -> usize {
        if self.count > 1 && i >= self.hop_at + self.count {
            i - self.count
        } else {
            i
        }
    }

    /// Configured link `spec`'s index in a shard's configuration.
    #[must_use]
    pub fn link_index(&self, spec: usize) -> usize {
        if self.count > 1 && spec >= self.hop_link_at {
            spec + self.count
        } else {
            spec
        }
    }

    /// The shard that owns configured link `spec` of `base` (its participant's owner).
    #[must_use]
    pub fn link_owner(&self, base: &Config, spec: usize) -> usize {
        base.links.get(spec).and_then(|l| self.owner.get(l.participant)).copied().unwrap_or(0)
    }

    /// The index of a shard's hop link toward shard `peer` in its configuration.
    #[must_use]
    pub fn hop_spec(&self, peer: usize) -> usize {
        self.hop_link_at + peer
    }

    /// Shard `shard`'s engine configuration: `base` with a hop participant and link per
    /// shard inserted (see the type's docs), the indices that follow them moved up, and
    /// `via` set on the participants other shards own. With one shard it is `base` itself.
    #[must_use]
    pub fn config_for(&self, base: &Config, shard: usize) -> Config {
        let mut c = base.clone();
        if self.count <= 1 {
            return c;
        }
        let mut participants = Vec::with_capacity(base.participants.len() + self.count);
        for (i, p) in base.participants.iter().enumerate() {
            if i == self.hop_at {
                participants.extend(self.hop_participants());
            }
            let mut p = p.clone();
            let owner = self.owner.get(i).copied().unwrap_or(0);
            p.via = (owner != shard).then_some(self.hop_at + owner);
            participants.push(p);
        }
        if base.participants.len() <= self.hop_at {
            participants.extend(self.hop_participants());
        }
        let mut links = Vec::with_capacity(base.links.len() + self.count);
        for (i, l) in base.links.iter().enumerate() {
            if i == self.hop_link_at {
                links.extend(self.hop_links());
            }
            let mut l = l.clone();
            l.participant = self.participant_index(l.participant);
            links.push(l);
        }
        if base.links.len() <= self.hop_link_at {
            links.extend(self.hop_links());
        }
        let routes: Vec<crate::Route> = base
            .routes
            .routes()
            .iter()
            .map(|r| crate::Route { destination: self.participant_index(r.destination), ..r.clone() })
            .collect();
        // Re-indexing a valid table keeps it valid.
        c.routes = crate::RouteTable::new(routes).unwrap_or_else(|_| base.routes.clone());
        c.participants = participants;
        c.links = links;
        c
    }

    fn hop_participants(&self) -> impl Iterator<Item = Participant> + '_ {
        (0..self.count).map(|j| Participant {
            id: hop_participant_id(j),
            name: format!("shard {j} of this switch"),
            roles: Roles { acquirer: true, issuer: true, network: true },
            acquirer_ids: Vec::new(),
            forwarder_ids: Vec::new(),
            directory: DirectoryEntry::default(),
            hop: Some(j),
            via: None,
            shard: Some(j),
        })
    }

    fn hop_links(&self) -> impl Iterator<Item = LinkSpec> + '_ {
        (0..self.count).map(|j| LinkSpec {
            name: format!("hop:shard-{j}"),
            participant: self.hop_at + j,
            dial: false,
            framing: Framing::Native,
            dialect: corridor_wire::Dialect::Native,
            frame_bytes_max: corridor_wire::FRAME_BYTES_MAX,
            inflight_max: HOP_INFLIGHT_MAX,
            sign_on_required: false,
            // Both ends are this switch: no sign-on, an echo now and then that never
            // takes it down, nor do timeouts (the destination's owner times requests
            // out, not the hop).
            echo_interval: HOP_ECHO_INTERVAL,
            echo_missed_max: u32::MAX,
            at_limit: AtLimit::Backpressure,
            sign_on_timeout: Duration::ZERO,
            frame_timeout: Duration::from_secs(30),
            timeouts_down_max: u32::MAX,
        })
    }
}

/// A participant's owner among `count` shards.
fn owner_of(p: &Participant, count: usize) -> usize {
    match p.shard {
        Some(s) => s % count,
        None => (fnv1a(p.id.as_bytes()) % count as u64) as usize,
    }
}

/// FNV-1a, 64 bits: stable across builds and machines (the standard library's hasher is
/// not), so a participant's owner does not move between restarts.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_keys_carry_destination_and_timeout() {
        let k = hop_key(7, Some(3), Duration::from_millis(2_500));
        assert_eq!(k & 0xffff_ffff, 7);
        assert_eq!(hop_route(k), Some((3, Duration::from_millis(2_500))));
        // Counter past 32 bits wraps into its own bits only.
        let k = hop_key((1 << 32) + 9, Some(0), Duration::from_secs(1));
        assert_eq!(hop_route(k), Some((0, Duration::from_secs(1))));
        assert_eq!(k & 0xffff_ffff, 9);
        assert_eq!(hop_route(hop_key(5, None, Duration::ZERO)), None);
        // A timeout rounds up to the next 10 ms and saturates.
        assert_eq!(
            hop_route(hop_key(1, Some(1), Duration::from_millis(1))).map(|r| r.1),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            hop_route(hop_key(1, Some(1), Duration::from_secs(10_000))).map(|r| r.1),
            Some(Duration::from_millis(0xffff * 10))
        );
    }

    fn base(ps: Vec<Participant>, links: usize) -> Config {
        let link = |p: usize| LinkSpec::for_test(format!("l{p}"), p);
        let n = ps.len();
        let routes = vec![crate::Route {
            key: crate::RouteKey::Default,
            mti_classes: None,
            destination: n - 1,
            timeout: Duration::from_secs(1),
        }];
        Config {
            participants: ps,
            links: (0..links).map(|i| link(i % n)).collect(),
            routes: crate::RouteTable::new(routes).unwrap_or_else(|_| unreachable!()),
            settings: crate::Settings::default(),
            interop: crate::config::Interop::default(),
        }
    }

    fn p(id: &str) -> Participant {
        Participant {
            id: id.into(),
            name: id.into(),
            roles: Roles::default(),
            acquirer_ids: Vec::new(),
            forwarder_ids: Vec::new(),
            directory: DirectoryEntry::default(),
            hop: None,
            via: None,
            shard: None,
        }
    }

    #[test]
    fn owners_are_stable_pinned_and_in_range() {
        let mut ps = vec![p("acq"), p("iss"), p("net")];
        let a = ShardPlan::new(4, &base(ps.clone(), 3));
        assert_eq!(a, ShardPlan::new(4, &base(ps.clone(), 3)));
        assert!(a.owner.iter().all(|&s| s < 4));
        ps[0].shard = Some(1);
        ps[1].shard = Some(2);
        let b = ShardPlan::new(2, &base(ps.clone(), 3));
        assert_eq!(&b.owner[..2], &[1, 0], "pinned, modulo the count");
        assert_eq!(ShardPlan::new(0, &base(ps.clone(), 3)).count, 1);
        let c = b.config_for(&base(ps, 3), 0);
        assert_eq!(c.participants.len(), 5);
        assert_eq!(c.participants[0].via, Some(4), "acq is shard 1's: through its hop");
        assert_eq!(c.participants[1].via, None);
        assert_eq!(c.links.len(), 5);
        assert_eq!(c.links[b.hop_spec(1)].name, "hop:shard-1");
    }

    #[test]
    fn a_reload_appends_after_the_hops_and_moves_nothing() {
        let ps = vec![p("acq"), p("iss")];
        let start = base(ps.clone(), 2);
        let plan = ShardPlan::new(2, &start);
        let before = plan.config_for(&start, 0);
        // A reload adds a participant (the new route's destination) and a link of it.
        let mut more = ps;
        more.push(p("new"));
        let reloaded = base(more, 3);
        let next = plan.extended(&reloaded).unwrap_or_else(|e| panic!("{e}"));
        let after = next.config_for(&reloaded, 0);
        for (i, q) in before.participants.iter().enumerate() {
            assert_eq!(after.participants[i].id, q.id, "participant {i} stays in its place");
        }
        for (i, l) in before.links.iter().enumerate() {
            assert_eq!(after.links[i].name, l.name, "link {i} stays in its place");
        }
        assert_eq!(after.participants[4].id, "new", "after the hops");
        assert_eq!(after.links[4].participant, 4, "its link points at it");
        assert_eq!(after.routes.routes()[0].destination, 4, "and so does the route");
        // A participant pinned elsewhere by the reload would move: refused.
        let mut moved = reloaded.clone();
        moved.participants[0].shard = Some(1 - plan.owner[0]);
        assert!(matches!(plan.extended(&moved), Err(PlanError::Moves { .. })));
    }
}

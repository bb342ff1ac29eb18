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

use std::time::Duration;

use crate::config::{AtLimit, Config, DirectoryEntry, Framing, LinkSpec, Participant, Roles};

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

/// An idle hop is echoed this often (it is never taken down for missing echoes).
const HOP_ECHO_INTERVAL: Duration = Duration::from_secs(60);

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

/// Which shard owns what, for a switch of `count` shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// The number of shards.
    pub count: usize,
    /// Per configured participant, its owner shard.
    pub owner: Vec<usize>,
}

impl ShardPlan {
    /// The plan for `participants` over `count` shards: `pinned[i]` (modulo `count`) where
    /// set, else the stable hash of the id. One shard owns everything.
    #[must_use]
    pub fn new(count: usize, participants: &[Participant], pinned: &[Option<usize>]) -> Self {
        let count = count.clamp(1, SHARDS_MAX);
        let owner = participants
            .iter()
            .enumerate()
            .map(|(i, p)| match pinned.get(i).copied().flatten() {
                Some(s) => s % count,
                None => (fnv1a(p.id.as_bytes()) % count as u64) as usize,
            })
            .collect();
        Self { count, owner }
    }

    /// The shard that owns configured link `spec` of `config` (its participant's owner).
    #[must_use]
    pub fn link_owner(&self, config: &Config, spec: usize) -> usize {
        config.links.get(spec).and_then(|l| self.owner.get(l.participant)).copied().unwrap_or(0)
    }

    /// The index of shard `shard`'s hop link toward shard `peer` in [`Self::config_for`]'s
    /// configuration of `base`.
    #[must_use]
    pub fn hop_spec(&self, base: &Config, peer: usize) -> usize {
        base.links.len() + peer
    }

    /// Shard `shard`'s engine configuration: `base` with a hop participant and link per
    /// shard appended, and `via` set on the participants other shards own. With one shard it
    /// is `base` itself.
    #[must_use]
    pub fn config_for(&self, base: &Config, shard: usize) -> Config {
        let mut c = base.clone();
        if self.count <= 1 {
            return c;
        }
        let n = c.participants.len();
        for (i, p) in c.participants.iter_mut().enumerate() {
            let owner = self.owner.get(i).copied().unwrap_or(0);
            p.via = (owner != shard).then_some(n + owner);
        }
        for j in 0..self.count {
            c.participants.push(Participant {
                id: format!("shard-{j}"),
                name: format!("shard {j} of this switch"),
                roles: Roles { acquirer: true, issuer: true, network: true },
                acquirer_ids: Vec::new(),
                forwarder_ids: Vec::new(),
                directory: DirectoryEntry::default(),
                hop: Some(j),
                via: None,
            });
        }
        for j in 0..self.count {
            c.links.push(LinkSpec {
                name: format!("shard:{shard}>{j}"),
                participant: n + j,
                dial: false,
                framing: Framing::Native,
                dialect: corridor_wire::Dialect::Native,
                frame_bytes_max: corridor_wire::FRAME_BYTES_MAX,
                inflight_max: HOP_INFLIGHT_MAX,
                sign_on_required: false,
                // Both ends are this process: no sign-on, an echo now and then that never
                // takes it down, nor do timeouts (the destination's owner times requests
                // out, not the hop).
                echo_interval: HOP_ECHO_INTERVAL,
                echo_missed_max: u32::MAX,
                at_limit: AtLimit::Backpressure,
                sign_on_timeout: Duration::ZERO,
                frame_timeout: Duration::from_secs(30),
                timeouts_down_max: u32::MAX,
            });
        }
        c
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

    #[test]
    fn owners_are_stable_pinned_and_in_range() {
        let p = |id: &str| Participant {
            id: id.into(),
            name: id.into(),
            roles: Roles::default(),
            acquirer_ids: Vec::new(),
            forwarder_ids: Vec::new(),
            directory: DirectoryEntry::default(),
            hop: None,
            via: None,
        };
        let ps = [p("acq"), p("iss"), p("net")];
        let a = ShardPlan::new(4, &ps, &[]);
        assert_eq!(a, ShardPlan::new(4, &ps, &[]));
        assert!(a.owner.iter().all(|&s| s < 4));
        let b = ShardPlan::new(2, &ps, &[Some(1), Some(2), None]);
        assert_eq!(&b.owner[..2], &[1, 0]);
        assert_eq!(ShardPlan::new(0, &ps, &[]).count, 1);
    }
}

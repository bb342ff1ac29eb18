//! The link registry, as a type: the open links by id, each participant's links in the
//! order they came up, the round-robin cursor that breaks ties between them, the shard's
//! id space, and the totals of the links that have closed.
//!
//! Invariants, held by construction (the fields are private):
//!
//! - a link is in `open` exactly when it is in its participant's list (`by_participant`);
//! - an id is never reused: the low 24 bits count connections, the top 8 name the shard;
//! - `totals[spec]` counts every connection of configured link `spec` ever made, and the
//!   frames of those that closed.

use rustc_hash::FxHashMap;

use crate::{
    limits::{LINKS_MAX, LINK_OUT_BYTES_MAX},
    link::{Link, LinkId},
    stats::LinkCounts,
};

/// The low bits of a link id that count connections; the top 8 name the shard.
const LINK_COUNTER_MASK: u32 = 0x00ff_ffff;

/// Why a request could not be given a link to its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// No routable link is up.
    NoLink,
    /// Every routable link is at its in-flight limit or has a full batch.
    AtLimit,
}

/// The open links. See the module docs.
#[derive(Default)]
pub(crate) struct Links {
    open: FxHashMap<LinkId, Link>,
    /// Per participant: its open links, in the order they came up.
    by_participant: Vec<Vec<LinkId>>,
    /// Per participant: where the next choice among equals starts.
    round_robin: Vec<usize>,
    next: u32,
    /// The shard's bits of every link id.
    base: u32,
    /// Per configured link: its connections ever made, and the frames of those closed.
    totals: Vec<LinkCounts>,
}

impl Links {
    /// A registry for `participants` participants and `links` configured links.
    pub(crate) fn new(participants: usize, links: usize) -> Self {
        let mut r = Self::default();
        r.resize(participants, links);
        r
    }

    /// Room for a reloaded configuration's participants and links (they only grow:
    /// indexes are stable across reloads).
    pub(crate) fn resize(&mut self, participants: usize, links: usize) {
        self.by_participant.resize(participants.max(self.by_participant.len()), Vec::new());
        self.round_robin.resize(participants.max(self.round_robin.len()), 0);
        self.totals.resize(links.max(self.totals.len()), LinkCounts::default());
    }

    /// Makes the ids this registry gives shard `index`'s.
    pub(crate) fn set_shard(&mut self, index: usize) {
        assert!(self.open.is_empty() && self.next == 0, "a shard is named before any link is up");
        self.base = (index as u32) << 24;
    }

    /// The shard this registry's ids name.
    pub(crate) fn shard(&self) -> usize {
        (self.base >> 24) as usize
    }

    /// Registers `link` (of configured link `spec`): its id, or `None` at [`LINKS_MAX`].
    pub(crate) fn add(&mut self, spec: usize, link: Link) -> Option<LinkId> {
        if self.open.len() >= LINKS_MAX {
            return None;
        }
        let id = LinkId(self.base | (self.next & LINK_COUNTER_MASK));
        self.next = self.next.wrapping_add(1);
        self.totals[spec].connections += 1;
        self.by_participant[link.participant].push(id);
        let replaced = self.open.insert(id, link);
        assert!(replaced.is_none(), "{id}: link ids are never reused");
        Some(id)
    }

    /// Takes link `id` out, its frames added to its configured link's totals.
    pub(crate) fn remove(&mut self, id: LinkId) -> Option<Link> {
        let l = self.open.remove(&id)?;
        self.by_participant[l.participant].retain(|&x| x != id);
        let t = &mut self.totals[l.spec];
        t.frames_in += l.frames_in;
        t.frames_out += l.frames_out;
        Some(l)
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    pub(crate) fn get(&self, id: &LinkId) -> Option<&Link> {
        self.open.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &LinkId) -> Option<&mut Link> {
        self.open.get_mut(id)
    }

    pub(crate) fn contains_key(&self, id: &LinkId) -> bool {
        self.open.contains_key(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&LinkId, &Link)> {
        self.open.iter()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Link> {
        self.open.values()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Link> {
        self.open.values_mut()
    }

    /// The open ids, in order.
    pub(crate) fn ids(&self) -> Vec<LinkId> {
        let mut v: Vec<LinkId> = self.open.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// The ids of the open links `keep` selects, in order.
    pub(crate) fn select(&self, keep: impl Fn(&Link) -> bool) -> Vec<LinkId> {
        let mut v: Vec<LinkId> = self.open.iter().filter(|(_, l)| keep(l)).map(|(&id, _)| id).collect();
        v.sort_unstable();
        v
    }

    /// The link a frame being handled came from: it is open while its frame is handled
    /// (see `Engine::origin`; a programmer error otherwise).
    pub(crate) fn origin(&self, id: LinkId) -> &Link {
        self.open
            .get(&id)
            .unwrap_or_else(|| unreachable!("{id}: a frame's link is there while it is handled"))
    }

    /// [`Links::origin`], to change.
    pub(crate) fn origin_mut(&mut self, id: LinkId) -> &mut Link {
        self.open
            .get_mut(&id)
            .unwrap_or_else(|| unreachable!("{id}: a frame's link is there while it is handled"))
    }

    /// `participant`'s open links, in the order they came up.
    pub(crate) fn of_participant(&self, participant: usize) -> &[LinkId] {
        &self.by_participant[participant]
    }

    /// The first routable link of `participant`.
    pub(crate) fn first_routable(&self, participant: usize) -> Option<LinkId> {
        self.by_participant[participant]
            .iter()
            .copied()
            .find(|l| self.open.get(l).is_some_and(Link::routable))
    }

    /// The least loaded routable link of `participant` under its in-flight limit and with
    /// its batch draining; ties go round-robin.
    pub(crate) fn pick(&mut self, participant: usize) -> Result<LinkId, Unavailable> {
        let candidates = &self.by_participant[participant];
        let n = candidates.len();
        let start = self.round_robin[participant];
        let mut best: Option<(u32, LinkId)> = None;
        let mut any = false;
        for i in 0..n {
            let id = candidates[(start + i) % n];
            let Some(l) = self.open.get(&id) else { unreachable!("{id}: a participant's links are open") };
            if !l.routable() {
                continue;
            }
            any = true;
            if l.inflight_out >= l.inflight_max || l.out.len() >= LINK_OUT_BYTES_MAX / 2 {
                continue;
            }
            if best.is_none_or(|(b, _)| l.inflight_out < b) {
                best = Some((l.inflight_out, id));
            }
        }
        self.round_robin[participant] = start.wrapping_add(1);
        match best {
            Some((_, id)) => Ok(id),
            None if any => Err(Unavailable::AtLimit),
            None => Err(Unavailable::NoLink),
        }
    }

    /// Per configured link: connections made and frames carried, open connections
    /// included.
    pub(crate) fn counts(&self) -> Vec<LinkCounts> {
        let mut out = self.totals.clone();
        for l in self.open.values() {
            let c = &mut out[l.spec];
            c.open += 1;
            c.frames_in += l.frames_in;
            c.frames_out += l.frames_out;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{config::LinkSpec, Engine};

    fn link(participant: usize) -> Link {
        let spec = LinkSpec::for_test(format!("l{participant}"), participant);
        Link::new(participant, &spec, Instant::now())
    }

    #[test]
    fn a_link_is_its_participants_while_open_and_its_frames_stay_counted_after() {
        let mut r = Links::new(2, 2);
        r.set_shard(3);
        let a = r.add(0, link(0)).unwrap();
        let b = r.add(1, link(1)).unwrap();
        let c = r.add(1, link(1)).unwrap();
        assert_eq!(Engine::shard_of_link(a), 3, "the shard is in the id");
        assert_eq!(r.shard(), 3);
        assert_eq!(r.of_participant(1), &[b, c]);
        r.get_mut(&b).unwrap().frames_in = 5;
        r.remove(b).unwrap();
        assert!(r.remove(b).is_none());
        assert_eq!(r.of_participant(1), &[c]);
        let d = r.add(1, link(1)).unwrap();
        assert!(d > c && d != b, "ids are never reused");
        let counts = r.counts();
        assert_eq!((counts[1].connections, counts[1].open, counts[1].frames_in), (3, 2, 5));
    }

    #[test]
    fn a_request_goes_to_the_least_loaded_link_and_ties_take_turns() {
        let mut r = Links::new(1, 1);
        assert_eq!(r.pick(0), Err(Unavailable::NoLink));
        let a = r.add(0, link(0)).unwrap();
        let b = r.add(0, link(0)).unwrap();
        let first = r.pick(0).unwrap();
        let second = r.pick(0).unwrap();
        assert_ne!(first, second, "equals take turns");
        r.get_mut(&a).unwrap().inflight_out = 1;
        assert_eq!((r.pick(0), r.pick(0)), (Ok(b), Ok(b)), "a is at its limit of 1");
        r.get_mut(&b).unwrap().inflight_out = 1;
        assert_eq!(r.pick(0), Err(Unavailable::AtLimit));
    }
}

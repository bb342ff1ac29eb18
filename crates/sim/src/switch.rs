//! The switch as the simulator runs it: one engine, or two shards joined by a hop.
//!
//! With two shards each participant lives on the shard the seed gave it (see
//! `corridor_engine::shards`), each shard has its own journal on its own disk, and what one
//! shard writes on its hop reaches the other as a simulated event after a seeded delay, in
//! order — as the network layer's lanes carry write batches between threads. The simulator
//! sees one switch: a side's link lives on its participant's shard, and the hops are this
//! type's own business. An engine closing a hop is an invariant broken (it never should:
//! nothing on a hop stalls, lies or times out).

use std::time::Instant;

use bytes::BytesMut;
use corridor_engine::{shards::ShardPlan, Config, Engine, Event, LinkId, LinkStatus, RouteTable};
use corridor_journal::SyncBatch;

/// One simulated switch of one or two shards.
pub(crate) struct Switch {
    shards: Vec<Engine>,
    plan: ShardPlan,
    base: Config,
    /// Per shard, its hop link (none with one shard).
    hop: Vec<Option<LinkId>>,
    /// Per shard, what reached it over its hop and its engine has not taken yet.
    hop_in: Vec<BytesMut>,
    /// What shards wrote on their hops since the simulator last looked: (from, bytes).
    pub(crate) hop_out: Vec<(usize, BytesMut)>,
    /// Set when an engine closed a hop.
    pub(crate) hop_closed: Option<String>,
}

impl Switch {
    /// The switch of `plan` over `base`: `make(k, config)` builds shard `k`'s engine (with
    /// its journal) for its configuration.
    pub(crate) fn new(
        base: Config,
        plan: ShardPlan,
        now: Instant,
        mut make: impl FnMut(usize, Config) -> Engine,
    ) -> Self {
        let mut shards: Vec<Engine> = (0..plan.count)
            .map(|k| {
                let mut e = make(k, plan.config_for(&base, k));
                e.set_shard(k);
                e
            })
            .collect();
        let routes = shards[0].routes();
        for e in shards.iter_mut().skip(1) {
            e.share_routes(std::sync::Arc::clone(&routes));
        }
        let mut s = Self {
            hop: vec![None; plan.count],
            hop_in: vec![BytesMut::new(); plan.count],
            shards,
            plan,
            base,
            hop_out: Vec::new(),
            hop_closed: None,
        };
        if s.plan.count > 1 {
            for k in 0..s.plan.count {
                s.hop_up(k, now);
            }
        }
        s
    }

    fn hop_up(&mut self, k: usize, now: Instant) {
        let peer = 1 - k;
        self.hop[k] = self.shards[k].link_up(self.plan.hop_spec(peer), now);
    }

    /// The shard that owns configured link `spec`.
    pub(crate) fn owner(&self, spec: usize) -> usize {
        self.plan.link_owner(&self.base, spec)
    }

    fn at(link: LinkId) -> usize {
        Engine::shard_of_link(link)
    }

    fn is_hop(&self, link: LinkId) -> bool {
        self.hop.get(Self::at(link)).copied().flatten() == Some(link)
    }

    pub(crate) fn link_up(&mut self, spec: usize, now: Instant) -> Option<LinkId> {
        let k = self.owner(spec);
        self.shards[k].link_up(self.plan.link_index(spec), now)
    }

    pub(crate) fn link_down(&mut self, link: LinkId, now: Instant) {
        self.shards[Self::at(link)].link_down(link, now);
    }

    pub(crate) fn handle_read(&mut self, link: LinkId, buf: &mut BytesMut, now: Instant) {
        self.shards[Self::at(link)].handle_read(link, buf, now);
    }

    pub(crate) fn handle_written(&mut self, link: LinkId, n: usize) {
        self.shards[Self::at(link)].handle_written(link, n);
    }

    pub(crate) fn take_output(&mut self, link: LinkId) -> Option<BytesMut> {
        self.shards[Self::at(link)].take_output(link)
    }

    pub(crate) fn link_status(&self, link: LinkId) -> Option<(LinkStatus, u32)> {
        let e = &self.shards[Self::at(link)];
        let st = e.link_status(link)?;
        let max = e.config().links[st.spec].inflight_max;
        Some((st, max))
    }

    /// The next link with output for the simulator; what shards wrote on their hops is
    /// taken here (on the lane is delivered) into [`Switch::hop_out`].
    pub(crate) fn poll_dirty(&mut self) -> Option<LinkId> {
        for k in 0..self.shards.len() {
            while let Some(link) = self.shards[k].poll_dirty() {
                if self.is_hop(link) {
                    if let Some(out) = self.shards[k].take_output(link) {
                        self.shards[k].handle_written(link, out.len());
                        self.hop_out.push((k, out));
                    }
                    continue;
                }
                return Some(link);
            }
        }
        None
    }

    /// The next engine event for the simulator; a hop's own are handled here.
    pub(crate) fn poll_event(&mut self, now: Instant) -> Option<Event> {
        for k in 0..self.shards.len() {
            while let Some(ev) = self.shards[k].poll_event() {
                match ev {
                    Event::Close { link, reason } if self.is_hop(link) => {
                        self.hop_closed
                            .get_or_insert_with(|| format!("shard {k} closed its hop: {reason:?}"));
                        self.shards[k].link_down(link, now);
                        self.hop_up(k, now);
                        self.feed_hop(k, now);
                    }
                    Event::Resume { link } if self.is_hop(link) => self.feed_hop(k, now),
                    other => return Some(other),
                }
            }
        }
        None
    }

    /// Bytes shard `from` wrote on its hop reach the other shard.
    pub(crate) fn deliver_hop(&mut self, to: usize, bytes: &[u8], now: Instant) {
        if let Some(buf) = self.hop_in.get_mut(to) {
            buf.extend_from_slice(bytes);
            self.feed_hop(to, now);
        }
    }

    fn feed_hop(&mut self, k: usize, now: Instant) {
        let Some(link) = self.hop[k] else { return };
        let mut buf = std::mem::take(&mut self.hop_in[k]);
        self.shards[k].handle_read(link, &mut buf, now);
        self.hop_in[k] = buf;
    }

    /// Shard `k`'s next journal batch.
    pub(crate) fn poll_journal(&mut self, k: usize, now: Instant, unix_ms: u64) -> Option<SyncBatch> {
        self.shards[k].poll_journal(now, unix_ms)
    }

    pub(crate) fn handle_journal_synced(&mut self, k: usize, last: u64) {
        self.shards[k].handle_journal_synced(last);
    }

    pub(crate) fn set_storage_full(&mut self, k: usize, full: bool) {
        self.shards[k].set_storage_full(full);
    }

    pub(crate) fn journal_durable(&self, k: usize) -> Option<u64> {
        self.shards[k].journal_durable()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.shards.iter().filter_map(Engine::poll_timeout).min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for e in &mut self.shards {
            e.handle_timeout(now);
        }
    }

    pub(crate) fn requests_pending(&self) -> usize {
        self.shards.iter().map(Engine::requests_pending).sum()
    }

    pub(crate) fn reversals_pending(&self) -> usize {
        self.shards.iter().map(Engine::reversals_pending).sum()
    }

    pub(crate) fn exceptions_len(&self) -> usize {
        self.shards.iter().map(Engine::exceptions_len).sum()
    }

    pub(crate) fn outcomes_remembered(&self) -> usize {
        self.shards.iter().map(Engine::outcomes_remembered).sum()
    }

    /// What the in-flight limits allow in all (a request that crosses is in flight on both
    /// shards, and a hop's limit counts).
    pub(crate) fn inflight_bound(&self) -> usize {
        self.shards.iter().flat_map(|e| e.config().links.iter()).map(|l| l.inflight_max as usize).sum()
    }

    /// Replaces the route table every shard reads (`table` indexes the configured
    /// participants).
    pub(crate) fn reload_routes(&mut self, table: RouteTable) {
        let c = Config { routes: table, ..self.base.clone() };
        let indexed = self.plan.config_for(&c, 0).routes;
        self.shards[0].routes().store(std::sync::Arc::new(indexed));
    }

    /// A reload of the whole configuration: `change` edits the configured one (the route
    /// table in force kept); `retire`'s links' connections are retired.
    pub(crate) fn reconfigure(
        &mut self,
        change: impl Fn(&mut Config),
        retire: &[usize],
        deadline: Instant,
        now: Instant,
    ) -> Result<(), String> {
        let mut base = self.base.clone();
        change(&mut base);
        // The route table in force, in configured indices: a shard's, re-indexed back.
        let routes: Vec<corridor_engine::Route> = self.shards[0]
            .routes()
            .load()
            .routes()
            .iter()
            .map(|r| corridor_engine::Route {
                destination: self.plan.configured_participant(r.destination),
                ..r.clone()
            })
            .collect();
        base.routes = RouteTable::new(routes).map_err(|e| e.to_string())?;
        let retired: Vec<usize> = retire.iter().map(|&s| self.plan.link_index(s)).collect();
        for k in 0..self.shards.len() {
            let c = self.plan.config_for(&base, k);
            self.shards[k].reconfigure(c, &retired, deadline, now).map_err(|e| e.to_string())?;
            self.shards[k].record_config([0x5a; 32]);
        }
        self.base = base;
        Ok(())
    }

    pub(crate) fn poll_retired(&mut self, now: Instant) {
        for e in &mut self.shards {
            e.poll_retired(now);
        }
    }

    pub(crate) fn retiring(&self) -> usize {
        self.shards.iter().map(Engine::retiring).sum()
    }
}

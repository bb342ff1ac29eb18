//! The switch as the simulator runs it: one engine, or two shards joined by a hop.
//!
//! With two shards each participant lives on the shard the seed gave it (see
//! `corridor_engine::shards`), each shard has its own journal on its own disk, and what one
//! shard writes on its hop reaches the other as a simulated event after a seeded delay, in
//! order — as the network layer's lanes carry write batches between threads. The simulator
//! sees one switch: a side's link lives on its participant's shard, and the hops are this
//! type's own business. An engine closing a hop is an invariant broken (it never should:
//! nothing on a hop stalls, lies or times out). The hop itself may break, as one between
//! nodes would ([`Switch::hop_cut`]): both links go down, what was on its way is lost, and
//! a new link comes up at each end when it heals.

use std::time::Instant;

use bytes::BytesMut;
use corridor_engine::{
    driver::{self, AfterWrite, JournalCycle, JournalStep, Written},
    shards::ShardPlan,
    CloseReason, Config, Engine, LinkId, LinkStatus, RouteTable,
};

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
    /// Per shard, its journal's batch cycle (the driver's, as the network layer runs it).
    cycles: Vec<JournalCycle>,
    /// How many times the hop broke: bytes sent before a break are lost with it.
    hop_generation: u64,
}

/// What a flush of every shard raised for the simulator: output per link (taken), and the
/// links to close and to read again. A hop's own are handled inside.
#[derive(Default)]
pub(crate) struct Flushed {
    pub(crate) outputs: Vec<(LinkId, BytesMut)>,
    pub(crate) close: Vec<LinkId>,
    pub(crate) resume: Vec<LinkId>,
}

/// The simulator's side of the driver for shard `k`: output is taken at once (the
/// simulator delivers it as events), a hop's output goes to the other shard, and a hop's
/// close is an invariant broken (the hop is brought up again so the run goes on).
struct Io<'a> {
    k: usize,
    hop: &'a mut Option<LinkId>,
    hop_spec: usize,
    hop_in: &'a mut BytesMut,
    hop_out: &'a mut Vec<(usize, BytesMut)>,
    hop_closed: &'a mut Option<String>,
    flushed: &'a mut Flushed,
    now: Instant,
}

impl Io<'_> {
    fn is_hop(&self, link: LinkId) -> bool {
        *self.hop == Some(link)
    }

    fn feed_hop(&mut self, engine: &mut Engine) {
        let Some(link) = *self.hop else { return };
        engine.handle_read(link, self.hop_in, self.now);
    }
}

impl driver::Io for Io<'_> {
    fn writable(&mut self, engine: &mut Engine, link: LinkId) {
        if self.is_hop(link) {
            // The other shard gets it after the hop's delay, in order.
            if let Some(out) = driver::take_for_hop(engine, link) {
                self.hop_out.push((self.k, out));
            }
        } else if let Some(out) = engine.take_output(link) {
            self.flushed.outputs.push((link, out));
        }
    }

    fn close(&mut self, engine: &mut Engine, link: LinkId, reason: CloseReason) {
        if self.is_hop(link) {
            let k = self.k;
            self.hop_closed.get_or_insert_with(|| format!("shard {k} closed its hop: {reason:?}"));
            engine.link_down(link, self.now);
            *self.hop = engine.link_up(self.hop_spec, self.now);
            self.feed_hop(engine);
        } else {
            self.flushed.close.push(link);
        }
    }

    fn resume(&mut self, engine: &mut Engine, link: LinkId) {
        if self.is_hop(link) {
            self.feed_hop(engine);
        } else {
            self.flushed.resume.push(link);
        }
    }

    // The simulator asks every shard for its next deadline after each flush
    // (`Switch::poll_timeout`), and polls each journal cycle after each flush.
    fn deadline(&mut self, _: Option<Instant>) {}

    fn journal_due(&mut self) {}
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
            cycles: (0..plan.count).map(|_| JournalCycle::default()).collect(),
            shards,
            plan,
            base,
            hop_out: Vec::new(),
            hop_closed: None,
            hop_generation: 0,
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

    /// The hop's generation: what was sent on it in another is lost.
    pub(crate) fn hop_generation(&self) -> u64 {
        self.hop_generation
    }

    /// Whether the shards are joined by a hop that is up.
    pub(crate) fn hop_up_now(&self) -> bool {
        self.shards.len() > 1 && self.hop.iter().all(Option::is_some)
    }

    /// The hop breaks, as a connection between nodes does: each end's link goes down, what
    /// either end had received of a frame is dropped, and what is on its way is lost (a
    /// new generation). Its new generation.
    pub(crate) fn hop_cut(&mut self, now: Instant) -> u64 {
        self.hop_generation += 1;
        for k in 0..self.shards.len() {
            if let Some(link) = self.hop[k].take() {
                self.shards[k].link_down(link, now);
            }
            self.hop_in[k].clear();
        }
        self.hop_generation
    }

    /// Shard `k` starts again as `make` builds it for its configuration (its node died and
    /// starts again on its disk; the other shard runs on): the hop breaks as it went (a new
    /// generation: what was on its way is lost), its journal's batch cycle starts afresh,
    /// and the hop stays down until [`Switch::hop_heal`]. The hop's new generation.
    pub(crate) fn restart_shard(
        &mut self,
        k: usize,
        now: Instant,
        make: impl FnOnce(Config) -> Engine,
    ) -> u64 {
        let generation = self.hop_cut(now);
        let mut e = make(self.plan.config_for(&self.base, k));
        e.set_shard(k);
        e.share_routes(self.shards[1 - k].routes());
        self.shards[k] = e;
        self.cycles[k] = JournalCycle::default();
        generation
    }

    /// The hop comes up again: a new link at each end.
    pub(crate) fn hop_heal(&mut self, now: Instant) {
        for k in 0..self.shards.len() {
            if self.hop[k].is_none() {
                self.hop_up(k, now);
            }
        }
    }

    /// The shard that owns configured link `spec`.
    pub(crate) fn owner(&self, spec: usize) -> usize {
        self.plan.link_owner(&self.base, spec)
    }

    fn at(link: LinkId) -> usize {
        Engine::shard_of_link(link)
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

    pub(crate) fn link_status(&self, link: LinkId) -> Option<(LinkStatus, u32)> {
        let e = &self.shards[Self::at(link)];
        let st = e.link_status(link)?;
        let max = e.config().links[st.spec].inflight_max;
        Some((st, max))
    }

    /// Polls every shard in the driver's order (`corridor_engine::driver::flush`); what
    /// shards wrote on their hops is taken here (on the lane is delivered) into
    /// [`Switch::hop_out`].
    pub(crate) fn flush(&mut self, now: Instant) -> Flushed {
        let mut flushed = Flushed::default();
        for k in 0..self.shards.len() {
            let hop_spec = if self.shards.len() > 1 { self.plan.hop_spec(1 - k) } else { 0 };
            let mut io = Io {
                k,
                hop: &mut self.hop[k],
                hop_spec,
                hop_in: &mut self.hop_in[k],
                hop_out: &mut self.hop_out,
                hop_closed: &mut self.hop_closed,
                flushed: &mut flushed,
                now,
            };
            driver::flush(&mut self.shards[k], &mut io);
        }
        flushed
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
        self.shards[k].handle_read(link, &mut self.hop_in[k], now);
    }

    /// Shard `k`'s journal's next step (the driver's batch cycle).
    pub(crate) fn poll_journal(&mut self, k: usize, now: Instant, unix_ms: u64) -> Option<JournalStep> {
        self.cycles[k].poll(&mut self.shards[k], now, unix_ms)
    }

    /// Shard `k`'s batch was written as `result` says.
    pub(crate) fn journal_written(&mut self, k: usize, result: Written, now: Instant) -> AfterWrite {
        self.cycles[k].written(&mut self.shards[k], result, now)
    }

    /// Shard `k`'s full disk was looked at: `room` or not.
    pub(crate) fn journal_looked(&mut self, k: usize, room: bool, now: Instant) {
        self.cycles[k].looked(&mut self.shards[k], room, now);
    }

    /// Whether shard `k`'s journal found its disk full and has not found room since.
    pub(crate) fn journal_full(&self, k: usize) -> bool {
        self.cycles[k].full()
    }

    pub(crate) fn journal_durable(&self, k: usize) -> Option<u64> {
        self.shards[k].journal_durable()
    }

    /// The next deadline: the engines' timers, and the journal cycles' of shards whose disk
    /// is not busy (`busy(k)`: one writing takes its next batch once its write is done).
    pub(crate) fn poll_timeout(&self, busy: impl Fn(usize) -> bool) -> Option<Instant> {
        let cycles = (self.shards.iter().zip(&self.cycles).enumerate())
            .filter(|(k, _)| !busy(*k))
            .filter_map(|(_, (e, c))| c.poll_timeout(e));
        self.shards.iter().filter_map(Engine::poll_timeout).chain(cycles).min()
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

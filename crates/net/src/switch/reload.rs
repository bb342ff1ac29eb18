//! A reload while running: which links' loops are kept, changed, added, removed or
//! restarted, split by shard; the engine reconfigured; retired links drained then closed.

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

/// What a reload does to one configured link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPlan {
    /// Nothing (or only limits the engine applies at once).
    Keep,
    /// New: start listening or dialing.
    Add,
    /// Gone: stop listening or dialing; its connections drain and close.
    Remove,
    /// Changed in a way open connections cannot take: they drain and close, and new ones
    /// use the new settings (a listening address that moved is bound anew).
    Restart,
}

/// A reloaded configuration for a running switch (see `corridor-config`'s reload).
pub struct Reconfigure {
    /// The engine's new configuration (indices stable).
    pub engine: corridor_engine::Config,
    /// Per configured link of it, by index.
    pub plan: Vec<LinkPlan>,
    /// The new configuration's listening links.
    pub listens: Vec<Listen>,
    /// ... and dialed ones.
    pub dials: Vec<Dial>,
    /// The new drain timeout.
    pub drain_timeout: Duration,
    /// The new configuration's SHA-256, journaled.
    pub digest: [u8; 32],
}

/// Shard `k`'s share of `listens` and `dials` (indexed as `base`'s links): the links its
/// participants own, indexed as in its configuration (see `ShardPlan::link_index`).
#[must_use]
pub fn shard_links(
    plan: &corridor_engine::shards::ShardPlan,
    base: &corridor_engine::Config,
    k: usize,
    listens: &[Listen],
    dials: &[Dial],
) -> (Vec<Listen>, Vec<Dial>) {
    let owned = |spec: usize| plan.link_owner(base, spec) == k;
    (
        listens
            .iter()
            .filter(|l| owned(l.spec))
            .map(|l| Listen { spec: plan.link_index(l.spec), ..l.clone() })
            .collect(),
        dials
            .iter()
            .filter(|d| owned(d.spec))
            .map(|d| Dial { spec: plan.link_index(d.spec), ..d.clone() })
            .collect(),
    )
}

/// `r` split into each shard's share: its engine's configuration (with its hops), the
/// listening and dialed links it owns, the hops kept; and the plan it makes. Refused when a
/// participant would move to another shard (see `ShardPlan::extended`).
pub(crate) fn split_reconfigure(
    r: Reconfigure,
    count: usize,
    old: Option<&corridor_engine::shards::ShardPlan>,
) -> Result<(Vec<Reconfigure>, corridor_engine::shards::ShardPlan), ReconfigureError> {
    let plan = match old {
        Some(old) => old.extended(&r.engine).map_err(ReconfigureError::Shards)?,
        None => corridor_engine::shards::ShardPlan::new(count, &r.engine),
    };
    let mut link_plan = Vec::with_capacity(r.plan.len() + count);
    for (i, p) in r.plan.iter().enumerate() {
        if i == plan.hop_link_at {
            link_plan.extend(std::iter::repeat_n(LinkPlan::Keep, count));
        }
        link_plan.push(*p);
    }
    if r.plan.len() <= plan.hop_link_at {
        link_plan.extend(std::iter::repeat_n(LinkPlan::Keep, count));
    }
    let parts = (0..count)
        .map(|k| {
            let (listens, dials) = shard_links(&plan, &r.engine, k, &r.listens, &r.dials);
            Reconfigure {
                engine: plan.config_for(&r.engine, k),
                plan: link_plan.clone(),
                listens,
                dials,
                drain_timeout: r.drain_timeout,
                digest: r.digest,
            }
        })
        .collect();
    Ok((parts, plan))
}

/// Applies `r` on the switch's thread: binds what must be bound first (a failure there
/// changes nothing), then the engine takes the configuration, then the loops follow it.
pub(super) async fn reconfigure(shared: &Rc<Shared>, r: Reconfigure) -> Result<usize, ReconfigureError> {
    if shared.stop.is_cancelled() {
        return Err(ReconfigureError::Draining);
    }
    let plan = |spec: usize| r.plan.get(spec).copied().unwrap_or(LinkPlan::Keep);
    let current = |spec: usize| shared.loops.borrow().get(&spec).cloned();
    // Bind first: new listening links, and restarted ones whose address moved.
    let mut bound = Vec::new();
    for l in &r.listens {
        let rebind = match (plan(l.spec), current(l.spec)) {
            (LinkPlan::Add, _) => true,
            (LinkPlan::Restart, Some(LoopCtl::Listen(old, _, _))) => old.borrow().address != l.address,
            (LinkPlan::Restart, _) => true,
            _ => false,
        };
        if rebind {
            let listener = bind_listener(l).await.map_err(|error| ReconfigureError::Bind {
                link: l.name.clone(),
                address: l.address,
                error,
            })?;
            bound.push((l.clone(), listener));
        }
    }
    let retire: Vec<usize> =
        (0..r.plan.len()).filter(|&s| matches!(plan(s), LinkPlan::Remove | LinkPlan::Restart)).collect();
    let now = Instant::now();
    let deadline = now + r.drain_timeout;
    shared
        .input(|engine| {
            engine.reconfigure(r.engine, &retire, deadline, now)?;
            engine.record_config(r.digest);
            Ok(())
        })
        .map_err(ReconfigureError::Engine)?;
    shared.drain_timeout.set(r.drain_timeout);
    // Loops: stop the removed, follow the changed, start the new.
    for &spec in &retire {
        let Some(ctl) = current(spec) else { continue };
        match ctl {
            LoopCtl::Listen(settings, cancel, quic) => {
                let moved = bound.iter().any(|(l, _)| l.spec == spec);
                let new = r.listens.iter().find(|l| l.spec == spec);
                match (plan(spec), new) {
                    (LinkPlan::Restart, Some(new)) if !moved => {
                        if let (Some(e), Transport::Quic(QuicLink { side: QuicSide::Server(server), .. })) =
                            (&quic, &new.transport)
                        {
                            e.set_server_config(Some(server.clone()));
                        }
                        *settings.borrow_mut() = new.clone();
                    }
                    _ => {
                        cancel.cancel();
                        shared.loops.borrow_mut().remove(&spec);
                    }
                }
            }
            LoopCtl::Dial(_, cancel) => {
                cancel.cancel();
                shared.loops.borrow_mut().remove(&spec);
            }
        }
    }
    for (l, listener) in bound {
        spawn_listen(shared, l, listener);
    }
    for d in &r.dials {
        if matches!(plan(d.spec), LinkPlan::Add | LinkPlan::Restart) {
            spawn_dial(shared, d.clone());
        }
    }
    // Limits and timings of loops that stay (connection limits, backoff) follow too.
    for l in &r.listens {
        if plan(l.spec) == LinkPlan::Keep {
            if let Some(LoopCtl::Listen(settings, _, _)) = current(l.spec) {
                *settings.borrow_mut() = l.clone();
            }
        }
    }
    for d in &r.dials {
        if plan(d.spec) == LinkPlan::Keep {
            if let Some(LoopCtl::Dial(settings, _)) = current(d.spec) {
                *settings.borrow_mut() = d.clone();
            }
        }
    }
    let retiring = shared.engine.borrow().retiring();
    if retiring > 0 && !shared.retiring.get() {
        shared.retiring.set(true);
        tokio::task::spawn_local(retire_loop(Rc::clone(shared)));
    }
    Ok(retiring)
}

/// Closes retired connections as they drain (see `Engine::poll_retired`).
pub(super) async fn retire_loop(shared: Rc<Shared>) {
    loop {
        tokio::time::sleep(DRAIN_POLL).await;
        shared.input(|e| e.poll_retired(Instant::now()));
        if shared.engine.borrow().retiring() == 0 {
            shared.retiring.set(false);
            return;
        }
    }
}

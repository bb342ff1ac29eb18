//! Operations on a running shard: the control directory, commands from a handle, the
//! drain, snapshots and the final report.

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

/// Operators' requests through the journal directory (see [`crate::control`]): each is
/// acted on by the engine (which journals and logs it) and answered.
pub(super) async fn control_loop(shared: Rc<Shared>, dir: std::path::PathBuf) {
    let mut tick = tokio::time::interval(crate::control::CONTROL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let d = dir.clone();
        let Ok(requests) = tokio::task::spawn_blocking(move || crate::control::pending(&d)).await else {
            continue;
        };
        if requests.is_empty() {
            continue;
        }
        let answers: Vec<(std::path::PathBuf, bool)> = shared.input(|engine| {
            let now = Instant::now();
            requests
                .into_iter()
                .map(|(path, req)| {
                    let done = match req {
                        Some((crate::control::Op::Retry, id)) => engine.saf_retry(id, now),
                        Some((crate::control::Op::Drop, id)) => engine.saf_drop(id, now),
                        None => false,
                    };
                    (path, done)
                })
                .collect()
        });
        // Answered once what they did is durable: the journal writer takes it from here,
        // and the answer only says the switch has it.
        let _ = tokio::task::spawn_blocking(move || {
            for (path, done) in answers {
                crate::control::answer(&path, done);
            }
        })
        .await;
    }
}

pub(super) fn report(engine: &Engine) -> Report {
    let names = engine.config().links.iter().map(|l| l.name.clone());
    Report {
        stats: engine.stats().clone(),
        links: names.zip(engine.link_counts()).collect(),
        requests_pending: engine.requests_pending(),
        reversals_pending: engine.reversals_pending(),
    }
}

pub(super) fn open_links(engine: &Engine) -> Vec<LinkSnapshot> {
    let names = &engine.config().links;
    engine
        .open_links()
        .into_iter()
        .filter_map(|id| {
            let status = engine.link_status(id)?;
            Some(LinkSnapshot { id, name: names[status.spec].name.clone(), status })
        })
        .collect()
}

pub(super) fn snapshot(engine: &Engine, shared: &Shared) -> crate::handle::Snapshot {
    let now = Instant::now();
    let config = engine.config();
    crate::handle::Snapshot {
        at: now,
        stats: engine.stats().clone(),
        metrics: engine.metrics().clone(),
        specs: config
            .links
            .iter()
            .zip(engine.link_counts())
            .map(|(l, c)| (l.name.clone(), l.participant, l.dial, c))
            .collect(),
        participants: config.participants.iter().map(|p| p.id.clone()).collect(),
        markets: config.participants.iter().map(|p| p.directory.market).collect(),
        home_market: config.interop.market,
        // A hop is always there; another shard's link counts as configured there.
        configured: (0..config.links.len())
            .map(|i| shared.loops.borrow().contains_key(&i) || config.is_hop(config.links[i].participant))
            .collect(),
        links: open_links(engine),
        requests_pending: engine.requests_pending(),
        saf_depth: engine.reversals_pending(),
        saf_oldest: engine.saf_oldest().map(|t| now.saturating_duration_since(t)),
        exceptions: engine.exceptions_len(),
        draining: engine.draining(),
        journaling: engine.journaling(),
        journal: shared.journal_metrics.borrow().clone(),
    }
}

/// What a switch did, as it stopped (or now, from [`Handle::report`]).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Switch-wide counters.
    pub stats: Stats,
    /// Per configured link, by name.
    pub links: Vec<(String, LinkCounts)>,
    /// Requests forwarded and not yet answered.
    pub requests_pending: usize,
    /// Reversals not yet acknowledged.
    pub reversals_pending: usize,
}

impl Report {
    /// Adds another shard's figures to these.
    pub fn add(&mut self, o: &Self) {
        self.stats.add(&o.stats);
        for (i, (name, c)) in o.links.iter().enumerate() {
            match self.links.get_mut(i) {
                Some((_, mine)) => mine.add(c),
                None => self.links.push((name.clone(), *c)),
            }
        }
        self.requests_pending += o.requests_pending;
        self.reversals_pending += o.reversals_pending;
    }
}

pub(super) async fn command_loop(shared: Rc<Shared>, mut commands: tokio::sync::mpsc::Receiver<Command>) {
    while let Some(c) = commands.recv().await {
        let c = match c {
            Command::Engine(f) => {
                shared.input(|e| f(e, Instant::now()));
                continue;
            }
            Command::Reconfigure(r, tx) => {
                let _ = tx.send(reconfigure(&shared, *r).await);
                continue;
            }
            Command::Relayed(r) => {
                let (r, tls) = *r;
                tokio::task::spawn_local(relayed(Rc::clone(&shared), r, tls));
                continue;
            }
            other => other,
        };
        let engine = shared.engine.borrow();
        match c {
            Command::Report(tx) => {
                let _ = tx.send(report(&engine));
            }
            Command::Snapshot(tx) => {
                let _ = tx.send(Box::new(snapshot(&engine, &shared)));
            }
            Command::Links(tx) => {
                let _ = tx.send(open_links(&engine));
            }
            Command::Engine(_) | Command::Reconfigure(..) | Command::Relayed(_) => {
                unreachable!("handled above")
            }
        }
    }
}

pub(super) async fn drain(shared: &Rc<Shared>, drain_timeout: Duration) {
    info!("shutting down: draining");
    shared.stop.cancel();
    shared.input(|e| e.begin_drain(Instant::now()));
    let deadline = Instant::now() + drain_timeout;
    while !shared.engine.borrow().is_drained() && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let left = shared.engine.borrow().requests_pending();
    if left > 0 {
        warn!(left, "drain timeout: answering the requests still in flight with 68");
        shared.input(|e| e.expire_requests(Instant::now()));
    }
    // Let the writers put the last answers on the wire.
    let flush_deadline = Instant::now() + FLUSH_WAIT_MAX;
    loop {
        let busy = {
            let engine = shared.engine.borrow();
            shared.conns.borrow().keys().any(|l| engine.has_output(*l))
        };
        if !busy || Instant::now() >= flush_deadline {
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    // What the drain itself recorded (sign-offs, the last answers, an operator's audit of the
    // drain) reaches the disk before the switch stops, for as long as the flush may take.
    while !shared.engine.borrow().journal_settled()
        && shared.fatal.borrow().is_none()
        && Instant::now() < flush_deadline
    {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    // Every shard drained (or the drain's time is up) before the hops close: what comes
    // over them until then is answered.
    let (count, shards) = (&shared.drained.0, &shared.drained.1);
    count.fetch_add(1, Ordering::AcqRel);
    let barrier_deadline = deadline.max(Instant::now()) + FLUSH_WAIT_MAX;
    while count.load(Ordering::Acquire) < shards.load(Ordering::Acquire) && Instant::now() < barrier_deadline
    {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    for c in shared.conns.borrow().values() {
        c.closed.cancel();
    }
    // Give the connection tasks a turn to close their sockets.
    tokio::task::yield_now().await;
    {
        let engine = shared.engine.borrow();
        if engine.journaling() {
            let s = engine.stats();
            info!(records = s.journal_records, batches = s.journal_batches, durable = ?engine.journal_durable(), "journal");
            let kept = engine.reversals_pending();
            if kept > 0 {
                warn!(
                    reversals = kept,
                    "reversals not yet acknowledged: kept in the journal for the next start"
                );
            }
        } else if engine.reversals_pending() > 0 {
            warn!(
                reversals = engine.reversals_pending(),
                "reversals not yet acknowledged are lost: the switch has no journal"
            );
        }
    }
    // QUIC connections close with CONNECTION_CLOSE rather than by the peer's idle timeout.
    let endpoints: Vec<quinn::Endpoint> = shared.endpoints.borrow_mut().drain(..).collect();
    for e in &endpoints {
        e.close(VarInt::from_u32(0), b"switch stopping");
    }
    for e in &endpoints {
        let _ = tokio::time::timeout(FLUSH_WAIT_MAX, e.wait_idle()).await;
    }
    info!("stopped");
}

//! The journal's loop: the driver's batch cycle over the journal's files (a blocking
//! thread writes and syncs), checkpoints as segments begin, fail-stop on a failed write.

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

/// The journal's checkpoints, written on a thread beside the writer (one at a time) every
/// `checkpoint_segments` new segments, and once at start.
///
/// Each checkpoint covers the segments closed when it began. On a thread below the switch's
/// priority (`JOURNAL_BACKGROUND_NICE`) it takes what the switch leaves, and under sustained
/// load that is too little: every checkpoint overran its turn and covered what closed while
/// the last one ran, so the lag — what a restart or a takeover reads — grew without bound
/// (`benches/README.md`, the twelfth pass). So there are two threads, and a checkpoint runs
/// on the polite one when it is on time, and on one at the switch's priority — a fair share
/// of the core, given back between steps as before — when the last one overran
/// ([`pace_after`]). The checkpointer (the state the last checkpoint wrote, and its memory)
/// goes to whichever runs it and comes back with the report.
pub(super) struct Checkpoints {
    files: crate::journal::JournalFiles,
    running: Rc<Cell<bool>>,
    segments: Cell<u32>,
    /// The checkpointer between checkpoints (`None` while one runs, or once one was lost
    /// with a thread that failed: the next then reads its state from disk). Kept, not made
    /// anew: a checkpoint with fresh memory made a million outcomes' keys again in pages the
    /// kernel zeroes.
    checkpointer: Rc<RefCell<Option<crate::journal::Checkpointer>>>,
    /// The two threads, started at their first checkpoint and kept for the next ([`Pace`]
    /// order: polite, catching up).
    workers: RefCell<[Option<std::sync::mpsc::Sender<Job>>; 2]>,
    /// In a cluster: the newest checkpoint written and not yet in the shard's subject (the
    /// last record it covers), and the journal loop's wake for it.
    ready: Rc<Cell<Option<u64>>>,
    wake: Rc<Notify>,
}

/// Which of the checkpoint threads a checkpoint runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pace {
    /// Below the switch's priority: it takes what the switch leaves.
    Polite,
    /// At the switch's priority: the last checkpoint overran its turn.
    CatchUp,
}

impl Checkpoints {
    pub(super) fn new(files: crate::journal::JournalFiles) -> Self {
        let checkpointer = crate::journal::Checkpointer::with_format(files.outcomes);
        Self {
            files,
            running: Rc::new(Cell::new(false)),
            segments: Cell::new(0),
            checkpointer: Rc::new(RefCell::new(Some(checkpointer))),
            workers: RefCell::new([None, None]),
            ready: Rc::default(),
            wake: Rc::default(),
        }
    }

    /// Whether a checkpoint waits to go into the subject, and may: the subject holds every
    /// record it covers (`through`: the last one it holds).
    fn due(&self, through: u64) -> bool {
        self.files.replicate.is_some() && self.ready.get().is_some_and(|covers| covers <= through)
    }

    /// A batch began a new segment: checkpoint when enough have, on the thread
    /// [`pace_after`] says.
    fn segment_begun(&self) {
        let n = self.segments.get() + 1;
        let every = self.files.checkpoint_segments;
        if n >= every.max(1) && !self.running.get() {
            self.segments.set(0);
            self.start(pace_after(n, every));
        } else {
            self.segments.set(n);
        }
    }

    /// Starts a checkpoint on `pace`'s thread, unless one is running.
    pub(super) fn start(&self, pace: Pace) {
        if self.running.replace(true) {
            return;
        }
        let running = Rc::clone(&self.running);
        let (ready, wake, kept) =
            (Rc::clone(&self.ready), Rc::clone(&self.wake), Rc::clone(&self.checkpointer));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let checkpointer = self
            .checkpointer
            .borrow_mut()
            .take()
            .unwrap_or_else(|| crate::journal::Checkpointer::with_format(self.files.outcomes));
        let sent = self.worker(pace).and_then(|w| match w.send((checkpointer, tx)) {
            Ok(()) => Ok(()),
            // Its thread is gone (it panicked in a checkpoint): another is started.
            Err(std::sync::mpsc::SendError(job)) => {
                self.workers.borrow_mut()[pace as usize] = None;
                self.worker(pace)?.send(job).map_err(|e| std::io::Error::other(e.to_string()))
            }
        });
        if let Err(e) = sent {
            self.running.set(false);
            warn!(error = %e, "journal checkpoint thread could not start");
            return;
        }
        tokio::task::spawn_local(async move {
            let done = rx.await;
            running.set(false);
            match done {
                Ok((checkpointer, report)) => {
                    kept.replace(Some(checkpointer));
                    match report {
                        Ok(r) => {
                            if let Some(seq) = r.seq {
                                info!(
                                    through = seq,
                                    bytes = r.bytes,
                                    segments_removed = r.removed.len(),
                                    took_ms = r.took.as_millis(),
                                    cpu_ms = r.cpu.as_millis(),
                                    catching_up = pace == Pace::CatchUp,
                                    "journal checkpoint"
                                );
                                ready.set(Some(seq));
                                wake.notify_one();
                            }
                        }
                        // Not fatal: recovery reads from the previous checkpoint, and
                        // retention waits.
                        Err(e) => warn!(error = %e, "journal checkpoint failed"),
                    }
                }
                Err(e) => warn!(error = %e, "journal checkpoint thread failed"),
            }
        });
    }

    /// `pace`'s thread, started if it is not running: it checkpoints as it is asked, and
    /// ends with the journal loop (its sender dropped).
    fn worker(&self, pace: Pace) -> std::io::Result<std::sync::mpsc::Sender<Job>> {
        if let Some(w) = self.workers.borrow()[pace as usize].as_ref() {
            return Ok(w.clone());
        }
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (dir, window, retain) = (self.files.dir.clone(), self.files.outcome_window, self.files.retain);
        let name = match pace {
            Pace::Polite => "corridor-checkpoint",
            Pace::CatchUp => "corridor-checkpoint-catch-up",
        };
        std::thread::Builder::new().name(name.into()).spawn(move || {
            if pace == Pace::Polite {
                crate::journal::background_priority();
            }
            for (mut checkpointer, done) in rx {
                let report = checkpointer.run(&dir, window, retain);
                let _ = done.send((checkpointer, report));
            }
        })?;
        self.workers.borrow_mut()[pace as usize] = Some(tx.clone());
        Ok(tx)
    }
}

/// A checkpoint asked of a checkpoint thread (its directory, outcome window and retention
/// are the journal's, fixed for the thread's life): the checkpointer to run it with, and
/// where to give it back with how it went.
type Job = (
    crate::journal::Checkpointer,
    tokio::sync::oneshot::Sender<(
        crate::journal::Checkpointer,
        Result<crate::journal::CheckpointReport, crate::journal::JournalError>,
    )>,
);

/// The thread of a checkpoint that begins after `segments` new segments, one being due every
/// `every`: the polite one when it begins as soon as it is due (the last one finished in its
/// turn), the catching-up one when more began while the last one ran — each checkpoint
/// covers what closed before it began, so one that overruns its turn leaves the next behind
/// by what began meanwhile, and polite ones only would let that grow without bound.
pub(super) fn pace_after(segments: u32, every: u32) -> Pace {
    if segments > every.max(1) {
        Pace::CatchUp
    } else {
        Pace::Polite
    }
}

/// Writes the journal: runs the driver's batch cycle (`corridor_engine::driver::JournalCycle`)
/// over the journal's files — each batch the engine has due is appended and synced on a
/// blocking thread, and the engine told, which then releases what waited for it. A write or
/// sync that fails stops the switch at once (fail-stop: nothing is acknowledged after it,
/// and a restart recovers from what is on disk) — but for a full disk: then the reserve is
/// released and the same batch written again, the engine declines new requests (96) while
/// it goes on journaling what is in flight, and once a look takes the reserve back the
/// switch takes new requests again.
pub(super) async fn journal_loop(
    shared: Rc<Shared>,
    mut w: crate::journal::Writer,
    checkpoints: Checkpoints,
    stop: Shutdown,
) {
    let mut cycle = JournalCycle::default();
    // In a cluster, the shard's lease: nothing is released while it is stale (see below).
    let lease = checkpoints.files.replicate.as_ref().and_then(|r| r.taken.clone().map(|t| (r.shard, t)));
    // In a cluster: what the subject holds, for its checkpoints.
    let mut marks = StreamMarks::default();
    // In a cluster, a batch is durable once synced here and acknowledged by the stream.
    let mut replica = match checkpoints.files.replicate.clone() {
        Some(r) => {
            // Until the stream has what this journal holds, no new request is taken (96):
            // nothing of it could be answered.
            shared.input(|e| e.set_replication_paused(true));
            match replica(&shared, &r, &checkpoints.files.dir).await {
                Ok(log) => {
                    shared.replica(|m| m.marks_again = log.marks_again());
                    if let Some(t) = r.taken.clone() {
                        shared.replica(|m| m.lease = t.keeper.held(r.shard));
                        tokio::task::spawn_local(watch_lease(Rc::clone(&shared), stop.clone(), r.shard, t));
                    }
                    shared.input(|e| e.set_replication_paused(false));
                    // Connections are taken once the first batch of this start (it carries
                    // the configuration record every start writes) is in the stream: that
                    // append is the takeover record, which moves the subject past what the
                    // last owner expects, so its next append — a paused node waking, say —
                    // is fenced before this node serves anyone (see the first append below)
                    // — and once every shard the node started with has done the same
                    // (`StartGate`: a partner's request would cross to one still catching up).
                    let durable = shared.engine.borrow().journal_durable().unwrap_or(0);
                    marks.through = durable;
                    shared.replica(|m| {
                        m.replicating = true;
                        (m.synced, m.acknowledged, m.subject_seq) = (durable, durable, log.last());
                    });
                    Some(log)
                }
                Err(why) => return fatal(&shared, &stop, &why),
            }
        }
        None => None,
    };
    if replica.is_some() {
        // Batches may go to the stream one after another without waiting for the one before
        // (`APPENDS_IN_FLIGHT` of them), released in order.
        let most = usize::try_from(corridor_cluster::limits::APPENDS_IN_FLIGHT).unwrap_or(1);
        shared.input(|e| e.set_journal_batches_in_flight(most));
    }
    // The batches out, oldest first: each written and synced here at once, one after
    // another; in a cluster each also sent to the stream as it is written, and released once
    // the stream acknowledged it and every batch before it.
    let mut out: std::collections::VecDeque<Out> = std::collections::VecDeque::new();
    loop {
        shared.appending.set(out.iter().any(|o| o.streamed));
        let next = loop {
            // The oldest out, nothing of it waiting for the stream: its release is next.
            if out.front().is_some_and(|o| o.sent.is_none()) {
                break Next::Release;
            }
            // A checkpoint waits for the stream's batches to settle (it goes after them).
            let checkpoint = checkpoints.due(marks.through) && !shared.finished.is_cancelled();
            if checkpoint && out.is_empty() {
                break Next::Checkpoint;
            }
            let room = !checkpoint && replica.as_ref().is_none_or(corridor_cluster::ShardLog::can_send);
            let (step, due) = if room {
                let mut engine = shared.engine.borrow_mut();
                let step = cycle.poll(&mut engine, Instant::now(), crate::journal::unix_ms());
                (step, cycle.poll_timeout(&engine))
            } else {
                (None, None)
            };
            if let Some(step) = step {
                break Next::Step(step);
            }
            let wait = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let answered = async {
                match out.front_mut().and_then(|o| o.sent.as_mut()) {
                    Some(sent) => sent.answered().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = answered => break Next::Settle,
                () = shared.journal_wake.notified() => {}
                () = checkpoints.wake.notified() => {}
                () = wait => {}
            }
        };
        match next {
            Next::Checkpoint => {
                if let Some(log) = replica.as_mut() {
                    if let Err(why) = stream_checkpoint(&shared, log, &checkpoints, &mut marks, &stop).await {
                        return fatal(&shared, &stop, &why);
                    }
                }
            }
            Next::Settle => {
                let (Some(o), Some(log)) = (out.front_mut(), replica.as_mut()) else {
                    unreachable!("a batch in the stream is settled")
                };
                let Some(mut sent) = o.sent.take() else { unreachable!("it waits for the stream") };
                match settle(&shared, log, &mut sent, &o.batch, &stop).await {
                    Ok(seq) => {
                        shared.replica(|m| m.append.record(o.sent_at.elapsed()));
                        marks.appended(&o.batch, seq);
                    }
                    Err(why) => return fatal(&shared, &stop, &why),
                }
            }
            Next::Release => {
                let Some(o) = out.pop_front() else { unreachable!("a batch is out") };
                if let (true, Some(log)) = (o.streamed, replica.as_mut()) {
                    shared.appending.set(true);
                    let mut replicated = Ok(());
                    if let Some((shard, t)) = &lease {
                        replicated = lease_fresh(*shard, t, &stop).await;
                    }
                    // The release mark before the release: a new owner takes an approval
                    // after the mark as never given (see `ShardLog::mark_released`); a
                    // batch relaying none has nothing a new owner would reverse.
                    if replicated.is_ok() && log.must_mark(o.batch.release_marked) {
                        let began = Instant::now();
                        replicated = log.mark_released(o.batch.last_seq).await;
                        if replicated.is_ok() {
                            shared.replica(|m| {
                                m.mark.record(began.elapsed());
                                (m.marks, m.marked) = (m.marks + 1, o.batch.last_seq);
                            });
                        }
                    }
                    // (Until here the lease is not given up at a stop: see `watch_lease`.)
                    if let Err(why) = replicated {
                        shared.appending.set(false);
                        return fatal(&shared, &stop, &why);
                    }
                    shared.start_ready();
                }
                let records = o.batch.last_seq.saturating_sub(o.batch.first_seq) + 1;
                let after = shared.input(|e| cycle.written(e, Written::Synced, Instant::now()));
                debug_assert_eq!(after, AfterWrite::Done, "a synced batch is done");
                shared.journal_metrics.borrow_mut().batch(records, o.began.elapsed());
                if o.batch.new_segment.is_some() {
                    checkpoints.segment_begun();
                }
                // Its buffer, for a batch to fill (shared with nothing by now).
                if let Ok(mut batch) = std::sync::Arc::try_unwrap(o.batch) {
                    shared.engine.borrow_mut().recycle_journal_buffer(std::mem::take(&mut batch.bytes));
                }
            }
            Next::Step(JournalStep::LookAgain) => {
                // Is there room again? Taking the reserve back says.
                let Ok((back, room)) = tokio::task::spawn_blocking(move || {
                    let room = w.restore_reserve();
                    (w, room)
                })
                .await
                else {
                    return fatal(&shared, &stop, "journal writer thread failed");
                };
                w = back;
                shared.input(|e| cycle.looked(e, room, Instant::now()));
                shared.journal_metrics.borrow_mut().full = cycle.full();
            }
            Next::Step(JournalStep::Write(batch)) => {
                let began = Instant::now();
                let batch = std::sync::Arc::new(batch);
                // In a cluster the batch goes to the stream before it is written here, not
                // after: a batch is durable once both hold it, and the stream's round trip
                // runs while the disk syncs. Either may end first, or alone before a crash — a
                // start catches the journal up from the stream when the stream holds more,
                // and refills the stream from the journal when it holds less (both long
                // since: a takeover's catch-up, the refill of what was synced and never
                // acknowledged). Once the drain is over the shard's lease is given up: what
                // the last closes record stays local (a restart here refills the stream with
                // it, or sets it aside if another node took the shard meanwhile).
                let streamed = replica.is_some() && !shared.finished.is_cancelled();
                let sent = match (streamed, replica.as_mut()) {
                    (true, Some(log)) => match send(&shared, log, &batch, &stop).await {
                        Ok(sent) => Some(sent),
                        Err(why) => return fatal(&shared, &stop, &why),
                    },
                    _ => None,
                };
                let sent_at = Instant::now();
                shared.appending.set(out.iter().any(|o| o.streamed) || streamed);
                // Written and synced here, again while the disk is full (the engine declines
                // new requests meanwhile).
                loop {
                    let shared_batch = std::sync::Arc::clone(&batch);
                    let disk = tokio::task::spawn_blocking(move || {
                        let r = w.write(&shared_batch);
                        (w, r)
                    });
                    let released = match disk.await {
                        Ok((back, Ok(()))) => {
                            w = back;
                            break;
                        }
                        Ok((mut back, Err(crate::journal::JournalError::NoSpace { what }))) => {
                            let released = back.release_reserve();
                            debug!(what, released, "journal: no space for a batch");
                            w = back;
                            released
                        }
                        Ok((_, Err(e))) => return fatal(&shared, &stop, &format!("journal: {e}")),
                        Err(e) => return fatal(&shared, &stop, &format!("journal writer: {e}")),
                    };
                    let after =
                        shared.input(|e| cycle.written(e, Written::NoSpace { released }, Instant::now()));
                    shared.journal_metrics.borrow_mut().full = cycle.full();
                    if let AfterWrite::Again(at) = after {
                        tokio::time::sleep_until(at.into()).await;
                    }
                }
                if streamed {
                    shared.replica(|m| m.synced = batch.last_seq);
                }
                // A segment that grows as it is written is left as soon as a prepared one
                // is ready.
                if w.wants_early_rotation() {
                    shared.engine.borrow_mut().rotate_journal_segment();
                }
                out.push_back(Out { batch, sent, streamed, began, sent_at });
            }
        }
    }
}

/// What the journal loop does next.
enum Next {
    /// The engine's next step: a batch to write, or a look at a full disk.
    Step(JournalStep),
    /// The stream answered the oldest batch out: settle it.
    Settle,
    /// The oldest batch out is durable (written here, and in a cluster in the stream):
    /// release what it gates.
    Release,
    /// Append the journal's newest checkpoint to the stream (none out).
    Checkpoint,
}

/// A batch out: written and synced here; in a cluster, in the stream or on its way.
struct Out {
    batch: std::sync::Arc<corridor_journal::SyncBatch>,
    /// Its append to the stream, until settled.
    sent: Option<corridor_cluster::SentBatch>,
    /// Whether it was sent to the stream (after the drain, batches stay local).
    streamed: bool,
    /// When it was handed out, and sent.
    began: Instant,
    sent_at: Instant,
}

/// The journal cannot go on: the switch stops at once, with the reason.
pub(super) fn fatal(shared: &Shared, stop: &Shutdown, why: &str) {
    tracing::error!(error = why, "journal write failed: stopping");
    shared.journal_metrics.borrow_mut().failed = true;
    *shared.fatal.borrow_mut() = Some(why.to_owned());
    stop.trigger();
}

/// The shard's subject in the cluster's stream, open, with what the local journal holds and
/// the stream lacks appended first: the local journal is the copy that refills the stream.
/// A stream that holds records the local journal lacks is an error (the shard ran on
/// another node since, or this journal lost them): the node must take it over from the
/// stream, not go on from here.
async fn replica(
    shared: &Shared,
    r: &crate::journal::Replicate,
    dir: &std::path::Path,
) -> Result<corridor_cluster::ShardLog, String> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(r.servers.as_slice())
        .await
        .map_err(|e| format!("cluster: cannot reach NATS: {e}"))?;
    let js = async_nats::jetstream::new(client.clone());
    let start = Instant::now();
    // The cluster may still be electing its leaders (the meta leader, then the stream's):
    // wait them out, within bounds.
    let (mut log, held) = loop {
        let opened = async {
            corridor_cluster::stream::ensure(&js, &r.stream, r.shard, r.replicas).await?;
            let log = match &r.taken {
                // Taken at start: the first append expects what the takeover read.
                Some(t) => {
                    corridor_cluster::ShardLog::open_at(client.clone(), &r.stream, r.shard, t.subject_last)
                }
                None => corridor_cluster::ShardLog::open(client.clone(), &r.stream, r.shard).await?,
            };
            let held = log.last_record().await?;
            Ok::<_, corridor_cluster::StreamError>((log, held))
        };
        match opened.await {
            Ok(v) => break v,
            Err(e)
                if start.elapsed() < crate::limits::CLUSTER_START_MAX
                    && !matches!(e, corridor_cluster::StreamError::OldLayout(_)) =>
            {
                debug!(error = %e, "cluster: the stream is not ready yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("cluster: stream {}, shard {}: {e}", r.stream, r.shard)),
        }
    };
    log.set_compress(r.compress);
    let local = shared.engine.borrow().journal_durable().unwrap_or(0);
    if held > local {
        return Err(format!(
            "cluster: the stream holds shard {}'s records {}..={held}, which this node's journal lacks",
            r.shard,
            local + 1
        ));
    }
    let chunk = corridor_cluster::limits::MESSAGE_RECORDS_BYTES;
    let read = |from: u64| {
        let dir = dir.to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                crate::journal::records_from_within(&dir, from, chunk, crate::limits::REFILL_READ_BYTES)
            })
            .await
            .map_err(|e| format!("cluster: reading the journal: {e}"))?
            .map_err(|e| format!("cluster: reading the journal: {e}"))
        }
    };
    let mut missing = read(held + 1).await?;
    // The journal's segments may begin past what the stream holds (checkpointed and removed
    // before it was replicated): its newest checkpoint goes in first, covering the rest.
    let begins = missing.first().map_or(local + 1, |(first, _, _)| *first);
    if held < local && begins > held + 1 {
        let newest = crate::journal::checkpoints(dir)
            .map_err(|e| format!("cluster: reading the journal: {e}"))?
            .last()
            .copied()
            .filter(|&c| c + 1 >= begins)
            .ok_or_else(|| {
                format!(
                    "cluster: the journal's records {}..{begins} are in no segment or checkpoint",
                    held + 1
                )
            })?;
        let path = dir.to_owned();
        let state = tokio::task::spawn_blocking(move || crate::journal::checkpoint_bytes(&path, newest))
            .await
            .map_err(|e| format!("cluster: reading the journal's checkpoint: {e}"))?
            .map_err(|e| format!("cluster: reading the journal's checkpoint: {e}"))?;
        log.append_checkpoint(newest, newest, state)
            .await
            .map_err(|e| format!("cluster: refilling the stream with the journal's checkpoint: {e}"))?;
        info!(shard = r.shard, covers = newest, "cluster: the journal's checkpoint is in the stream");
        missing = read(newest + 1).await?;
    }
    // A round at a time (crate::limits::REFILL_READ_BYTES), until the journal's end.
    let mut refilled = 0;
    while let Some(&(_, through, _)) = missing.last() {
        refilled += missing.len();
        for (first, last, records) in missing {
            log.append(first, last, &records)
                .await
                .map_err(|e| format!("cluster: refilling the stream: {e}"))?;
        }
        if through >= local {
            break;
        }
        missing = read(through + 1).await?;
    }
    info!(shard = r.shard, stream = %r.stream, held, local, refilled, "cluster: the journal is replicated");
    Ok(log)
}

/// Watches the shard's lease, which the process's keeper renews (`corridor_cluster::keeper`):
/// its figures into the metrics, and the node stopped at once if the lease is lost for good
/// (another node holds it: the node may no longer act for the shard, and the stream would
/// fence its next append anyway). Once the drain is over it gives the lease up, after any
/// append under way (bounded), so another node may take the shard at once.
async fn watch_lease(shared: Rc<Shared>, stop: Shutdown, shard: u16, t: crate::journal::Taken) {
    use corridor_cluster::limits::LEASE_POLL;
    let mut paused = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(LEASE_POLL) => {}
            () = shared.finished.cancelled() => break,
        }
        if let Some(why) = t.keeper.lost(shard) {
            return fatal(&shared, &stop, &format!("cluster: {why}"));
        }
        // Not renewed for as long as a lease lives (less LEASE_MARGIN for this node's clock):
        // another node may hold it by now. Until a renewal says otherwise, no new request is
        // taken (96: a partner tries another node); what is in flight waits for the stream,
        // which fences this node if the shard is another's.
        let stale = t.keeper.held(shard).is_some_and(|h| h.stale_at(Instant::now()));
        if stale != paused {
            paused = stale;
            if paused {
                warn!(shard, "cluster: the shard's lease could not be renewed within its time to live: declining new requests 96");
            } else {
                info!(shard, "cluster: the shard's lease is renewed again: taking new requests");
            }
            shared.input(|e| e.set_replication_paused(paused));
        }
        shared.replica(|m| m.lease = t.keeper.held(shard));
    }
    let deadline = Instant::now() + crate::limits::LEASE_RELEASE_WAIT_MAX;
    while shared.appending.get() && Instant::now() < deadline {
        tokio::time::sleep(crate::limits::DRAIN_POLL).await;
    }
    t.keeper.release(shard).await;
    shared.lease_released.notify_one();
}

/// Waits until shard `shard`'s lease is fresh by this node's own clock (renewed within its
/// time to live), before anything an acknowledged batch gates is released. A node paused
/// past its lease (`SIGSTOP`, a stall) may wake to the acknowledgement of an append it sent
/// before the pause; another node has taken the shard over since and read that batch as this
/// node left it (a request taken in, not forwarded): releasing the forward now would act for
/// a shard this node lost. So it waits for the keeper's next renewal (then it is still the
/// owner) or its verdict that the lease is lost (then it stops, having released nothing).
/// While NATS does not answer it waits, as every answer then does.
async fn lease_fresh(shard: u16, t: &crate::journal::Taken, stop: &Shutdown) -> Result<(), String> {
    use corridor_cluster::limits::LEASE_POLL;
    loop {
        if t.keeper.standing(shard).map_err(|why| format!("cluster: {why}"))? {
            return Ok(());
        }
        if stop.is_triggered() {
            return Err(format!(
                "cluster: shard {shard}'s lease is stale at the stop: what the last batch gates is not released"
            ));
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// Sends `batch` to the stream (before it is written here), waiting as long as the stream is
/// unavailable for its writer's fence. Fenced (another node took the shard) is an error: the
/// node stops acting for the shard.
async fn send(
    shared: &Shared,
    log: &mut corridor_cluster::ShardLog,
    batch: &std::sync::Arc<corridor_journal::SyncBatch>,
    stop: &Shutdown,
) -> Result<corridor_cluster::SentBatch, String> {
    loop {
        match log.send_journal(batch.first_seq, batch.last_seq, Records(std::sync::Arc::clone(batch))).await {
            Ok(sent) => return Ok(sent),
            Err(corridor_cluster::AppendError::Unavailable(e)) if !stop.is_triggered() => {
                unavailable(shared, log, &e);
            }
            Err(e) => return Err(format!("cluster: {e}")),
        }
    }
}

/// The stream did not answer (`why`): the shard is not replicating until it does; the
/// caller asks again.
fn unavailable(shared: &Shared, log: &corridor_cluster::ShardLog, why: &str) {
    shared.replica(|m| {
        m.replicating = false;
        m.append_retries = log.retries();
    });
    warn!(error = %why, "cluster: the stream is unavailable: answers wait for it");
}

/// Settles `sent` — `batch`'s append, the oldest in the stream — waiting as long as the
/// stream is unavailable: nothing of it may leave before the stream has it. Fenced (another
/// node took the shard) or lost (the stream went back on what it acknowledged) is an error:
/// the node stops acting for the shard.
async fn settle(
    shared: &Shared,
    log: &mut corridor_cluster::ShardLog,
    sent: &mut corridor_cluster::SentBatch,
    batch: &corridor_journal::SyncBatch,
    stop: &Shutdown,
) -> Result<u64, String> {
    loop {
        match log.settle_batch(sent).await {
            Ok(seq) => {
                let retries = log.retries();
                shared.replica(|m| {
                    (m.acknowledged, m.subject_seq, m.append_retries) = (batch.last_seq, log.last(), retries);
                    m.replicating = true;
                });
                return Ok(seq);
            }
            Err(corridor_cluster::AppendError::Unavailable(e)) if !stop.is_triggered() => {
                unavailable(shared, log, &e);
            }
            Err(e) => return Err(format!("cluster: {e}")),
        }
    }
}

/// A batch's records, shared with the local write while they are compressed for the stream.
struct Records(std::sync::Arc<corridor_journal::SyncBatch>);

impl AsRef<[u8]> for Records {
    fn as_ref(&self) -> &[u8] {
        &self.0.bytes
    }
}

/// What the journal loop knows of the shard's subject, for its checkpoints: the last record
/// it holds, where each segment of this start began in it, and the checkpoints whose
/// messages retention still keeps.
#[derive(Default)]
struct StreamMarks {
    /// The last record the subject holds.
    through: u64,
    /// `(first record, stream sequence)` of each batch that began a segment, oldest first
    /// (a checkpoint covers whole segments: a reader of it starts at the next one's first
    /// batch). At most [`crate::limits::STREAM_SEGMENT_MARKS_MAX`].
    segments: std::collections::VecDeque<(u64, u64)>,
    /// `(where a reader of it starts, when it was appended)` of each checkpoint this node
    /// appended whose predecessors' messages are still kept, oldest first.
    kept: std::collections::VecDeque<(u64, Instant)>,
}

impl StreamMarks {
    /// `batch` went into the subject at stream sequence `seq`.
    fn appended(&mut self, batch: &corridor_journal::SyncBatch, seq: u64) {
        self.through = batch.last_seq;
        if batch.new_segment.is_some() {
            if self.segments.len() >= crate::limits::STREAM_SEGMENT_MARKS_MAX {
                self.segments.pop_front();
            }
            self.segments.push_back((batch.first_seq, seq));
        }
    }
}

/// Appends the journal's newest checkpoint to the shard's subject, publishes where a
/// takeover reads from, and purges the messages before the newest checkpoint retention no
/// longer keeps (`journal.retain_hours`, as the local journal keeps its segments): the
/// subject stays bounded, and a takeover reads from the last checkpoint, not the whole
/// history. A checkpoint that cannot be read is left for the next (the subject keeps
/// everything until then); one that is fenced stops the node as a batch would.
async fn stream_checkpoint(
    shared: &Shared,
    log: &mut corridor_cluster::ShardLog,
    checkpoints: &Checkpoints,
    marks: &mut StreamMarks,
    stop: &Shutdown,
) -> Result<(), String> {
    let Some(covers) = checkpoints.ready.take() else { return Ok(()) };
    let through = marks.through;
    let dir = checkpoints.files.dir.clone();
    let state = match tokio::task::spawn_blocking(move || crate::journal::checkpoint_bytes(&dir, covers))
        .await
    {
        Ok(Ok(s)) => bytes::Bytes::from(s),
        Ok(Err(e)) => {
            return done(
                || warn!(covers, error = %e, "cluster: the checkpoint cannot be read: the subject keeps its messages until the next"),
            )
        }
        Err(e) => return done(|| warn!(covers, error = %e, "cluster: the checkpoint's reader failed")),
    };
    let first = loop {
        match log.append_checkpoint(covers, through, state.clone()).await {
            Ok(seq) => break seq,
            Err(corridor_cluster::AppendError::Unavailable(e)) if !stop.is_triggered() => {
                warn!(error = %e, "cluster: the stream is unavailable: the checkpoint waits for it");
            }
            Err(e @ corridor_cluster::AppendError::TooLarge { .. }) => {
                return done(|| warn!(covers, error = %e, "cluster: the subject keeps its messages"));
            }
            Err(e) => return Err(format!("cluster: appending a checkpoint: {e}")),
        }
    };
    // A reader of it starts at the batch that began the segment after what it covers (its
    // records are not in the checkpoint) — or at the checkpoint itself if the subject held
    // nothing past it.
    let from = if through == covers {
        Some(first)
    } else {
        marks.segments.iter().find(|(f, _)| *f == covers + 1).map(|&(_, seq)| seq)
    };
    marks.segments.retain(|(f, _)| *f > covers + 1);
    shared.replica(|m| {
        m.checkpoint = covers;
        m.checkpoints += 1;
        m.subject_seq = log.last();
    });
    let Some(from) = from else {
        // Its segment began before this start: the next checkpoint will have a start.
        return done(|| {
            info!(covers, through, "cluster: checkpoint in the subject (no reader start for it yet)")
        });
    };
    if let Err(e) = log.publish_hint(corridor_cluster::Hint { from, covers }).await {
        warn!(covers, error = %e, "cluster: where a takeover reads from could not be published: it reads from the last one");
    }
    marks.kept.push_back((from, Instant::now()));
    // The newest checkpoint retention no longer keeps what is before it of: purge up to it.
    let retain = checkpoints.files.retain;
    let expired = marks.kept.iter().rposition(|(_, at)| at.elapsed() >= retain);
    let mut purged = 0;
    if let Some(i) = expired {
        let before = marks.kept[i].0;
        match log.purge_before(before).await {
            Ok(n) => {
                purged = n;
                marks.kept.drain(..i);
                shared.replica(|m| m.purged += n);
            }
            Err(e) => {
                warn!(before, error = %e, "cluster: the subject could not be purged: it is tried again at the next checkpoint")
            }
        }
    }
    info!(covers, through, from, purged, "cluster: checkpoint in the subject");
    Ok(())
}

/// Says why a step is left for later, and goes on (`Ok`).
fn done(say: impl FnOnce()) -> Result<(), String> {
    say();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{pace_after, Pace};

    /// A checkpoint that begins as soon as it is due is polite; one that begins late — more
    /// segments began while the last one ran — catches up.
    #[test]
    fn a_checkpoint_catches_up_only_when_the_last_one_overran_its_turn() {
        assert_eq!(pace_after(4, 4), Pace::Polite);
        assert_eq!(pace_after(5, 4), Pace::CatchUp);
        assert_eq!(pace_after(64, 4), Pace::CatchUp);
        // Every segment (0 is taken as 1).
        assert_eq!(pace_after(1, 1), Pace::Polite);
        assert_eq!(pace_after(1, 0), Pace::Polite);
        assert_eq!(pace_after(2, 0), Pace::CatchUp);
    }
}

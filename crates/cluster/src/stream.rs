//! A shard's journal in the stream: a stream per shard ([`shard_stream`]) of one subject,
//! each message appended with the stream's expected last sequence, so appends are ordered
//! and exactly once whatever the server's deduplication window, and a writer that lost the
//! shard is fenced by the stream itself — its next append names a sequence that is no
//! longer the last. A stream of its own gives each shard its own replication group (its own
//! leader: shards' appends do not queue behind each other), and the sequence an append will
//! get is known before it is sent: the one after the last sent. The stream checks an
//! expected sequence as it orders what it is sent, counting what it has not stored yet, so a
//! writer has up to [`APPENDS_IN_FLIGHT_MAX`] appends in flight ([`ShardLog::send_journal`]),
//! settled in order ([`ShardLog::settle_batch`]).
//!
//! # The fence
//!
//! With several in flight a sequence alone no longer says whose message holds it: a new
//! owner's first message could take the place an old owner's refused message held in the
//! old owner's pipeline, and the old owner's next — expecting that place — would follow it.
//! So every writer's first append is preceded by a fence ([`ShardLog::fence`]):
//! [`APPENDS_IN_FLIGHT_MAX`] markers in one atomic batch, which moves the stream past every
//! sequence another writer's message in flight can expect. Markers are checkpoint parts cut
//! short, passed over by every reader. A node taking a shard over fences before it reads the
//! subject ([`fence_taken`]): what the last owner had in flight went in before the fence,
//! where the read finds it, or never goes in.
//!
//! An append whose acknowledgement does not come (an election, a partition, a lost reply) is
//! settled by reading the stream back at its sequence: ours (stored, the reply lost), another
//! writer's (fenced), or nothing (not stored: sent again with the same expected sequence;
//! the ones in flight after it, refused for want of it, are sent again as each is settled).
//! Reads are checked (our CRC on every batch, no gap between batches), and a subject whose
//! last sequence went backwards is reported: the stream lost what it had acknowledged.
//!
//! # Checkpoints and retention
//!
//! The subject would otherwise grow without end, and a takeover read it whole. So the
//! owner appends each checkpoint its journal writes ([`ShardLog::append_checkpoint`], the
//! format in `batch`), publishes where a reader of it begins ([`Hint`]: the batch holding the
//! first record it does not cover, or the checkpoint itself) and purges what is before that
//! once retention no longer keeps it ([`ShardLog::purge_before`]). A takeover reads from the
//! hint ([`take_read`]): the checkpoint, then the records after it. The hint is only that — a
//! read checks the checkpoint joins the records around it and that nothing before the first
//! batch read is missing ([`read_subject`]); a hint purged past falls back to reading the
//! subject whole. Purging is not fenced and needs not be: it only takes messages a
//! checkpoint already in the subject holds the state of.

use std::time::Instant;

use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
    message::PublishMessage,
    stream::{Config, StorageType},
};
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::{debug, warn};

use crate::{
    batch::{self, Batch, CheckpointPart, Gap, Invalid, Message, Tail, CHECKPOINT_PART_BYTES},
    limits::{
        APPENDS_IN_FLIGHT_MAX, APPEND_RETRY, APPEND_WAIT_MAX, ENCODE_INLINE_BYTES, MESSAGE_RECORDS_BYTES,
        READ_BATCHES_MAX, RELEASE_MARK_RETRIES, RELEASE_MARK_RETRY, RELEASE_MARK_WAIT, REQUEST_TIMEOUT,
        STREAM_ENSURE_TIMEOUT,
    },
};

/// The subject shard `shard`'s journal goes on in stream `stream`.
#[must_use]
pub fn subject(stream: &str, shard: u16) -> String {
    format!("{stream}.shard.{shard}")
}

/// The stream shard `shard`'s subject is in: `{stream}-shard-{shard}`, one per shard.
#[must_use]
pub fn shard_stream(stream: &str, shard: u16) -> String {
    format!("{stream}-shard-{shard}")
}

/// Why the stream could not be made or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamError {
    /// The server refused or did not answer.
    Server(String),
    /// A stream of the layout before streams per shard holds the shards' subjects: the
    /// servers refuse a shard's stream beside it. Not a state a retry mends.
    OldLayout(String),
    /// A message on the subject is not a batch we wrote (or is damaged).
    Invalid {
        /// Its stream sequence.
        seq: u64,
        /// Why.
        why: Invalid,
    },
    /// Batches are missing between two that are there.
    Gap(Gap),
    /// More messages than [`READ_BATCHES_MAX`] in one read (a checkpoint missed).
    TooMany,
    /// A read from stream sequence `from` found the subject's first message from there at
    /// `found`: `from` was purged (a stale hint).
    NotAt {
        /// Where the read was to begin.
        from: u64,
        /// Where the subject's messages begin from there.
        found: u64,
    },
    /// A takeover's fence did not go in ([`fence_taken`]).
    Fence(AppendError),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server(e) => write!(f, "the stream: {e}"),
            Self::OldLayout(name) => write!(
                f,
                "stream {name} holds every shard's subject (the layout before a stream per shard); \
                 with every node stopped and each journal local, delete it (`nats stream rm {name}`): \
                 each shard's stream is made and refilled from its node's journal at start"
            ),
            Self::Invalid { seq, why } => write!(f, "message {seq}: {why}"),
            Self::Gap(g) => write!(f, "{g}"),
            Self::TooMany => write!(f, "more than {READ_BATCHES_MAX} messages on the subject"),
            Self::NotAt { from, found } => {
                write!(f, "message {from} is gone from the subject (the next is {found})")
            }
            Self::Fence(e) => write!(f, "the takeover's fence: {e}"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Why an append did not go in.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppendError {
    /// Another writer appended to the subject: this one lost the shard and must stop acting
    /// for it.
    Fenced {
        /// The subject's last sequence this writer knew.
        expected: u64,
        /// The one it has.
        found: u64,
    },
    /// The subject's last sequence is below one the stream acknowledged to this writer: the
    /// stream lost acknowledged records.
    Lost {
        /// The last sequence acknowledged to this writer.
        acknowledged: u64,
        /// What the subject has now.
        found: u64,
    },
    /// No acknowledgement within [`APPEND_WAIT_MAX`] (no leader, no quorum, no connection):
    /// whether it went in is not known until the stream answers again.
    Unavailable(String),
    /// Records more than one message holds, or a checkpoint of more parts than a part
    /// number holds: nothing was appended.
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The records are not what they were said to be (an empty range; not whole journal
    /// records), or the thread that compressed the message failed: nothing was appended.
    Encoding(String),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fenced { expected, found } => {
                write!(f, "fenced: the subject's last sequence is {found}, not {expected}")
            }
            Self::Lost { acknowledged, found } => {
                write!(f, "the stream lost acknowledged records: its last is {found}, {acknowledged} was acknowledged")
            }
            Self::Unavailable(e) => write!(f, "the stream is unavailable: {e}"),
            Self::TooLarge { bytes } => write!(f, "{bytes} bytes are more than one append holds"),
            Self::Encoding(e) => write!(f, "the message could not be made: {e}"),
        }
    }
}

impl std::error::Error for AppendError {}

/// Makes (or finds) shard `shard`'s stream of cluster stream `name` ([`shard_stream`]): file
/// storage, `replicas` copies, the shard's subject, nothing discarded by age or count. Each
/// request waits at most [`STREAM_ENSURE_TIMEOUT`] for its answer, whatever `js` would wait.
///
/// # Errors
///
/// The server refused or did not answer, or a stream of the old layout holds the subject
/// ([`StreamError::OldLayout`]).
pub async fn ensure(
    js: &jetstream::Context,
    name: &str,
    shard: u16,
    replicas: usize,
) -> Result<(), StreamError> {
    let config = Config {
        name: shard_stream(name, shard),
        subjects: vec![subject(name, shard)],
        num_replicas: replicas,
        storage: StorageType::File,
        max_message_size: i32::try_from(crate::limits::BATCH_BYTES_MAX).unwrap_or(i32::MAX),
        // A writer's fence goes in as one atomic batch (`ShardLog::fence`).
        allow_atomic_publish: true,
        ..Config::default()
    };
    let mut js = js.clone();
    js.set_timeout(STREAM_ENSURE_TIMEOUT);
    match js.get_or_create_stream(config).await {
        Ok(_) => Ok(()),
        Err(e) => {
            // Does the old layout's stream, named as the cluster, hold the subject?
            let old = format!("{name}.shard.*");
            if let Ok(mut s) = js.get_stream(name).await {
                if s.info().await.is_ok_and(|i| i.config.subjects.contains(&old)) {
                    return Err(StreamError::OldLayout(name.to_owned()));
                }
            }
            Err(StreamError::Server(e.to_string()))
        }
    }
}

/// The subject's last message: its stream sequence and payload (`None`: the subject is
/// empty). `stream` is the shard's own ([`shard_stream`]).
async fn last_on(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Option<(u64, Bytes)>, String> {
    let s = js.get_stream_no_info(stream).await.map_err(|e| e.to_string())?;
    match s.get_last_raw_message_by_subject(subject).await {
        Ok(m) => Ok(Some((m.sequence, m.payload))),
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// One shard's writer of its subject. See the module docs.
pub struct ShardLog {
    js: jetstream::Context,
    /// The subject of the shard's release mark (its key in the bucket of marks), made once.
    mark: async_nats::Subject,
    /// The connection to NATS (its count of connects) this writer last marked on; `None`:
    /// not yet (see [`ShardLog::must_mark`]).
    marked_on: Option<u64>,
    /// What this writer last marked, shared with the tasks that await each mark's
    /// acknowledgement and publish a lost one again (see [`Marks`]).
    marks: std::sync::Arc<Marks>,
    /// The cluster's stream name (its buckets are named after it) and the shard's own
    /// stream ([`shard_stream`]).
    stream: String,
    shard_stream: String,
    subject: String,
    shard: u16,
    /// The subject's last sequence as this writer knows it (the last message it settled,
    /// [`ShardLog::settle`]), and the sequence of the last it sent: the messages in flight
    /// are `last + 1..=sent`, each sent expecting the one before it.
    last: u64,
    sent: u64,
    /// This writer, drawn at random when it is opened (its fence's markers name it), and
    /// whether its fence is in the stream ([`ShardLog::fence`]).
    writer: u64,
    fenced: bool,
    /// A batch sent in part waits to send the rest ([`ShardLog::send_journal`]).
    unsent: bool,
    /// The last journal record this writer appended (0: none yet), and the first record and
    /// stream sequence of the batch it was in: a batch appended again after part of it went
    /// in goes on after that part, and still begins where it began
    /// ([`ShardLog::append_journal`]).
    through: u64,
    began: (u64, u64),
    /// Appends not acknowledged at the first try (each asked again), since it was opened.
    retries: u64,
    /// Whether batches and checkpoint parts go compressed (see `batch`'s docs).
    compress: bool,
}

impl ShardLog {
    /// The writer of shard `shard`'s subject in `stream`, from the subject's last sequence
    /// now.
    ///
    /// # Errors
    ///
    /// The stream cannot be read.
    pub async fn open(client: async_nats::Client, stream: &str, shard: u16) -> Result<Self, StreamError> {
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        let subject = subject(stream, shard);
        let own = shard_stream(stream, shard);
        let last = last_on(&js, &own, &subject).await.map_err(StreamError::Server)?.map_or(0, |(s, _)| s);
        Ok(Self {
            js,
            mark: mark_subject(stream, shard),
            marked_on: None,
            marks: std::sync::Arc::default(),
            stream: stream.to_owned(),
            shard_stream: own,
            subject,
            shard,
            last,
            sent: last,
            writer: writer_id(shard),
            fenced: false,
            unsent: false,
            through: 0,
            began: (0, 0),
            retries: 0,
            compress: true,
        })
    }

    /// The writer of shard `shard`'s subject after a takeover fenced it ([`fence_taken`]) and
    /// read it ([`take_read`]): its first append expects `subject_last`
    /// ([`Missing::subject_last`]), with no fence of its own — nothing of the last owner's
    /// goes in past the takeover's, so a subject that moved since is another node's.
    #[must_use]
    pub fn open_at(client: async_nats::Client, stream: &str, shard: u16, subject_last: u64) -> Self {
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        Self {
            js,
            mark: mark_subject(stream, shard),
            marked_on: None,
            marks: std::sync::Arc::default(),
            stream: stream.to_owned(),
            shard_stream: shard_stream(stream, shard),
            subject: subject(stream, shard),
            shard,
            last: subject_last,
            sent: subject_last,
            writer: writer_id(shard),
            fenced: true,
            unsent: false,
            through: 0,
            began: (0, 0),
            retries: 0,
            compress: true,
        }
    }

    /// Whether this writer appends compressed messages (the default) or plain ones, which a
    /// build before compression reads too (see `batch`'s docs). Readers take both.
    pub fn set_compress(&mut self, on: bool) {
        self.compress = on;
    }

    /// The subject's last sequence as this writer knows it.
    #[must_use]
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Messages sent and not yet settled.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.sent - self.last
    }

    /// Appends not acknowledged at the first try (each asked again), since it was opened.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// The local journal's last record the subject holds (0: none), read from the stream.
    ///
    /// # Errors
    ///
    /// The stream cannot be read, or its last message is not a batch we wrote.
    pub async fn last_record(&self) -> Result<u64, StreamError> {
        match last_on(&self.js, &self.shard_stream, &self.subject).await.map_err(StreamError::Server)? {
            None => Ok(0),
            Some((seq, payload)) => batch::decode_message(&payload, &mut Vec::new())
                .map(|m| m.last_record())
                .map_err(|why| StreamError::Invalid { seq, why }),
        }
    }

    /// Appends the local journal's records `first_seq..=last_seq` as one message; the stream
    /// sequence it got, once the stream acknowledged it (or was found to hold it).
    ///
    /// # Errors
    ///
    /// Fenced (another writer), the stream lost acknowledged records, no answer within
    /// [`APPEND_WAIT_MAX`], or records more than a message holds ([`AppendError::TooLarge`]:
    /// nothing appended; [`ShardLog::append_journal`] cuts them).
    pub async fn append(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        records: &[u8],
    ) -> Result<u64, AppendError> {
        let mut out = Vec::new();
        fits(first_seq, last_seq, records.len())?;
        Batch { shard: self.shard, first_seq, last_seq, records }.encode_as(self.compress, &mut out);
        self.append_one(Bytes::from(out), Some((first_seq, last_seq, first_seq))).await
    }

    /// [`ShardLog::append`] of records the caller shares (a batch the local journal writes
    /// meanwhile): more than [`ENCODE_INLINE_BYTES`] of them are compressed on a blocking
    /// thread, not the caller's.
    ///
    /// # Errors
    ///
    /// As [`ShardLog::append`], or the thread that compressed them failed
    /// ([`AppendError::Encoding`]: nothing appended).
    pub async fn append_shared<R>(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        records: R,
    ) -> Result<u64, AppendError>
    where
        R: AsRef<[u8]> + Send + Sync + 'static,
    {
        fits(first_seq, last_seq, records.as_ref().len())?;
        let len = records.as_ref().len();
        let records: SharedRecords = std::sync::Arc::new(records);
        let payload = self.encode_piece(&records, 0..len, (first_seq, last_seq)).await?;
        self.append_one(payload, Some((first_seq, last_seq, first_seq))).await
    }

    /// Appends a batch of the local journal — `records`, whole records `first_seq..=last_seq`
    /// as the journal wrote them, shared as in [`ShardLog::append_shared`] — cut between
    /// records into messages of at most [`MESSAGE_RECORDS_BYTES`] of them, each appended
    /// (and fenced) in turn: a group commit can gather more than one message holds (a burst
    /// of large requests). The stream sequence of the first message, where the batch begins
    /// (its last: [`ShardLog::last`]). Asked again for the same batch after an error, it goes
    /// on after the messages that went in; a reader of the subject meanwhile sees the batch
    /// cut short, as a batch a node died appending. Nothing else may be in flight
    /// ([`ShardLog::send_journal`]).
    ///
    /// # Errors
    ///
    /// As [`ShardLog::append_shared`], or `records` are not whole records
    /// `first_seq..=last_seq` ([`AppendError::Encoding`]: nothing appended).
    pub async fn append_journal<R>(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        records: R,
    ) -> Result<u64, AppendError>
    where
        R: AsRef<[u8]> + Send + Sync + 'static,
    {
        let mut batch = self.send_journal(first_seq, last_seq, records).await?;
        let settled = self.settle_batch(&mut batch).await;
        if settled.is_err() {
            self.abandon();
        }
        settled
    }

    /// Sends a batch of the local journal as [`ShardLog::append_journal`] appends it, without
    /// waiting for the stream: each message expects the one sent before it, so several
    /// batches may be in flight, each fenced. Settle them in the order sent
    /// ([`ShardLog::settle_batch`]). At most [`APPENDS_IN_FLIGHT_MAX`] messages are in flight:
    /// the pieces of a large batch past that are sent as the ones before them settle, and
    /// until the last is sent nothing else may be ([`ShardLog::can_send`]). A batch part of
    /// which went in before (an append of it abandoned) goes on after that part.
    ///
    /// # Errors
    ///
    /// `records` are not whole records `first_seq..=last_seq`, or the thread that compressed
    /// them failed ([`AppendError::Encoding`]), or this writer's fence did not go in
    /// ([`ShardLog::fence`]): nothing was sent.
    ///
    /// # Panics
    ///
    /// Nothing may be sent now ([`ShardLog::can_send`]): the caller's error.
    pub async fn send_journal<R>(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        records: R,
    ) -> Result<SentBatch, AppendError>
    where
        R: AsRef<[u8]> + Send + Sync + 'static,
    {
        assert!(self.can_send(), "a batch is sent while there is room and no batch waits to be sent whole");
        let pieces = corridor_journal::record::pieces(records.as_ref(), MESSAGE_RECORDS_BYTES)
            .map_err(|at| AppendError::Encoding(format!("the batch's record at byte {at} is not whole")))?;
        let (first, last) = (pieces.first().map(|p| p.first_seq), pieces.last().map(|p| p.last_seq));
        if (first, last) != (Some(first_seq), Some(last_seq)) {
            return Err(AppendError::Encoding(format!(
                "the batch of records {first_seq}..={last_seq} holds {first:?}..={last:?}"
            )));
        }
        let records: SharedRecords = std::sync::Arc::new(records);
        // Went in at an earlier call for this batch: the pieces up to `through`.
        let done = Some(self.through).filter(|t| (first_seq..=last_seq).contains(t)).unwrap_or(0);
        let mut batch = SentBatch {
            first_seq,
            messages: std::collections::VecDeque::new(),
            unsent: pieces.into_iter().filter(|p| p.first_seq > done).collect(),
            records,
        };
        self.send_pieces(&mut batch).await?;
        Ok(batch)
    }

    /// Whether a message may be sent now: fewer than [`APPENDS_IN_FLIGHT_MAX`] are in flight,
    /// and no batch waits to send the rest of its pieces.
    #[must_use]
    pub fn can_send(&self) -> bool {
        self.sent - self.last < APPENDS_IN_FLIGHT_MAX && !self.unsent
    }

    /// Sends what of `batch` there is room for.
    async fn send_pieces(&mut self, batch: &mut SentBatch) -> Result<(), AppendError> {
        self.unsent = false;
        while self.sent - self.last < APPENDS_IN_FLIGHT_MAX {
            let Some(p) = batch.unsent.pop_front() else { break };
            let piece = (p.first_seq, p.last_seq);
            let sent = match self.encode_piece(&batch.records, p.bytes.clone(), piece).await {
                Ok(payload) => self.send(payload, Some((p.first_seq, p.last_seq, batch.first_seq))).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(m) => batch.messages.push_back(m),
                Err(e) => {
                    batch.unsent.push_front(p);
                    self.unsent = true;
                    return Err(e);
                }
            }
        }
        self.unsent = !batch.unsent.is_empty();
        Ok(())
    }

    /// Settles `batch`, the oldest batch in flight: each of its messages in turn
    /// ([`ShardLog::settle`]), sending the rest of its pieces as room frees. The stream
    /// sequence of its first message. After [`AppendError::Unavailable`] it may be settled
    /// again: it goes on from the message the stream did not answer for.
    ///
    /// # Errors
    ///
    /// As [`ShardLog::settle`], or a piece left to send could not be
    /// ([`ShardLog::send_journal`]).
    pub async fn settle_batch(&mut self, batch: &mut SentBatch) -> Result<u64, AppendError> {
        loop {
            if let Some(m) = batch.messages.front_mut() {
                self.settle(m).await?;
                batch.messages.pop_front();
            }
            if !batch.unsent.is_empty() {
                self.send_pieces(batch).await?;
            }
            if batch.messages.is_empty() && batch.unsent.is_empty() {
                break;
            }
        }
        debug_assert_eq!(self.began.0, batch.first_seq, "a batch's first message went in");
        Ok(self.began.1)
    }

    /// Records `first_seq..=last_seq` — the bytes `bytes` of `records` — as a message: on
    /// this thread up to [`ENCODE_INLINE_BYTES`], else on a blocking thread.
    async fn encode_piece(
        &self,
        records: &SharedRecords,
        bytes: std::ops::Range<usize>,
        (first_seq, last_seq): (u64, u64),
    ) -> Result<Bytes, AppendError> {
        let (shard, compress, shared) = (self.shard, self.compress, std::sync::Arc::clone(records));
        encoded(bytes.len(), move || {
            let mut out = Vec::new();
            let records = &(*shared).as_ref()[bytes];
            Batch { shard, first_seq, last_seq, records }.encode_as(compress, &mut out);
            out
        })
        .await
    }

    /// Appends a checkpoint: `state` (the local journal's checkpoint of records
    /// `..=covers`) in parts, one after another, each fenced like a batch; `through` is the
    /// last record the subject holds (see `batch`'s docs). The stream sequence of its first
    /// part, once the stream acknowledged (or was found to hold) its last.
    ///
    /// # Errors
    ///
    /// As [`ShardLog::append`] (a checkpoint cut short is passed over by readers), or a
    /// state of more parts than a part number holds ([`AppendError::TooLarge`]: nothing
    /// appended).
    ///
    /// # Panics
    ///
    /// `covers > through`: the caller's error.
    pub async fn append_checkpoint(
        &mut self,
        covers: u64,
        through: u64,
        state: impl Into<Bytes>,
    ) -> Result<u64, AppendError> {
        let state: Bytes = state.into();
        assert!(covers <= through, "a checkpoint covers what the subject holds or its journal checkpointed");
        let parts = u16::try_from(state.len().div_ceil(CHECKPOINT_PART_BYTES).max(1))
            .map_err(|_| AppendError::TooLarge { bytes: state.len() })?;
        let mut first = None;
        let (shard, compress) = (self.shard, self.compress);
        for part in 0..parts {
            let at = usize::from(part) * CHECKPOINT_PART_BYTES;
            let bytes = state.slice(at..state.len().min(at + CHECKPOINT_PART_BYTES));
            let payload = encoded(bytes.len(), move || {
                let mut out = Vec::new();
                CheckpointPart { shard, covers, through, part, parts, bytes: &bytes }
                    .encode_as(compress, &mut out);
                out
            })
            .await?;
            let seq = self.append_one(payload, None).await?;
            first.get_or_insert(seq);
        }
        Ok(first.unwrap_or(self.last))
    }

    /// Purges the subject's messages before stream sequence `before` (those a checkpoint at
    /// or before `before` holds the state of). Not fenced — it takes nothing a reader from
    /// that checkpoint needs, whoever asks — and idempotent.
    ///
    /// # Errors
    ///
    /// The server refused or did not answer: the messages stay until the next purge.
    pub async fn purge_before(&self, before: u64) -> Result<u64, StreamError> {
        let s = self
            .js
            .get_stream_no_info(&self.shard_stream)
            .await
            .map_err(|e| StreamError::Server(e.to_string()))?;
        let purged = s
            .purge()
            .filter(self.subject.clone())
            .sequence(before)
            .await
            .map_err(|e| StreamError::Server(e.to_string()))?;
        Ok(purged.purged)
    }

    /// Appends one message (see [`ShardLog::append`]), nothing else in flight; abandoned
    /// when it does not settle (asked again, it is sent anew).
    async fn append_one(
        &mut self,
        payload: Bytes,
        records: Option<(u64, u64, u64)>,
    ) -> Result<u64, AppendError> {
        assert_eq!(self.sent, self.last, "an append waits for none other in flight");
        let mut m = self.send(payload, records).await?;
        let settled = self.settle(&mut m).await;
        if settled.is_err() {
            self.abandon();
        }
        settled
    }

    /// What is in flight is given up (an append that did not settle): asked again, what did
    /// not go in is sent anew, from the last message settled.
    fn abandon(&mut self) {
        (self.sent, self.unsent) = (self.last, false);
    }

    /// Sends `payload` as the message after the last sent, expecting the one before it: in
    /// flight until settled ([`ShardLog::settle`]). A publish the connection did not take is
    /// sent again when it is settled. This writer's first fences the stream first
    /// ([`ShardLog::fence`]).
    ///
    /// # Errors
    ///
    /// As [`ShardLog::fence`]; nothing was sent.
    async fn send(
        &mut self,
        payload: Bytes,
        records: Option<(u64, u64, u64)>,
    ) -> Result<InFlight, AppendError> {
        if !self.fenced {
            self.fence().await?;
        }
        assert!(self.sent - self.last < APPENDS_IN_FLIGHT_MAX, "at most {APPENDS_IN_FLIGHT_MAX} in flight");
        let seq = self.sent + 1;
        self.sent = seq;
        let ack = self.publish(seq, &payload).await.ok();
        Ok(InFlight { seq, payload, records, ack, answer: None })
    }

    /// Publishes `payload` as message `seq` of the shard's stream: refused unless `seq - 1`
    /// is the stream's last. The stream checks it as it orders what it is sent, counting
    /// messages it has not stored yet, so several may be in flight.
    async fn publish(
        &self,
        seq: u64,
        payload: &Bytes,
    ) -> Result<AckFuture, jetstream::context::PublishError> {
        let publish = PublishMessage::build().payload(payload.clone()).expected_last_sequence(seq - 1);
        let ack = self.js.send_publish(self.subject.clone(), publish).await?;
        Ok(std::future::IntoFuture::into_future(ack))
    }

    /// Moves the stream past every sequence another writer's message in flight may expect,
    /// before this writer's first: [`APPENDS_IN_FLIGHT_MAX`] markers in one atomic batch,
    /// expecting the last sequence this writer knows. A sequence alone does not say whose
    /// message holds it: were this writer's first message to take the place another writer's
    /// in-flight message expected to follow (one that was refused), that writer's next would
    /// follow it. No writer has more than [`APPENDS_IN_FLIGHT_MAX`] in flight, each expecting
    /// at most one less than the last it may follow, so after the markers — all stored at
    /// once, or none — every one of them is refused. A marker is a checkpoint's first part of
    /// two naming this writer, never followed by its second: readers pass it over as a
    /// checkpoint cut short. Until the fence every message of the old writer that arrives
    /// first goes in, and the fence, then expecting less than the last, is refused: fenced.
    ///
    /// # Errors
    ///
    /// Another writer appended since this one read the stream ([`AppendError::Fenced`]),
    /// the stream lost what it held ([`AppendError::Lost`]), or no answer within
    /// [`APPEND_WAIT_MAX`] ([`AppendError::Unavailable`]).
    async fn fence(&mut self) -> Result<(), AppendError> {
        assert_eq!(self.sent, self.last, "the fence goes before anything is sent");
        let deadline = Instant::now() + APPEND_WAIT_MAX;
        let n = APPENDS_IN_FLIGHT_MAX;
        let mut tries = 0u32;
        loop {
            tries += 1;
            // The last record the stream holds: what a reader of a marker takes it to say.
            let through = match last_on(&self.js, &self.shard_stream, &self.subject).await {
                Ok(None) => Ok(0),
                Ok(Some((seq, _))) if seq > self.last => {
                    return Err(AppendError::Fenced { expected: self.last, found: seq });
                }
                Ok(Some((seq, _))) if seq < self.last => {
                    return Err(AppendError::Lost { acknowledged: self.last, found: seq });
                }
                Ok(Some((seq, payload))) => batch::decode_message(&payload, &mut Vec::new())
                    .map(|m| m.last_record())
                    .map_err(|why| format!("message {seq}: {why}")),
                Err(e) => Err(e),
            };
            let (why, marker) = match through {
                Ok(through) => {
                    let marker = self.marker(through);
                    match self.publish_fence(&marker, tries).await {
                        Ok(()) => {
                            (self.last, self.sent, self.fenced) = (self.last + n, self.last + n, true);
                            return Ok(());
                        }
                        Err(e) => (e, Some(marker)),
                    }
                }
                Err(e) => (e, None),
            };
            self.retries += 1;
            // Went in, its answer lost? The stream's last is then our last marker.
            if let (Ok(Some((seq, data))), Some(marker)) =
                (last_on(&self.js, &self.shard_stream, &self.subject).await, marker)
            {
                if seq == self.last + n && data == marker {
                    (self.last, self.sent, self.fenced) = (seq, seq, true);
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                warn!(shard = self.shard, error = %why, "journal append: the stream did not take the fence");
                return Err(AppendError::Unavailable(why));
            }
            tokio::time::sleep(APPEND_RETRY).await;
        }
    }

    /// A fence's marker (see [`ShardLog::fence`]), `through` the stream's last record.
    fn marker(&self, through: u64) -> Bytes {
        let mut out = Vec::new();
        let writer = self.writer.to_be_bytes();
        CheckpointPart { shard: self.shard, covers: through, through, part: 0, parts: 2, bytes: &writer }
            .encode_as(false, &mut out);
        Bytes::from(out)
    }

    /// Publishes `marker` as the fence's markers, one atomic batch (`Nats-Batch-*`, the first
    /// expecting this writer's last sequence); `Ok` once the stream took it whole.
    async fn publish_fence(&self, marker: &Bytes, try_: u32) -> Result<(), String> {
        use async_nats::header::{HeaderMap, NATS_EXPECTED_LAST_SEQUENCE};
        let n = APPENDS_IN_FLIGHT_MAX;
        let id = format!("{:016x}.{try_}", self.writer);
        let client = self.js.client();
        for k in 1..n {
            let mut h = HeaderMap::new();
            h.insert("Nats-Batch-Id", id.as_str());
            h.insert("Nats-Batch-Sequence", k.to_string().as_str());
            if k == 1 {
                h.insert(NATS_EXPECTED_LAST_SEQUENCE, self.last.to_string().as_str());
            }
            client
                .publish_with_headers(self.subject.clone(), h, marker.clone())
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut commit = PublishMessage::build()
            .payload(marker.clone())
            .header("Nats-Batch-Id", id.as_str())
            .header("Nats-Batch-Sequence", n.to_string().as_str())
            .header("Nats-Batch-Commit", "1");
        if n == 1 {
            commit = commit.expected_last_sequence(self.last);
        }
        let ack = self.js.send_publish(self.subject.clone(), commit).await.map_err(|e| e.to_string())?;
        let ack = ack.await.map_err(|e| e.to_string())?;
        if ack.sequence != self.last + n {
            return Err(format!("the fence went in at {}, not {}", ack.sequence, self.last + n));
        }
        Ok(())
    }

    /// Settles `m`, the oldest message in flight: its acknowledgement, or — when none comes
    /// (an election, a partition, a lost reply) — what the subject holds at its sequence:
    /// `m` (stored, the reply lost), another writer's message (fenced), or nothing yet (`m`
    /// is sent again). Its stream sequence. With several in flight, the ones after a message
    /// the stream did not take are refused as well (each expects the one before it) and each
    /// is sent again as it is settled; one that went in after all is recognized at its place.
    ///
    /// # Errors
    ///
    /// Fenced (another writer), the stream lost acknowledged records, or no answer within
    /// [`APPEND_WAIT_MAX`] ([`AppendError::Unavailable`]: `m` may be settled again).
    ///
    /// # Panics
    ///
    /// `m` is not the oldest in flight: the caller settles in the order it sent.
    pub async fn settle(&mut self, m: &mut InFlight) -> Result<u64, AppendError> {
        assert_eq!(m.seq, self.last + 1, "messages are settled in the order they were sent");
        let deadline = Instant::now() + APPEND_WAIT_MAX;
        loop {
            let answer = match (m.answer.take(), m.ack.take()) {
                (Some(answer), _) => answer,
                (None, Some(ack)) => ack.await,
                (None, None) => Err(jetstream::context::PublishError::new(
                    jetstream::context::PublishErrorKind::BrokenPipe,
                )),
            };
            let why = match answer {
                Ok(ack) if ack.sequence == m.seq => return Ok(self.settled(m)),
                Ok(ack) => {
                    // Only another subject in the stream would put it elsewhere.
                    return Err(AppendError::Fenced { expected: m.seq - 1, found: ack.sequence });
                }
                Err(e) => e.to_string(),
            };
            self.retries += 1;
            // Stored with its reply lost, another writer's, or not stored at all? The
            // subject says, at the message's sequence.
            match self.held_at(m).await {
                Ok(Held::Ours) => {
                    debug!(shard = self.shard, seq = m.seq, "append stored, its acknowledgement lost");
                    return Ok(self.settled(m));
                }
                Ok(Held::Another(found)) => return Err(AppendError::Fenced { expected: m.seq - 1, found }),
                Ok(Held::Below(found)) => return Err(AppendError::Lost { acknowledged: self.last, found }),
                Ok(Held::Nothing) => {}
                Err(read) => debug!(shard = self.shard, error = %read, "cannot read the subject back yet"),
            }
            if Instant::now() >= deadline {
                warn!(shard = self.shard, error = %why, "journal append: the stream did not acknowledge");
                return Err(AppendError::Unavailable(why));
            }
            tokio::time::sleep(APPEND_RETRY).await;
            m.ack = self.publish(m.seq, &m.payload).await.ok();
        }
    }

    /// `m` is in the subject: the last message settled.
    fn settled(&mut self, m: &InFlight) -> u64 {
        self.last = m.seq;
        if let Some((first_seq, last_seq, batch_first)) = m.records {
            if first_seq == batch_first {
                self.began = (batch_first, m.seq);
            }
            self.through = last_seq;
        }
        m.seq
    }

    /// What the subject holds at `m`'s sequence (see [`ShardLog::settle`]).
    async fn held_at(&self, m: &InFlight) -> Result<Held, String> {
        match last_on(&self.js, &self.shard_stream, &self.subject).await? {
            Some((seq, data)) if seq == m.seq => {
                Ok(if data == m.payload { Held::Ours } else { Held::Another(seq) })
            }
            Some((seq, _)) if seq > m.seq => {
                let s = self.js.get_stream_no_info(&self.shard_stream).await.map_err(|e| e.to_string())?;
                match s.get_raw_message(m.seq).await {
                    Ok(at) if at.payload == m.payload => Ok(Held::Ours),
                    Ok(_) => Ok(Held::Another(m.seq)),
                    // Not there while later ones are: deleted, or never ours.
                    Err(_) => Ok(Held::Another(seq)),
                }
            }
            Some((seq, _)) if seq < self.last => Ok(Held::Below(seq)),
            None if self.last > 0 => Ok(Held::Below(0)),
            _ => Ok(Held::Nothing),
        }
    }
}

/// A writer's name, drawn at random (the standard library's per-process random keys, and
/// the time): what tells its fence's markers from any other writer's.
fn writer_id(shard: u16) -> u64 {
    use std::hash::BuildHasher;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    std::hash::RandomState::new().hash_one((now.as_nanos(), std::process::id(), shard))
}

/// A stream's acknowledgement of a message, awaited.
type AckFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
            > + Send,
    >,
>;

/// A message sent to a shard's subject and not yet settled ([`ShardLog::settle`]).
pub struct InFlight {
    /// The stream sequence it must get: the one after the message sent before it.
    seq: u64,
    payload: Bytes,
    /// The journal's records it holds and the first record of their batch.
    records: Option<(u64, u64, u64)>,
    /// Its acknowledgement (`None`: not sent, or awaited in vain: sent again when settled),
    /// and the stream's answer once it came ([`SentBatch::answered`]).
    ack: Option<AckFuture>,
    answer: Option<Result<jetstream::publish::PublishAck, jetstream::context::PublishError>>,
}

impl InFlight {
    /// Waits for the stream's answer and keeps it for [`ShardLog::settle`]; dropped before
    /// it comes, nothing is lost.
    async fn answered(&mut self) {
        if let Some(ack) = self.ack.as_mut() {
            let answer = ack.await;
            (self.ack, self.answer) = (None, Some(answer));
        }
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("seq", &self.seq)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

/// Records shared with whoever else holds them (the local journal's write).
type SharedRecords = std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A batch of the local journal sent to its shard's subject, its messages not yet all
/// settled ([`ShardLog::send_journal`], [`ShardLog::settle_batch`]).
pub struct SentBatch {
    first_seq: u64,
    /// Its messages in flight, oldest first.
    messages: std::collections::VecDeque<InFlight>,
    /// Its pieces not yet sent (no room): sent as it is settled.
    unsent: std::collections::VecDeque<corridor_journal::record::Piece>,
    records: SharedRecords,
}

impl SentBatch {
    /// Waits until the stream answered the batch's oldest message in flight (at once when
    /// none is): [`ShardLog::settle_batch`] then goes on without waiting for it. Dropped
    /// before that, nothing is lost.
    pub async fn answered(&mut self) {
        if let Some(m) = self.messages.front_mut() {
            m.answered().await;
        }
    }
}

impl std::fmt::Debug for SentBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentBatch")
            .field("first_seq", &self.first_seq)
            .field("messages", &self.messages)
            .field("unsent", &self.unsent.len())
            .finish_non_exhaustive()
    }
}

/// What a subject holds at a message's sequence.
enum Held {
    /// The message.
    Ours,
    /// Another (its sequence): another writer's.
    Another(u64),
    /// The subject ends before what this writer settled (at this sequence).
    Below(u64),
    /// Nothing yet: the message did not go in.
    Nothing,
}

/// Whether records `first_seq..=last_seq`, `len` bytes of them, go in one message.
fn fits(first_seq: u64, last_seq: u64, len: usize) -> Result<(), AppendError> {
    if first_seq > last_seq {
        return Err(AppendError::Encoding(format!("records {first_seq}..={last_seq}: none")));
    }
    if len > batch::RAW_BYTES_MAX {
        return Err(AppendError::TooLarge { bytes: len });
    }
    Ok(())
}

/// A message `encode` makes of `len` bytes: on this thread up to [`ENCODE_INLINE_BYTES`],
/// else on a blocking thread.
async fn encoded(
    len: usize,
    encode: impl FnOnce() -> Vec<u8> + Send + 'static,
) -> Result<Bytes, AppendError> {
    if len <= ENCODE_INLINE_BYTES {
        return Ok(Bytes::from(encode()));
    }
    tokio::task::spawn_blocking(encode)
        .await
        .map(Bytes::from)
        .map_err(|e| AppendError::Encoding(e.to_string()))
}

/// A batch read back from the stream, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadBatch {
    /// Its stream sequence.
    pub seq: u64,
    /// The local journal's first and last sequence numbers in it.
    pub first_seq: u64,
    /// See `first_seq`.
    pub last_seq: u64,
    /// The records.
    pub records: Bytes,
}

/// A checkpoint read back from the stream, whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadCheckpoint {
    /// The stream sequence of its first part.
    pub seq: u64,
    /// The last record its state holds.
    pub covers: u64,
    /// The last record the subject held when it was appended.
    pub through: u64,
    /// The state: the local journal's checkpoint of records `..=covers`.
    pub state: Vec<u8>,
}

/// A subject read in order, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// Its batches, in order.
    pub batches: Vec<ReadBatch>,
    /// The last whole checkpoint read (`None`: none).
    pub checkpoint: Option<ReadCheckpoint>,
    /// The subject's last stream sequence when it was read (0: empty).
    pub last: u64,
}

/// Every batch on shard `shard`'s subject, in order, checked (see [`read_subject`]).
///
/// # Errors
///
/// As [`read_subject`].
pub async fn read(
    client: async_nats::Client,
    stream: &str,
    shard: u16,
    tail: Tail,
) -> Result<Vec<ReadBatch>, StreamError> {
    read_subject(client, stream, shard, tail, None).await.map(|s| s.batches)
}

/// The parts of a checkpoint read so far.
struct Assembly {
    seq: u64,
    covers: u64,
    through: u64,
    parts: u16,
    next: u16,
    state: Vec<u8>,
}

/// Every message of shard `shard`'s subject from stream sequence `from` on (from its first
/// when `None`), in order, checked: our CRC on each; no gap between batches (starting at
/// `tail`); each whole checkpoint joining the batches around it ([`Tail::checkpoint`]); and
/// the beginning accounted for — the first batch read begins at record 1 or within what the
/// first checkpoint after it covers, and a checkpoint read first holds every record before
/// the batches after it. A checkpoint cut short (its writer died mid-way) is passed over.
///
/// # Errors
///
/// The stream cannot be read, a message is not one we wrote, records are missing, or the
/// subject no longer holds message `from` ([`StreamError::NotAt`]: purged since).
pub async fn read_subject(
    client: async_nats::Client,
    stream: &str,
    shard: u16,
    mut tail: Tail,
    from: Option<u64>,
) -> Result<Subject, StreamError> {
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    let subject = subject(stream, shard);
    let own = shard_stream(stream, shard);
    let server = |e: &dyn std::fmt::Display| StreamError::Server(e.to_string());
    let Some((last, _)) = last_on(&js, &own, &subject).await.map_err(StreamError::Server)? else {
        return Ok(Subject::default());
    };
    if let Some(from) = from.filter(|&f| f > last) {
        // Past the subject's end (a stream made anew under an old hint): nothing to wait for.
        return Err(StreamError::NotAt { from, found: last });
    }
    let s = js.get_stream_no_info(&own).await.map_err(|e| server(&e))?;
    let deliver_policy =
        from.map_or(DeliverPolicy::All, |start_sequence| DeliverPolicy::ByStartSequence { start_sequence });
    let consumer = s
        .create_consumer(OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy,
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| server(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| server(&e))?;
    let mut out = Subject { last, ..Subject::default() };
    // The first batch's first record, when a batch comes before any whole checkpoint; and
    // what the first whole checkpoint covers.
    let (mut first_record, mut first_covers) = (None, None);
    let mut assembly: Option<Assembly> = None;
    let mut read = 0usize;
    // Where a compressed message's records are decompressed, kept from one to the next.
    let mut scratch = Vec::new();
    while let Some(m) =
        tokio::time::timeout(REQUEST_TIMEOUT * 4, messages.next()).await.map_err(|e| server(&e))?
    {
        let m = m.map_err(|e| server(&e))?;
        let seq = m.info().map_err(|e| server(&e))?.stream_sequence;
        if read == 0 {
            if let Some(from) = from.filter(|&f| f != seq) {
                return Err(StreamError::NotAt { from, found: seq });
            }
        }
        read += 1;
        if read > READ_BATCHES_MAX {
            return Err(StreamError::TooMany);
        }
        match batch::decode_message(&m.payload, &mut scratch)
            .map_err(|why| StreamError::Invalid { seq, why })?
        {
            Message::Batch(b) => {
                assembly = None;
                tail.accept(&b).map_err(StreamError::Gap)?;
                if first_covers.is_none() {
                    first_record.get_or_insert(b.first_seq);
                }
                out.batches.push(ReadBatch {
                    seq,
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    records: Bytes::copy_from_slice(b.records),
                });
            }
            Message::Checkpoint(p) => {
                let follows = assembly.as_ref().is_some_and(|a| {
                    (a.covers, a.through, a.parts, a.next) == (p.covers, p.through, p.parts, p.part)
                });
                if p.part == 0 {
                    let state = Vec::with_capacity(p.bytes.len() * usize::from(p.parts));
                    assembly = Some(Assembly {
                        seq,
                        covers: p.covers,
                        through: p.through,
                        parts: p.parts,
                        next: 0,
                        state,
                    });
                } else if !follows {
                    // The rest of a checkpoint whose beginning was cut off: passed over.
                    assembly = None;
                }
                if let Some(a) = assembly.as_mut() {
                    a.state.extend_from_slice(p.bytes);
                    a.next += 1;
                    if a.next == a.parts {
                        let a = assembly.take().unwrap_or_else(|| unreachable!("taken just above"));
                        if tail.next() == 0 && a.through != a.covers {
                            // Read first, it says batches before it hold what it does not
                            // cover: they are not there.
                            return Err(StreamError::Gap(Gap {
                                expected: a.covers + 1,
                                found: a.through + 1,
                            }));
                        }
                        tail.checkpoint(a.covers, a.through).map_err(StreamError::Gap)?;
                        first_covers.get_or_insert(a.covers);
                        out.checkpoint = Some(ReadCheckpoint {
                            seq: a.seq,
                            covers: a.covers,
                            through: a.through,
                            state: a.state,
                        });
                    }
                }
            }
        }
        if seq >= last {
            break;
        }
    }
    if let Some(first) = first_record {
        let covered = first_covers.unwrap_or(0);
        if first > covered + 1 {
            return Err(StreamError::Gap(Gap { expected: covered + 1, found: first }));
        }
    }
    Ok(out)
}

/// Where a node taking shard `shard` over begins reading its subject: the stream sequence a
/// reader of its last checkpoint starts at (the first batch holding a record the checkpoint
/// does not cover, or the checkpoint itself), kept beside the shard count in the cluster's
/// bucket. Only a hint: a reader checks what it reads from there, and one that no longer
/// finds it (purged since) reads the subject whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The stream sequence to read from.
    pub from: u64,
    /// The last record the checkpoint covers.
    pub covers: u64,
}

impl Hint {
    fn key(shard: u16) -> String {
        format!("checkpoint.{shard}")
    }

    fn encode(self) -> Bytes {
        Bytes::from(format!("from={} covers={}", self.from, self.covers))
    }

    fn decode(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let field = |name: &str| {
            text.split(' ').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
        };
        Some(Self { from: field("from")?, covers: field("covers")? })
    }
}

impl Hint {
    /// Shard `shard`'s hint in the cluster's bucket `kv`, if one was published (and the
    /// bucket answers).
    pub async fn of(kv: &jetstream::kv::Store, shard: u16) -> Option<Self> {
        Self::decode(&kv.get(Self::key(shard)).await.ok()??)
    }
}

/// The subject shard `shard`'s release mark is published on: its key in the cluster's
/// bucket (a key-value bucket's subjects are `$KV.<bucket>.<key>`), file-backed, so a mark
/// outlives a restart of every NATS server. (A bucket of their own kept in memory measured
/// no faster: the release never waits for the servers to store a mark; benches/README.)
fn mark_subject(stream: &str, shard: u16) -> async_nats::Subject {
    async_nats::Subject::from(format!("$KV.{}.released.{shard}", crate::status::cluster_bucket(stream)))
}

/// Shard `shard`'s release mark: the last record whose gated frames an owner of the shard
/// released (`None`: none was ever published — every answer then counts as given, as
/// before marks). Asked of the bucket's leader, not read directly from any server holding
/// a copy (a key-value bucket's reads are direct): a copy behind the leader would hold an
/// older mark, and an approval that left would be reversed.
///
/// # Errors
///
/// The leader did not answer (or answered what no node wrote): the takeover reads again,
/// rather than take every answer as given.
async fn released(js: &jetstream::Context, stream: &str, shard: u16) -> Result<Option<u64>, StreamError> {
    use async_nats::jetstream::{stream::LastRawMessageErrorKind as Kind, ErrorCode};
    let bucket = crate::status::cluster_bucket(stream);
    let marks = js
        .get_stream_no_info(format!("KV_{bucket}"))
        .await
        .map_err(|e| StreamError::Server(e.to_string()))?;
    let subject = mark_subject(stream, shard);
    let message = match marks.get_last_raw_message_by_subject(subject.as_str()).await {
        Ok(m) => m,
        Err(e) => {
            return match e.kind() {
                Kind::NoMessageFound => Ok(None),
                Kind::JetStream(j)
                    if [ErrorCode::NO_MESSAGE_FOUND, ErrorCode::STREAM_NOT_FOUND]
                        .contains(&j.error_code()) =>
                {
                    Ok(None)
                }
                _ => Err(StreamError::Server(format!("the release mark: {e}"))),
            }
        }
    };
    let mark = std::str::from_utf8(&message.payload).ok().and_then(|t| t.parse().ok());
    mark.map(Some).ok_or_else(|| StreamError::Server("the release mark is not a record's number".into()))
}

/// One writer's release marks, as the tasks awaiting their acknowledgements see them.
#[derive(Debug, Default)]
struct Marks {
    /// The last mark published (the record it covers) and how many were: held while a mark
    /// is published, so marks leave in the order of what they cover — a lost one published
    /// again never goes after a later one.
    last: tokio::sync::Mutex<(u64, u64)>,
    /// The last mark published was not acknowledged (lost with the bucket's leader, or
    /// never stored) and is not yet again: the next batch released is marked whatever it
    /// holds.
    lost: std::sync::atomic::AtomicBool,
    /// Marks published again after the bucket did not acknowledge them (for operations).
    again: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Marks {
    /// Awaits mark number `n`'s acknowledgement `ack`; if the bucket does not give one,
    /// publishes the mark again every [`RELEASE_MARK_RETRY`] (at most
    /// [`RELEASE_MARK_RETRIES`] times) until it is acknowledged, a later mark is published
    /// (its own task takes over), or the writer is gone.
    async fn see_taken(
        self: std::sync::Arc<Self>,
        js: jetstream::Context,
        subject: async_nats::Subject,
        n: u64,
        mut ack: jetstream::context::PublishAckFuture,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        // Superseded by a later mark (whose task answers for it), or the writer is gone.
        let over = |last: &(u64, u64), marks: &std::sync::Arc<Self>| {
            last.1 != n || std::sync::Arc::strong_count(marks) == 1
        };
        for _ in 0..=RELEASE_MARK_RETRIES {
            let Err(e) = ack.await else {
                if !over(&*self.last.lock().await, &self) {
                    self.lost.store(false, Relaxed);
                }
                return;
            };
            if over(&*self.last.lock().await, &self) {
                return;
            }
            self.lost.store(true, Relaxed);
            debug!(error = %e, "cluster: a release mark was not acknowledged: published again");
            tokio::time::sleep(RELEASE_MARK_RETRY).await;
            let last = self.last.lock().await;
            if over(&last, &self) {
                return;
            }
            let again = js.publish(subject.clone(), Bytes::from(last.0.to_string())).await;
            drop(last);
            self.again.fetch_add(1, Relaxed);
            ack = match again {
                Ok(a) => a,
                Err(e) => {
                    return debug!(error = %e, "cluster: a lost release mark could not be published again")
                }
            };
        }
    }
}

impl ShardLog {
    /// The count of release marks this writer published again because the bucket did not
    /// acknowledge them (shared: it goes on counting while the shard is idle).
    #[must_use]
    pub fn marks_again(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        std::sync::Arc::clone(&self.marks.again)
    }

    /// Whether the release of a batch must be marked first: a batch relaying an approval
    /// (`relays`, [`ShardLog::mark_released`]), and the first this writer releases on each
    /// connection to NATS whatever it holds. A shard whose mark is missing counts every
    /// answer as given; so every owner marks once before anything it releases, and the
    /// first approval of a shard's life cannot be the one left unmarked by a death — and
    /// a bucket of marks emptied (a stream made anew)
    /// is marked again as soon as the node's connection is made again. So is a shard whose
    /// last mark the bucket did not acknowledge.
    #[must_use]
    pub fn must_mark(&self, relays: bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let connects = self.js.client().statistics().connects.load(Relaxed);
        relays || self.marked_on != Some(connects) || self.marks.lost.load(Relaxed)
    }

    /// Marks records `..=through` released — the frames they gate are about to leave — and
    /// returns once the mark is written to this node's connection to NATS, before any of
    /// those frames is written to its socket. So a node killed between the two leaves the
    /// mark to the stream (the kernel sends what was written), and one killed before the mark
    /// has sent none of them: a new owner takes an approval recorded after the mark as never
    /// given ([`Missing::released`]). Not fenced, and its acknowledgement not waited for
    /// (that would put a round trip before every answer): a publish on the mark's key in the
    /// cluster's bucket, whose stream keeps the last. One the bucket does not acknowledge
    /// within its request timeout is published again by itself until it is (an idle shard's
    /// last mark would otherwise stay lost), and meanwhile the next batch released is marked
    /// whatever it holds ([`ShardLog::must_mark`]). Only a batch relaying an approval is
    /// marked (`SyncBatch::release_marked`), and the first on each connection.
    ///
    /// # Errors
    ///
    /// The connection did not take it within [`RELEASE_MARK_WAIT`]: nothing may be released.
    pub async fn mark_released(&mut self, through: u64) -> Result<(), String> {
        let client = self.js.client();
        // Read before the publish: a connection made again meanwhile is marked on again.
        self.marked_on = Some(client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed));
        let mark = async {
            let mut last = self.marks.last.lock().await;
            let ack = self
                .js
                .publish(self.mark.clone(), Bytes::from(through.to_string()))
                .await
                .map_err(|e| e.to_string())?;
            *last = (through, last.1 + 1);
            let n = last.1;
            drop(last);
            client.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((n, ack))
        };
        let (n, ack) = tokio::time::timeout(RELEASE_MARK_WAIT, mark)
            .await
            .map_err(|_| format!("the release mark was not taken within {RELEASE_MARK_WAIT:?}"))??;
        let marks = std::sync::Arc::clone(&self.marks);
        tokio::spawn(marks.see_taken(self.js.clone(), self.mark.clone(), n, ack));
        Ok(())
    }
}

impl ShardLog {
    /// Publishes `hint` for this shard unless the bucket holds one for a later checkpoint
    /// (compare-and-set: a deposed owner's older hint never replaces a newer one).
    ///
    /// # Errors
    ///
    /// The bucket refused or did not answer: readers go on from the last hint (or the
    /// subject's first message).
    pub async fn publish_hint(&self, hint: Hint) -> Result<(), String> {
        let kv = self
            .js
            .get_key_value(crate::status::cluster_bucket(&self.stream))
            .await
            .map_err(|e| e.to_string())?;
        let key = Hint::key(self.shard);
        match kv.entry(&key).await.map_err(|e| e.to_string())? {
            Some(e) if Hint::decode(&e.value).is_some_and(|h| h.covers >= hint.covers) => Ok(()),
            Some(e) => {
                kv.update(&key, hint.encode(), e.revision).await.map(|_| ()).map_err(|e| e.to_string())
            }
            None => kv.create(&key, hint.encode()).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }
}

/// What a node taking a shard over reads from its subject: its last checkpoint, the records
/// after it, and the subject's last sequence, which its first append must expect (an append
/// of the last owner's after this read fences the new one rather than slip in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// The subject's last whole checkpoint, if it has one.
    pub checkpoint: Option<ReadCheckpoint>,
    /// The records after the checkpoint (after record `after` for [`records_after`]), whole,
    /// as the journal had them on disk: `(first_seq, records)`; `None` when there are none.
    pub records: Option<(u64, Vec<u8>)>,
    /// The subject's last stream sequence when it was read (0: empty).
    pub subject_last: u64,
    /// The shard's release mark when it was read ([`ShardLog::mark_released`]; `None`:
    /// never published): an approval recorded after it may never have left its node.
    pub released: Option<u64>,
}

/// Fences shard `shard`'s subject for a node that has taken its lease, before it reads
/// the subject ([`take_read`]); the subject's last sequence after the fence. The last owner
/// may still have messages on their way (a node killed with appends in flight: the server
/// has them, the stream has not stored them yet). Each that arrives before the fence goes
/// in, and the read after the fence finds it; none that arrives after it does. Had the new
/// owner read first and fenced at its first append instead, one arriving between the two
/// would be in the subject and not in what it recovered — its fence refused, the shard
/// given up after all the work of taking it.
///
/// # Errors
///
/// The stream cannot be read, or did not take the fence ([`StreamError::Fence`]): a
/// message of the last owner's that arrived between the fence's read of the subject's last
/// sequence and the fence itself refuses it ([`AppendError::Fenced`]); fencing again reads
/// the sequence anew. The last owner has at most [`APPENDS_IN_FLIGHT_MAX`] such messages.
pub async fn fence_taken(client: async_nats::Client, stream: &str, shard: u16) -> Result<u64, StreamError> {
    let mut log = ShardLog::open(client, stream, shard).await?;
    log.fence().await.map_err(StreamError::Fence)?;
    Ok(log.last)
}

/// What a node taking shard `shard` over needs of its subject (see [`Missing`]): read from
/// the last checkpoint's hint, or whole when there is none (or it is stale). It writes them
/// into its journal and recovers it as a restart does.
///
/// # Errors
///
/// The stream cannot be read, a message is damaged, records are missing, or a batch's
/// records are not whole records.
pub async fn take_read(client: async_nats::Client, stream: &str, shard: u16) -> Result<Missing, StreamError> {
    let mut js = jetstream::new(client.clone());
    js.set_timeout(REQUEST_TIMEOUT);
    // The cluster's bucket: the checkpoint's hint.
    let bucket = js.get_key_value(crate::status::cluster_bucket(stream)).await.ok();
    let hint = match &bucket {
        Some(kv) => Hint::of(kv, shard).await,
        None => None,
    };
    let whole = match hint {
        Some(h) => match read_subject(client.clone(), stream, shard, Tail::default(), Some(h.from)).await {
            Err(StreamError::NotAt { from, found }) => {
                warn!(
                    shard,
                    from, found, "cluster: the checkpoint's hint is stale: reading the subject whole"
                );
                None
            }
            other => Some(other?),
        },
        None => None,
    };
    let subject = match whole {
        Some(s) => s,
        None => read_subject(client, stream, shard, Tail::default(), None).await?,
    };
    let after = subject.checkpoint.as_ref().map_or(0, |c| c.covers);
    // Read after the subject: the lease is this node's, so no owner marks anything since,
    // and the mark covers no record the read lacks.
    let released = released(&js, stream, shard).await?;
    Ok(Missing {
        records: records_of(&subject.batches, after)?,
        checkpoint: subject.checkpoint,
        subject_last: subject.last,
        released,
    })
}

/// The records of shard `shard`'s subject after record `after`, read from its first message
/// (checkpoints passed over): what `corridor clearing` reads of a shard in a cluster.
///
/// # Errors
///
/// As [`take_read`].
pub async fn records_after(
    client: async_nats::Client,
    stream: &str,
    shard: u16,
    after: u64,
) -> Result<Missing, StreamError> {
    let subject = read_subject(client, stream, shard, Tail::default(), None).await?;
    Ok(Missing {
        records: records_of(&subject.batches, after)?,
        checkpoint: subject.checkpoint,
        subject_last: subject.last,
        released: None,
    })
}

/// The records of `batches` after record `after`, whole: `(first_seq, records)`.
fn records_of(batches: &[ReadBatch], after: u64) -> Result<Option<(u64, Vec<u8>)>, StreamError> {
    let mut first = None;
    let mut out = Vec::new();
    for b in batches.iter().filter(|b| b.last_seq > after) {
        let from = (after + 1).max(b.first_seq);
        let records = corridor_journal::records_since(&b.records, b.first_seq, from)
            .map_err(|e| StreamError::Invalid { seq: b.seq, why: Invalid::Records(e.to_string()) })?;
        first.get_or_insert(from);
        out.extend_from_slice(records);
    }
    Ok(first.map(|f| (f, out)))
}

//! A shard's journal in the stream: one subject per shard, appended to with the subject's
//! expected last sequence, so appends are ordered and exactly once whatever the server's
//! deduplication window, and a writer that lost the shard is fenced by the stream itself —
//! its next append names a sequence that is no longer the subject's last.
//!
//! An append whose acknowledgement does not come (an election, a partition, a lost reply) is
//! settled by reading the subject's last message back: ours (stored, the reply lost), another
//! writer's (fenced), or none newer (not stored: sent again with the same expected
//! sequence). Reads are checked (our CRC on every batch, no gap between batches), and a
//! subject whose last sequence went backwards is reported: the stream lost what it had
//! acknowledged.

use std::time::Instant;

use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
    context::PublishErrorKind,
    message::PublishMessage,
    stream::{Config, StorageType},
};
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::{debug, warn};

use crate::{
    batch::{self, Batch, Gap, Invalid, Tail},
    limits::{APPEND_RETRY, APPEND_WAIT_MAX, READ_BATCHES_MAX, REQUEST_TIMEOUT},
};

/// The subject shard `shard`'s journal goes on in stream `stream`.
#[must_use]
pub fn subject(stream: &str, shard: u16) -> String {
    format!("{stream}.shard.{shard}")
}

/// Why the stream could not be made or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamError {
    /// The server refused or did not answer.
    Server(String),
    /// A message on the subject is not a batch we wrote (or is damaged).
    Invalid {
        /// Its stream sequence.
        seq: u64,
        /// Why.
        why: Invalid,
    },
    /// Batches are missing between two that are there.
    Gap(Gap),
    /// More batches than [`READ_BATCHES_MAX`].
    TooMany,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server(e) => write!(f, "the stream: {e}"),
            Self::Invalid { seq, why } => write!(f, "message {seq}: {why}"),
            Self::Gap(g) => write!(f, "{g}"),
            Self::TooMany => write!(f, "more than {READ_BATCHES_MAX} batches on the subject"),
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
        }
    }
}

impl std::error::Error for AppendError {}

/// Makes (or finds) stream `name` for the shards' journals: file storage, `replicas`
/// copies, every shard's subject, nothing discarded by age or count.
///
/// # Errors
///
/// The server refused or did not answer.
pub async fn ensure(js: &jetstream::Context, name: &str, replicas: usize) -> Result<(), StreamError> {
    let config = Config {
        name: name.to_owned(),
        subjects: vec![format!("{name}.shard.*")],
        num_replicas: replicas,
        storage: StorageType::File,
        max_message_size: i32::try_from(crate::limits::BATCH_BYTES_MAX).unwrap_or(i32::MAX),
        ..Config::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| StreamError::Server(e.to_string()))?;
    Ok(())
}

/// The subject's last message: its stream sequence and payload (`None`: the subject is
/// empty).
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
    stream: String,
    subject: String,
    shard: u16,
    /// The subject's last sequence as this writer knows it: every append expects it.
    last: u64,
    /// Appends not acknowledged at the first try (each asked again), since it was opened.
    retries: u64,
    scratch: Vec<u8>,
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
        let last = last_on(&js, stream, &subject).await.map_err(StreamError::Server)?.map_or(0, |(s, _)| s);
        Ok(Self { js, stream: stream.to_owned(), subject, shard, last, retries: 0, scratch: Vec::new() })
    }

    /// The writer of shard `shard`'s subject whose first append expects `subject_last` (what
    /// a takeover read, [`Missing::subject_last`]), whatever the subject holds by then.
    #[must_use]
    pub fn open_at(client: async_nats::Client, stream: &str, shard: u16, subject_last: u64) -> Self {
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        Self {
            js,
            stream: stream.to_owned(),
            subject: subject(stream, shard),
            shard,
            last: subject_last,
            retries: 0,
            scratch: Vec::new(),
        }
    }

    /// The subject's last sequence as this writer knows it.
    #[must_use]
    pub fn last(&self) -> u64 {
        self.last
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
        match last_on(&self.js, &self.stream, &self.subject).await.map_err(StreamError::Server)? {
            None => Ok(0),
            Some((seq, payload)) => {
                batch::decode(&payload).map(|b| b.last_seq).map_err(|why| StreamError::Invalid { seq, why })
            }
        }
    }

    /// Appends the local journal's records `first_seq..=last_seq`; the stream sequence it
    /// got, once the stream acknowledged it (or was found to hold it).
    ///
    /// # Errors
    ///
    /// Fenced (another writer), the stream lost acknowledged records, or no answer within
    /// [`APPEND_WAIT_MAX`].
    pub async fn append(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        records: &[u8],
    ) -> Result<u64, AppendError> {
        self.scratch.clear();
        Batch { shard: self.shard, first_seq, last_seq, records }.encode(&mut self.scratch);
        let payload = Bytes::copy_from_slice(&self.scratch);
        let deadline = Instant::now() + APPEND_WAIT_MAX;
        loop {
            let publish =
                PublishMessage::build().payload(payload.clone()).expected_last_subject_sequence(self.last);
            let sent = match self.js.send_publish(self.subject.clone(), publish).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            let why = match sent {
                Ok(ack) => {
                    self.last = ack.sequence;
                    return Ok(ack.sequence);
                }
                Err(e) => e,
            };
            self.retries += 1;
            // Stored with its reply lost, another writer's, or not stored at all? The
            // subject's last message says.
            match last_on(&self.js, &self.stream, &self.subject).await {
                Ok(Some((seq, data))) if seq > self.last => {
                    if data == payload {
                        debug!(shard = self.shard, seq, "append stored, its acknowledgement lost");
                        self.last = seq;
                        return Ok(seq);
                    }
                    return Err(AppendError::Fenced { expected: self.last, found: seq });
                }
                Ok(Some((seq, _))) if seq < self.last => {
                    return Err(AppendError::Lost { acknowledged: self.last, found: seq });
                }
                Ok(None) if self.last > 0 => {
                    return Err(AppendError::Lost { acknowledged: self.last, found: 0 });
                }
                Ok(_) => {}
                Err(read) => debug!(shard = self.shard, error = %read, "cannot read the subject back yet"),
            }
            if why.kind() == PublishErrorKind::WrongLastSequence {
                // Refused for a sequence that is the subject's last after all: a stale
                // answer from a deposed leader. Try again.
                debug!(shard = self.shard, "wrong last sequence, yet the subject's last is ours");
            }
            if Instant::now() >= deadline {
                warn!(shard = self.shard, error = %why, "journal append: the stream did not acknowledge");
                return Err(AppendError::Unavailable(why.to_string()));
            }
            tokio::time::sleep(APPEND_RETRY).await;
        }
    }
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

/// Every batch on shard `shard`'s subject, in order, checked (our CRC on each, no gap
/// between them, starting at `tail`).
///
/// # Errors
///
/// The stream cannot be read, a message is not a batch we wrote, or batches are missing.
pub async fn read(
    client: async_nats::Client,
    stream: &str,
    shard: u16,
    mut tail: Tail,
) -> Result<Vec<ReadBatch>, StreamError> {
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    let subject = subject(stream, shard);
    let server = |e: &dyn std::fmt::Display| StreamError::Server(e.to_string());
    let Some((last, _)) = last_on(&js, stream, &subject).await.map_err(StreamError::Server)? else {
        return Ok(Vec::new());
    };
    let s = js.get_stream_no_info(stream).await.map_err(|e| server(&e))?;
    let consumer = s
        .create_consumer(OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: DeliverPolicy::All,
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| server(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| server(&e))?;
    let mut out = Vec::new();
    while let Some(m) =
        tokio::time::timeout(REQUEST_TIMEOUT * 4, messages.next()).await.map_err(|e| server(&e))?
    {
        let m = m.map_err(|e| server(&e))?;
        let seq = m.info().map_err(|e| server(&e))?.stream_sequence;
        let b = batch::decode(&m.payload).map_err(|why| StreamError::Invalid { seq, why })?;
        tail.accept(&b).map_err(StreamError::Gap)?;
        if out.len() >= READ_BATCHES_MAX {
            return Err(StreamError::TooMany);
        }
        out.push(ReadBatch {
            seq,
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            records: Bytes::copy_from_slice(b.records),
        });
        if seq >= last {
            break;
        }
    }
    Ok(out)
}

/// What a node taking a shard over reads from its subject: the records after its own
/// journal's last, and the subject's last sequence, which its first append must expect (an
/// append of the last owner's after this read fences the new one rather than slip in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// The records after the local journal's last, whole, as the journal had them on disk:
    /// `(first_seq, records)`; `None` when the stream holds none after it.
    pub records: Option<(u64, Vec<u8>)>,
    /// The subject's last stream sequence when it was read (0: empty).
    pub subject_last: u64,
}

/// The records of shard `shard`'s subject after the local journal's record `after` (see
/// [`Missing`]). A node taking the shard over writes them into its journal and recovers it
/// as a restart does.
///
/// # Errors
///
/// The stream cannot be read, a batch is damaged or missing, or a batch's records are not
/// whole records.
pub async fn records_after(
    client: async_nats::Client,
    stream: &str,
    shard: u16,
    after: u64,
) -> Result<Missing, StreamError> {
    let batches = read(client, stream, shard, Tail::default()).await?;
    let mut first = None;
    let mut out = Vec::new();
    for b in batches.iter().filter(|b| b.last_seq > after) {
        // A batch's records, walked as a segment of its own would be.
        let header =
            corridor_journal::SegmentHeader { first_seq: b.first_seq, created_unix_ms: 0 }.to_bytes();
        let bytes = [header.as_slice(), &b.records].concat();
        let scan = corridor_journal::segment::scan_segment(&bytes, b.first_seq, false)
            .map_err(|e| StreamError::Invalid { seq: b.seq, why: Invalid::Records(e.to_string()) })?;
        let ends: Vec<usize> = scan.records.iter().skip(1).map(|f| f.offset).chain([scan.end]).collect();
        for (found, end) in scan.records.iter().zip(ends) {
            if found.record.seq > after {
                first.get_or_insert(found.record.seq);
                out.extend_from_slice(&bytes[found.offset..end]);
            }
        }
    }
    Ok(Missing { records: first.map(|f| (f, out)), subject_last: batches.last().map_or(0, |b| b.seq) })
}

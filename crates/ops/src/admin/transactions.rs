//! `GET /transactions?rrn=…|stan=…&from=…`: a transaction's life, read from the journal —
//! the request as it came (PAN masked: the journal keeps the first six and last four digits
//! beside the sealed number, and nothing here holds the key), where it was forwarded, how it
//! was answered and when, and the reversals of it with their transmissions.
//!
//! Read on a blocking thread from the segment files (never through the switch's thread), one
//! segment in memory at a time, at most [`SEGMENTS_MAX`] segments from `from`, at most
//! [`MATCHES_MAX`] transactions.

use corridor_net::journal::JournalError;
use std::{collections::BTreeMap, path::Path};

use corridor_journal::{
    entry::{Entry, Key},
    request::view,
};
use corridor_wire::Message;
use serde::Serialize;

/// Most segments one lookup reads.
pub(crate) const SEGMENTS_MAX: usize = 16;
/// Most transactions one lookup returns.
pub(crate) const MATCHES_MAX: usize = 50;
/// Most requests another shard sent over a hop one lookup keeps the keys of (to give the
/// reversals made of them to their originator's transaction).
pub(crate) const HOP_KEYS_MAX: usize = 4096;
/// How far back a lookup without `from` looks.
pub(crate) const DEFAULT_LOOKBACK_MS: u64 = 3_600_000;

/// What to look for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    /// DE 37 as the originator sent it.
    pub(crate) rrn: Option<String>,
    /// DE 11 as the originator sent it.
    pub(crate) stan: Option<u32>,
    /// Records written at or after this time (Unix milliseconds).
    pub(crate) from_unix_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Forward {
    destination: String,
    link: String,
    sent_stan: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Answer {
    code: String,
    auth: Option<String>,
    by: &'static str,
    at_unix_ms: Option<u64>,
    /// From the request's arrival to its answer, when both records carry their time.
    latency_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct ReversalView {
    id: u64,
    destination: String,
    queued_unix_ms: u64,
    made_by: &'static str,
    transmissions: u32,
    state: &'static str,
}

/// One transaction's life.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Transaction {
    /// The key the destination's shard journaled it under if it crossed a hop: its own key,
    /// with the hop participant standing for its shard as the participant.
    #[serde(skip)]
    crossed_as: Option<Key>,
    seq: u64,
    at_unix_ms: Option<u64>,
    participant: String,
    link: String,
    mti: String,
    stan: String,
    rrn: Option<String>,
    pan: String,
    amount: Option<String>,
    forwarded: Option<Forward>,
    answer: Option<Answer>,
    reversals: Vec<ReversalView>,
}

/// The answer to a lookup.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Found {
    transactions: Vec<Transaction>,
    segments_read: usize,
    /// Later segments were not read (narrow the search with `from`).
    more_segments: bool,
    /// More transactions matched than are listed.
    more_matches: bool,
    /// Reversals a shard made of requests another shard sent it over a hop (a timeout
    /// there, an approval never delivered), by the key they crossed with: they belong to
    /// that shard's transaction.
    #[serde(skip)]
    crossed: Vec<(Key, ReversalView)>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Looks `q` up in the journal in `dir` (every shard's, each read on its own).
///
/// # Errors
///
/// The directory cannot be read, or a segment is corrupt inside.
pub(crate) fn lookup(dir: &Path, q: &Query) -> Result<Found, JournalError> {
    let mut each = Vec::new();
    for (shard, d) in corridor_net::journal::shard_dirs(dir) {
        each.push(lookup_one(shard, &d, q)?);
    }
    Ok(merge(each))
}

/// What lookups of several shards found, as one answer (a reversal made on the destination's
/// shard given to the originator's transaction).
pub(crate) fn merge(each: Vec<Found>) -> Found {
    let mut all = Found::default();
    let mut crossed = Vec::new();
    for f in each {
        all.transactions.extend(f.transactions);
        all.segments_read += f.segments_read;
        all.more_segments |= f.more_segments;
        all.more_matches |= f.more_matches;
        crossed.extend(f.crossed);
    }
    // A reversal made on the destination's shard is the originator's transaction's.
    for (key, r) in crossed {
        if let Some(t) = all.transactions.iter_mut().find(|t| t.crossed_as.as_ref() == Some(&key)) {
            t.reversals.push(r);
        }
    }
    if all.transactions.len() > MATCHES_MAX {
        all.transactions.truncate(MATCHES_MAX);
        all.more_matches = true;
    }
    all
}

/// Looks `q` up in shard `shard`'s records as a cluster's stream holds them (`records`,
/// numbered from `first_seq`): the shard another node runs. Records before `q`'s time are
/// read too (the stream keeps what its last checkpoint does not cover, and a little more).
///
/// # Errors
///
/// The records are not whole records in sequence.
pub(crate) fn lookup_records(
    shard: usize,
    first_seq: u64,
    records: &[u8],
    q: &Query,
) -> Result<Found, JournalError> {
    let mut scan = Scan::new(shard, q);
    // Read as the one segment they would make on disk.
    let header = corridor_journal::SegmentHeader { first_seq, created_unix_ms: 0 };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(records);
    let seg =
        corridor_journal::segment::scan_segment(&bytes, first_seq, false).map_err(JournalError::Corrupt)?;
    for f in &seg.records {
        if let Ok(entry) = Entry::decode(f.record.kind, f.record.payload) {
            scan.entry(f.record.seq, entry);
        }
    }
    Ok(scan.finish(0, false))
}

/// Whose a reversal is: a transaction of this shard (by its sequence number), or a request
/// another shard sent over a hop (by the key it crossed with).
enum Of {
    Here(u64),
    Crossed(Key),
}

/// One shard's journal read for a query: what it found so far, record by record.
struct Scan<'q> {
    shard: usize,
    q: &'q Query,
    found: BTreeMap<u64, Transaction>,
    keys: Vec<(Key, u64)>,
    hop_keys: Vec<Key>,
    reversals: BTreeMap<u64, (Of, ReversalView)>,
    more_matches: bool,
}

impl<'q> Scan<'q> {
    fn new(shard: usize, q: &'q Query) -> Self {
        Self {
            shard,
            q,
            found: BTreeMap::new(),
            keys: Vec::new(),
            hop_keys: Vec::new(),
            reversals: BTreeMap::new(),
            more_matches: false,
        }
    }

    fn entry(&mut self, seq: u64, entry: Entry) {
        // A request accepted and forwarded in one record is read as its two.
        for entry in entry.split(seq) {
            self.entry_part(seq, entry);
        }
    }

    fn entry_part(&mut self, seq: u64, entry: Entry) {
        match entry {
            Entry::Accepted(a) => self.accepted(seq, a),
            Entry::Forwarded(fw) => {
                if let Some(t) = self.found.get_mut(&fw.request) {
                    t.forwarded = Some(Forward {
                        destination: fw.destination,
                        link: fw.link,
                        sent_stan: text(&fw.sent_stan),
                    });
                }
            }
            Entry::Answered(an) => {
                if let Some(t) = self.found.get_mut(&an.request) {
                    let at = (an.at_unix_ms != 0).then_some(an.at_unix_ms);
                    let latency_ms = match (t.at_unix_ms, at) {
                        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                        _ => None,
                    };
                    t.answer = Some(Answer {
                        code: text(&an.code),
                        auth: an.auth.map(|a| text(&a)),
                        by: if an.switch_made { "switch" } else { "destination" },
                        at_unix_ms: at,
                        latency_ms,
                    });
                }
            }
            Entry::ReversalQueued(r) => self.reversal_queued(seq, r),
            Entry::ReversalSent { id, .. } => {
                if let Some((_, r)) = self.reversals.get_mut(&id) {
                    r.transmissions += 1;
                }
            }
            Entry::ReversalAcked { id } => self.reversal_state(id, "acknowledged"),
            Entry::ReversalAbandoned { id, .. } => self.reversal_state(id, "exception"),
            Entry::SafDropped { id } => self.reversal_state(id, "dropped"),
            Entry::SafRetried { id } => self.reversal_state(id, "queued"),
            _ => {}
        }
    }

    /// A request accepted: a transaction when it matches the query.
    fn accepted(&mut self, seq: u64, a: corridor_journal::entry::Accepted) {
        let q = self.q;
        if (a.at_unix_ms != 0 && a.at_unix_ms < q.from_unix_ms) || q.stan.is_some_and(|s| s != a.key.stan) {
            return;
        }
        let Ok(v) = view(&a.request) else { return };
        let Ok(msg) = Message::parse(v.dialect, v.body.clone()) else { return };
        let rrn = msg.rrn().map(text);
        if q.rrn.as_ref().is_some_and(|want| rrn.as_deref().map(str::trim) != Some(want.trim())) {
            return;
        }
        if a.key.participant.starts_with(corridor_engine::shards::HOP_ID_PREFIX) {
            if self.hop_keys.len() < HOP_KEYS_MAX {
                self.hop_keys.push(a.key);
            }
            return;
        }
        if self.found.len() >= MATCHES_MAX {
            self.more_matches = true;
            return;
        }
        let amount = msg.field(corridor_wire::de::AMOUNT).and_then(|f| f.value_borrowed()).map(text);
        let crossed_as =
            Key { participant: corridor_engine::shards::hop_participant_id(self.shard), ..a.key.clone() };
        let t = Transaction {
            crossed_as: Some(crossed_as),
            seq,
            at_unix_ms: (a.at_unix_ms != 0).then_some(a.at_unix_ms),
            participant: a.key.participant.clone(),
            link: a.link,
            mti: msg.mti().to_string(),
            stan: format!("{:06}", a.key.stan),
            rrn,
            pan: v.masked_pan().unwrap_or_default(),
            amount,
            ..Transaction::default()
        };
        self.found.insert(seq, t);
        self.keys.push((a.key, seq));
    }

    /// A reversal or advice stored: kept when it names a transaction found here or a
    /// request that crossed from another shard.
    fn reversal_queued(&mut self, seq: u64, r: corridor_journal::entry::ReversalQueued) {
        let Some(of) = r.original.as_ref().or(r.advice.as_ref()) else { return };
        let txn = if let Some(&(_, txn)) = self.keys.iter().find(|(key, _)| key == of) {
            Of::Here(txn)
        } else if self.hop_keys.contains(of) {
            Of::Crossed(of.clone())
        } else {
            return;
        };
        let view = ReversalView {
            id: seq,
            destination: r.destination,
            queued_unix_ms: r.queued_unix_ms,
            made_by: if r.advice.is_some() { "participant" } else { "switch" },
            transmissions: 0,
            state: "queued",
        };
        self.reversals.insert(seq, (txn, view));
    }

    fn reversal_state(&mut self, id: u64, state: &'static str) {
        if let Some((_, r)) = self.reversals.get_mut(&id) {
            r.state = state;
        }
    }

    /// What the scan found: the reversals of this shard's transactions put with them, the
    /// others handed back as crossed.
    fn finish(mut self, segments_read: usize, more_segments: bool) -> Found {
        let mut crossed = Vec::new();
        for (_, (of, r)) in std::mem::take(&mut self.reversals) {
            match of {
                Of::Here(txn) => {
                    if let Some(t) = self.found.get_mut(&txn) {
                        t.reversals.push(r);
                    }
                }
                Of::Crossed(key) => crossed.push((key, r)),
            }
        }
        Found {
            transactions: self.found.into_values().collect(),
            segments_read,
            more_segments,
            more_matches: self.more_matches,
            crossed,
        }
    }
}

/// [`lookup`] in one shard's journal. What another shard sent over a hop is that shard's
/// transaction (its originator's): left out here, but the reversals of it made here are
/// handed back (`crossed`) for that shard's transaction.
fn lookup_one(shard: usize, dir: &Path, q: &Query) -> Result<Found, JournalError> {
    let mut scan = Scan::new(shard, q);
    let (segments_read, more_segments) = corridor_net::journal::for_each_since::<JournalError>(
        dir,
        q.from_unix_ms,
        SEGMENTS_MAX,
        |seq, entry| {
            scan.entry(seq, entry);
            Ok(())
        },
    )?;
    Ok(scan.finish(segments_read, more_segments))
}

//! Clearing files and reconciliation, from the journal: what `corridor clearing` and
//! `corridor reconcile` print, and what the load tool's demo shows. A library, so that
//! nothing needs the `corridor` binary's crate to clear a day.
//!
//! # Layout
//!
//! One module: [`transactions`] reads a day's approved payments from every shard's journal
//! (through `corridor_net::journal::for_each_since`), [`summary`] adds the totals and the
//! positions, [`write_csv`] and [`to_json`] write the file, [`read`] and [`reconcile`]
//! compare two files.
//!
//!
//! **Clearing** reads the journal: every financial request (0200) the switch forwarded that
//! its destination approved (`00`, `08`, `11`) within the business day (by the time of its
//! answer; `[clearing] cutover`) and that was not reversed (by the switch, or by its
//! originator's 0420) — with both currencies, the rates, the fee, RRN, STAN, DE 7, DE 32 and
//! DE 33 — then the counts and totals per currency, and each participant's net position
//! against each counterparty (what it is owed as a destination, less what it owes as an
//! originator: in the settlement currency, DE 5/50, when the switch settles in one, else in
//! the transaction's). One file for one participant (`--participant`), or for all.
//!
//! **The format** (CSV; JSON has the same names): one row per record, the first column
//! `record` saying which of three kinds it is, the columns of the other kinds left empty:
//!
//! | record | columns |
//! | --- | --- |
//! | `transaction` | `business_date`, `originator`, `destination`, `flow` (`inbound`, `outbound`, `third-market`, `domestic`, or empty when markets are unknown), `mti`, `rrn`, `stan` (the originator's), `transmission_time` (DE 7), `acquirer_id` (DE 32), `forwarder_id` (DE 33), `pan` (first six and last four digits at most), `auth_code`, `answered_at` (UTC), `amount`, `currency` (DE 4/49), `billing_amount`, `billing_currency`, `billing_rate` (DE 6/51/10), `settlement_amount`, `settlement_currency`, `settlement_rate` (DE 5/50/9), `fee` (DE 28 as sent: `C` or `D` and eight digits) |
//! | `total` | `participant` (empty: the whole file), `currency`, `count`, `amount` (the sum of DE 4 in that currency) |
//! | `position` | `participant`, `counterparty`, `currency`, `receivable`, `payable`, `net` (receivable − payable) |
//!
//! Amounts are integers in minor units of their currency (ISO 4217: VND has none, USD two,
//! KWD three); rates are decimals.
//!
//! **Reconciliation** compares our file with a partner's (the same columns; a partner's file
//! may also list reversals, `mti` 0400/0420/0421, which cancel the original with the same
//! key in that file). Transactions match by (`rrn`, `transmission_time`, `acquirer_id`):
//! matched, amount mismatch (amount, currency, or the settlement amount when both have it),
//! missing on either side, and reversal-only (a reversal whose original is not in its file);
//! with counts and totals per currency. Any break exits non-zero.

#![forbid(unsafe_code)]

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use corridor_engine::{
    config::flow,
    exchange::{by_numeric, Rate},
};
use corridor_journal::{
    entry::{Entry, Key},
    request::view,
};
use corridor_wire::{de, FieldId, Message};
use serde::{Deserialize, Serialize};

/// Most transactions one clearing file holds (a day larger than this is cleared per
/// participant).
pub const ROWS_MAX: usize = 2_000_000;

/// Most journal segments one clearing run reads.
pub const SEGMENTS_MAX: usize = 100_000;

/// Most rows one reconciliation reads from a file.
pub const RECONCILE_ROWS_MAX: usize = 4_000_000;

/// Response codes that approve.
const APPROVED: [&[u8; 2]; 3] = [b"00", b"08", b"11"];

/// One row of a clearing file (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// `transaction`, `total` or `position`.
    pub record: String,
    /// The `business_date` column (see the module docs).
    #[serde(default)]
    pub business_date: String,
    /// The `participant` column (see the module docs).
    #[serde(default)]
    pub participant: String,
    /// The `counterparty` column (see the module docs).
    #[serde(default)]
    pub counterparty: String,
    /// The `originator` column (see the module docs).
    #[serde(default)]
    pub originator: String,
    /// The `destination` column (see the module docs).
    #[serde(default)]
    pub destination: String,
    /// The `flow` column (see the module docs).
    #[serde(default)]
    pub flow: String,
    /// The `mti` column (see the module docs).
    #[serde(default)]
    pub mti: String,
    /// The `rrn` column (see the module docs).
    #[serde(default)]
    pub rrn: String,
    /// The `stan` column (see the module docs).
    #[serde(default)]
    pub stan: String,
    /// The `transmission_time` column (see the module docs).
    #[serde(default)]
    pub transmission_time: String,
    /// The `acquirer_id` column (see the module docs).
    #[serde(default)]
    pub acquirer_id: String,
    /// The `forwarder_id` column (see the module docs).
    #[serde(default)]
    pub forwarder_id: String,
    /// The `pan` column (see the module docs).
    #[serde(default)]
    pub pan: String,
    /// The `auth_code` column (see the module docs).
    #[serde(default)]
    pub auth_code: String,
    /// The `answered_at` column (see the module docs).
    #[serde(default)]
    pub answered_at: String,
    /// The `amount` column (see the module docs).
    #[serde(default)]
    pub amount: Option<u64>,
    /// The `currency` column (see the module docs).
    #[serde(default)]
    pub currency: String,
    /// The `billing_amount` column (see the module docs).
    #[serde(default)]
    pub billing_amount: Option<u64>,
    /// The `billing_currency` column (see the module docs).
    #[serde(default)]
    pub billing_currency: String,
    /// The `billing_rate` column (see the module docs).
    #[serde(default)]
    pub billing_rate: String,
    /// The `settlement_amount` column (see the module docs).
    #[serde(default)]
    pub settlement_amount: Option<u64>,
    /// The `settlement_currency` column (see the module docs).
    #[serde(default)]
    pub settlement_currency: String,
    /// The `settlement_rate` column (see the module docs).
    #[serde(default)]
    pub settlement_rate: String,
    /// The `fee` column (see the module docs).
    #[serde(default)]
    pub fee: String,
    /// The `count` column (see the module docs).
    #[serde(default)]
    pub count: Option<u64>,
    /// The `receivable` column (see the module docs).
    #[serde(default)]
    pub receivable: Option<u64>,
    /// The `payable` column (see the module docs).
    #[serde(default)]
    pub payable: Option<u64>,
    /// The `net` column (see the module docs).
    #[serde(default)]
    pub net: Option<i64>,
}

/// What a clearing run needs from the configuration.
pub struct Setup<'a> {
    /// The journal directory.
    pub dir: &'a Path,
    /// The business day's window (Unix milliseconds, start inclusive, end exclusive).
    pub window: (i64, i64),
    /// The business day, `YYYY-MM-DD`.
    pub date: &'a str,
    /// Only this participant's transactions and positions.
    pub participant: Option<&'a str>,
    /// Each participant's market, by id.
    pub markets: HashMap<String, [u8; 2]>,
    /// The switch's own market.
    pub home: Option<[u8; 2]>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().to_owned()
}

/// A currency field's alphabetic code (the numeric code when the table does not have it).
fn currency_code(v: &str) -> String {
    v.parse::<u16>().ok().and_then(by_numeric).map_or_else(|| v.to_owned(), |c| c.code().to_owned())
}

struct Open {
    row: Row,
    approved: bool,
    reversed: bool,
    answered_ms: Option<u64>,
}

/// Why clearing or reconciliation could not go on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClearingError {
    /// A shard's journal cannot be read, or a segment is corrupt inside.
    Journal(corridor_net::journal::JournalError),
    /// More transactions than [`ROWS_MAX`] (or rows than [`RECONCILE_ROWS_MAX`] in a file).
    TooMany {
        /// The bound.
        max: usize,
        /// What to do about it.
        hint: &'static str,
    },
    /// A file cannot be read.
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a clearing file, or one of its rows is not a row of one.
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// Where (a CSV row's line), when known.
        line: Option<usize>,
        /// Why.
        reason: String,
    },
    /// The CSV could not be written.
    Write(csv::Error),
}

impl std::fmt::Display for ClearingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Journal(e) => write!(f, "journal: {e}"),
            Self::TooMany { max, hint } => write!(f, "more than {max} rows: {hint}"),
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Invalid { path, line: Some(line), reason } => {
                write!(f, "{}: row {line}: {reason}", path.display())
            }
            Self::Invalid { path, line: None, reason } => {
                write!(f, "{}: not a clearing file: {reason}", path.display())
            }
            Self::Write(e) => write!(f, "cannot write the clearing file: {e}"),
        }
    }
}

impl std::error::Error for ClearingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Journal(e) => Some(e),
            Self::Read { source, .. } => Some(source),
            Self::Write(e) => Some(e),
            Self::TooMany { .. } | Self::Invalid { .. } => None,
        }
    }
}

impl From<corridor_net::journal::JournalError> for ClearingError {
    fn from(e: corridor_net::journal::JournalError) -> Self {
        Self::Journal(e)
    }
}

impl From<csv::Error> for ClearingError {
    fn from(e: csv::Error) -> Self {
        Self::Write(e)
    }
}

impl From<std::io::Error> for ClearingError {
    fn from(e: std::io::Error) -> Self {
        Self::Write(csv::Error::from(e))
    }
}

type Result<T> = std::result::Result<T, ClearingError>;

const PER_PARTICIPANT: ClearingError =
    ClearingError::TooMany { max: ROWS_MAX, hint: "clear per participant (--participant)" };

/// The transaction rows of the business day, in journal order.
///
/// # Errors
///
/// The journal cannot be read, or a segment is corrupt inside; more than [`ROWS_MAX`] rows.
pub fn transactions(s: &Setup<'_>) -> Result<Vec<Row>> {
    // Every shard's journal, each read on its own (sequence numbers are a journal's own).
    // A day's transactions were accepted before it ended; look from a day before it began
    // (a request answered after the cut-over was taken in before it).
    let from = u64::try_from(s.window.0 - 86_400_000).unwrap_or(0);
    let mut rows = Vec::new();
    for (_, dir) in corridor_net::journal::shard_dirs(s.dir) {
        rows.extend(shard_transactions(s, |each| {
            corridor_net::journal::for_each_since::<ClearingError>(&dir, from, SEGMENTS_MAX, each).map(drop)
        })?);
        if rows.len() > ROWS_MAX {
            return Err(PER_PARTICIPANT);
        }
    }
    rows.sort_by(|a, b| (&a.answered_at, &a.rrn).cmp(&(&b.answered_at, &b.rrn)));
    Ok(rows)
}

/// [`transactions`] from each shard's records as a cluster's stream holds them — `(first
/// record's sequence, the records)` per shard, as `corridor_cluster::stream::records_after`
/// reads them — instead of a journal directory: a node clears every shard of the cluster
/// whichever node ran it, a standby or a machine that never ran one included. (`s.dir` is
/// not read.)
///
/// # Errors
///
/// A shard's records are not whole records in sequence; more than [`ROWS_MAX`] rows.
pub fn transactions_of_records(s: &Setup<'_>, shards: &[(u64, Vec<u8>)]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (first_seq, records) in shards.iter().filter(|(_, r)| !r.is_empty()) {
        // Read as the one segment they would make on disk.
        let header = corridor_journal::SegmentHeader { first_seq: *first_seq, created_unix_ms: 0 };
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(records);
        rows.extend(shard_transactions(s, |each| {
            let seg = corridor_journal::segment::scan_segment(&bytes, *first_seq, false)
                .map_err(corridor_net::journal::JournalError::Corrupt)?;
            for f in &seg.records {
                if let Ok(entry) = Entry::decode(f.record.kind, f.record.payload) {
                    each(f.record.seq, entry)?;
                }
            }
            Ok(())
        })?);
        if rows.len() > ROWS_MAX {
            return Err(PER_PARTICIPANT);
        }
    }
    rows.sort_by(|a, b| (&a.answered_at, &a.rrn).cmp(&(&b.answered_at, &b.rrn)));
    Ok(rows)
}

/// A day's requests by their journal key, each once (the latest record of a key), hashed
/// without the terminal as the engine's duplicate window is: a reversal names its original
/// in DE 90 (SPEC §9) and may leave DE 41 out, and records written before the switch looked
/// the original's key up carry the reversal's own (blank) terminal.
#[derive(Default)]
struct Requests(hashbrown::HashTable<(Key, u64)>);

impl Requests {
    fn hash(k: &Key) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (&k.participant, k.class, k.stan, k.time, k.acquirer, k.forwarder).hash(&mut h);
        h.finish()
    }

    /// Whether `a` and `b` are one key but for the terminal, and the terminals may name each
    /// other ([`corridor_journal::entry::terminal_may_name`], the engine's rule: one
    /// terminal's reversal never names another terminal's request).
    fn same_original(a: &Key, b: &Key) -> bool {
        corridor_journal::entry::terminal_may_name(&a.terminal, &b.terminal)
            && (&a.participant, a.class, a.stan, a.time, a.acquirer, a.forwarder)
                == (&b.participant, b.class, b.stan, b.time, b.acquirer, b.forwarder)
    }

    /// The request journaled at `seq` has `key` (a later one of the same key replaces it).
    fn insert(&mut self, key: Key, seq: u64) {
        let h = Self::hash(&key);
        match self.0.find_mut(h, |(k, _)| *k == key) {
            Some((_, s)) => *s = seq,
            None => {
                self.0.insert_unique(h, (key, seq), |(k, _)| Self::hash(k));
            }
        }
    }

    /// The request a reversal's `original` names: the one with that key, else the latest
    /// that differs from it only by one of the two having no DE 41.
    fn original(&self, original: &Key) -> Option<u64> {
        let h = Self::hash(original);
        let mut latest = None;
        for (k, seq) in self.0.iter_hash(h) {
            if k == original {
                return Some(*seq);
            }
            if Self::same_original(k, original) {
                latest = latest.max(Some(*seq));
            }
        }
        latest
    }
}

/// The transactions of one shard's records, which `read` hands over in order. A request
/// another shard sent over a hop is that shard's transaction (its originator's): left out
/// here.
fn shard_transactions(
    s: &Setup<'_>,
    read: impl FnOnce(&mut dyn FnMut(u64, Entry) -> Result<()>) -> Result<()>,
) -> Result<Vec<Row>> {
    let mut open: BTreeMap<u64, Open> = BTreeMap::new();
    let mut requests = Requests::default();
    read(&mut |seq, entry| {
        // A request accepted and forwarded in one record is read as its two.
        for entry in entry.split(seq) {
            match entry {
                Entry::Accepted(a) => {
                    if a.key.class != 2
                        || a.key.participant.starts_with(corridor_engine::shards::HOP_ID_PREFIX)
                    {
                        continue;
                    }
                    let Ok(v) = view(&a.request) else { return Ok(()) };
                    let Ok(msg) = Message::parse(v.dialect, v.body.clone()) else { return Ok(()) };
                    if msg.mti().function() != 0 {
                        continue;
                    }
                    if open.len() >= ROWS_MAX {
                        return Err(PER_PARTICIPANT);
                    }
                    let get = |id: FieldId| msg.field(id).map(|f| text(&f.to_vec()));
                    let num = |id: FieldId| get(id).and_then(|v| v.parse::<u64>().ok());
                    let rate = |id: FieldId| {
                        get(id)
                            .and_then(|v| Rate::from_n8(v.as_bytes()))
                            .map(|r| r.decimal())
                            .unwrap_or_default()
                    };
                    let pan = v.masked_pan().unwrap_or_default();
                    let row = Row {
                        record: "transaction".into(),
                        business_date: s.date.to_owned(),
                        originator: a.key.participant.clone(),
                        mti: msg.mti().to_string(),
                        rrn: get(de::RRN).unwrap_or_default(),
                        stan: format!("{:06}", a.key.stan),
                        transmission_time: get(de::TRANSMISSION_TIME).unwrap_or_default(),
                        acquirer_id: get(de::ACQUIRER_ID).unwrap_or_default(),
                        forwarder_id: get(de::FORWARDER_ID).unwrap_or_default(),
                        pan,
                        amount: num(de::AMOUNT),
                        currency: get(de::CURRENCY).map(|c| currency_code(&c)).unwrap_or_default(),
                        billing_amount: num(de::AMOUNT_BILLING),
                        billing_currency: get(de::CURRENCY_BILLING)
                            .map(|c| currency_code(&c))
                            .unwrap_or_default(),
                        billing_rate: rate(de::RATE_BILLING),
                        settlement_amount: num(de::AMOUNT_SETTLEMENT),
                        settlement_currency: get(de::CURRENCY_SETTLEMENT)
                            .map(|c| currency_code(&c))
                            .unwrap_or_default(),
                        settlement_rate: rate(de::RATE_SETTLEMENT),
                        fee: FieldId::new(28).and_then(get).unwrap_or_default(),
                        ..Row::default()
                    };
                    requests.insert(a.key, seq);
                    open.insert(seq, Open { row, approved: false, reversed: false, answered_ms: None });
                }
                Entry::Forwarded(fw) => {
                    if let Some(o) = open.get_mut(&fw.request) {
                        o.row.destination = fw.destination;
                    }
                }
                Entry::Answered(an) => {
                    if let Some(o) = open.get_mut(&an.request) {
                        o.approved = !an.switch_made && APPROVED.contains(&&an.code);
                        o.row.auth_code = an.auth.map(|a| text(&a)).unwrap_or_default();
                        o.answered_ms = (an.at_unix_ms != 0).then_some(an.at_unix_ms);
                    }
                }
                Entry::ReversalQueued(r) => {
                    let seq = r.original.as_ref().and_then(|k| requests.original(k));
                    if let Some(o) = seq.and_then(|seq| open.get_mut(&seq)) {
                        o.reversed = true;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    let (start, end) = s.window;
    let mut rows = Vec::new();
    for o in open.into_values() {
        let Some(at) = o.answered_ms else { continue };
        let at_i = i64::try_from(at).unwrap_or(i64::MAX);
        if !o.approved || o.reversed || o.row.destination.is_empty() || at_i < start || at_i >= end {
            continue;
        }
        if s.participant.is_some_and(|p| p != o.row.originator && p != o.row.destination) {
            continue;
        }
        let mut row = o.row;
        row.answered_at = corridor_wire::clock::utc_text(at);
        row.flow =
            flow(s.markets.get(&row.originator).copied(), s.markets.get(&row.destination).copied(), s.home)
                .to_owned();
        rows.push(row);
    }
    Ok(rows)
}

/// The totals and positions rows for `rows` (see the module docs).
#[must_use]
pub fn summary(rows: &[Row], participant: Option<&str>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // (participant, counterparty, currency) -> (receivable, payable)
    let mut positions: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    for r in rows {
        let t = totals.entry(r.currency.clone()).or_default();
        t.0 += 1;
        t.1 += r.amount.unwrap_or(0);
        let (amount, currency) = match r.settlement_amount {
            Some(s) if !r.settlement_currency.is_empty() => (s, r.settlement_currency.clone()),
            _ => (r.amount.unwrap_or(0), r.currency.clone()),
        };
        // The destination is owed what its merchant sold; the originator owes it.
        positions.entry((r.destination.clone(), r.originator.clone(), currency.clone())).or_default().0 +=
            amount;
        positions.entry((r.originator.clone(), r.destination.clone(), currency)).or_default().1 += amount;
    }
    for (currency, (count, amount)) in totals {
        out.push(Row {
            record: "total".into(),
            participant: participant.unwrap_or_default().to_owned(),
            currency,
            count: Some(count),
            amount: Some(amount),
            ..Row::default()
        });
    }
    for ((p, c, currency), (receivable, payable)) in positions {
        if participant.is_some_and(|want| want != p) {
            continue;
        }
        let net = i64::try_from(receivable).unwrap_or(i64::MAX) - i64::try_from(payable).unwrap_or(i64::MAX);
        out.push(Row {
            record: "position".into(),
            participant: p,
            counterparty: c,
            currency,
            receivable: Some(receivable),
            payable: Some(payable),
            net: Some(net),
            ..Row::default()
        });
    }
    out
}

/// Writes `rows` as CSV.
///
/// # Errors
///
/// The writer fails.
pub fn write_csv(rows: &[Row], w: impl std::io::Write) -> Result<()> {
    // The header row always, so an empty day is a file with its columns, not an empty file
    // (serializing writes the header before the first row only).
    let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(w);
    out.write_record(csv_header())?;
    for r in rows {
        out.serialize(r)?;
    }
    out.flush()?;
    Ok(())
}

/// The clearing file's columns, in order: [`Row`]'s fields, as serde names them (the JSON
/// form keeps their order).
fn csv_header() -> Vec<String> {
    match serde_json::to_value(Row::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => unreachable!("a Row serializes as an object"),
    }
}

/// The clearing file as JSON: `{"business_date", "participant", "transactions", "totals",
/// "positions"}`.
#[must_use]
pub fn to_json(date: &str, participant: Option<&str>, rows: &[Row]) -> serde_json::Value {
    let kind = |k: &str| rows.iter().filter(|r| r.record == k).collect::<Vec<_>>();
    serde_json::json!({
        "business_date": date,
        "participant": participant,
        "transactions": kind("transaction"),
        "totals": kind("total"),
        "positions": kind("position"),
    })
}

/// Reads the transaction rows of a clearing file (CSV, or our JSON), at most
/// [`RECONCILE_ROWS_MAX`].
///
/// # Errors
///
/// Not readable, not a clearing file, or too large.
pub fn read(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ClearingError::Read { path: path.to_owned(), source })?;
    let invalid =
        |line: Option<usize>, reason: String| ClearingError::Invalid { path: path.to_owned(), line, reason };
    let rows: Vec<Row> = if text.trim_start().starts_with('{') {
        #[derive(Deserialize)]
        struct File {
            transactions: Vec<Row>,
        }
        serde_json::from_str::<File>(&text).map_err(|e| invalid(None, e.to_string()))?.transactions
    } else {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let mut out = Vec::new();
        for (i, row) in r.deserialize::<Row>().enumerate() {
            if i >= RECONCILE_ROWS_MAX {
                return Err(ClearingError::TooMany {
                    max: RECONCILE_ROWS_MAX,
                    hint: "reconcile smaller files",
                });
            }
            out.push(row.map_err(|e| invalid(Some(i + 2), e.to_string()))?);
        }
        out
    };
    Ok(rows.into_iter().filter(|r| r.record == "transaction").collect())
}

/// A transaction's matching key: RRN, DE 7, DE 32.
type MatchKey = (String, String, String);

/// A transaction's matching key.
fn key(r: &Row) -> MatchKey {
    (r.rrn.trim().to_owned(), r.transmission_time.trim().to_owned(), r.acquirer_id.trim().to_owned())
}

fn is_reversal(r: &Row) -> bool {
    r.mti.starts_with("04")
}

/// One break or match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// `matched`, `amount-mismatch`, `missing-ours`, `missing-theirs`, `reversal-only`.
    pub kind: &'static str,
    /// RRN, DE 7, DE 32.
    pub rrn: String,
    /// DE 7.
    pub transmission_time: String,
    /// DE 32.
    pub acquirer_id: String,
    /// What differs, or which side.
    pub detail: String,
    /// The amount and currency (ours when we have it).
    pub amount: Option<u64>,
    /// Its currency.
    pub currency: String,
}

/// The reconciliation of two files.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reconciliation {
    /// Every line, matched ones included.
    pub lines: Vec<Line>,
    /// Per kind: (count, per currency amount).
    pub totals: BTreeMap<&'static str, (u64, BTreeMap<String, u64>)>,
}

impl Reconciliation {
    /// Whether any line is a break.
    #[must_use]
    pub fn breaks(&self) -> usize {
        self.lines.iter().filter(|l| l.kind != "matched").count()
    }
}

/// The transactions of a file once its reversals cancel their originals; the reversals
/// left without one.
fn net_of_reversals(rows: Vec<Row>) -> (BTreeMap<MatchKey, Row>, Vec<Row>) {
    let (reversals, originals): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(is_reversal);
    let mut by_key: BTreeMap<_, Row> = originals.into_iter().map(|r| (key(&r), r)).collect();
    let mut alone = Vec::new();
    for r in reversals {
        if by_key.remove(&key(&r)).is_none() {
            alone.push(r);
        }
    }
    (by_key, alone)
}

/// An amount as a reader writes it: its minor units, or "none".
fn amount_text(a: Option<u64>) -> String {
    a.map_or_else(|| "none".into(), |a| a.to_string())
}

/// Compares `ours` with `theirs` (see the module docs).
#[must_use]
pub fn reconcile(ours: Vec<Row>, theirs: Vec<Row>) -> Reconciliation {
    let (ours, ours_alone) = net_of_reversals(ours);
    let (mut theirs, theirs_alone) = net_of_reversals(theirs);
    let mut out = Reconciliation::default();
    let push = |out: &mut Reconciliation, kind: &'static str, r: &Row, detail: String| {
        let t = out.totals.entry(kind).or_default();
        t.0 += 1;
        *t.1.entry(r.currency.clone()).or_default() += r.amount.unwrap_or(0);
        out.lines.push(Line {
            kind,
            rrn: r.rrn.clone(),
            transmission_time: r.transmission_time.clone(),
            acquirer_id: r.acquirer_id.clone(),
            detail,
            amount: r.amount,
            currency: r.currency.clone(),
        });
    };
    for (k, o) in &ours {
        match theirs.remove(k) {
            None => push(&mut out, "missing-theirs", o, "in our file only".into()),
            Some(t) => {
                let mut diffs = Vec::new();
                if o.amount != t.amount || o.currency != t.currency {
                    diffs.push(format!(
                        "amount {} {} vs {} {}",
                        amount_text(o.amount),
                        o.currency,
                        amount_text(t.amount),
                        t.currency
                    ));
                }
                if o.settlement_amount.is_some()
                    && t.settlement_amount.is_some()
                    && o.settlement_amount != t.settlement_amount
                {
                    diffs.push(format!(
                        "settlement amount {} vs {}",
                        amount_text(o.settlement_amount),
                        amount_text(t.settlement_amount)
                    ));
                }
                if diffs.is_empty() {
                    push(&mut out, "matched", o, String::new());
                } else {
                    push(&mut out, "amount-mismatch", o, diffs.join("; "));
                }
            }
        }
    }
    for t in theirs.values() {
        push(&mut out, "missing-ours", t, "in their file only".into());
    }
    for r in &ours_alone {
        push(&mut out, "reversal-only", r, "ours: a reversal without its original".into());
    }
    for r in &theirs_alone {
        push(&mut out, "reversal-only", r, "theirs: a reversal without its original".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_clearing_file_says_where_and_why() {
        let dir = std::env::temp_dir().join(format!("corridor-clearing-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.csv");
        assert!(matches!(read(&missing), Err(ClearingError::Read { path, .. }) if path == missing));
        let bad = dir.join("bad.csv");
        let mut good = Vec::new();
        write_csv(&[Row { record: "transaction".into(), ..Row::default() }], &mut good).unwrap();
        let mut text = String::from_utf8(good).unwrap();
        text.push_str("transaction,not,enough,columns\n");
        std::fs::write(&bad, text).unwrap();
        match read(&bad) {
            Err(e @ ClearingError::Invalid { line: Some(3), .. }) => {
                assert!(e.to_string().contains("row 3"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let json = dir.join("bad.json");
        std::fs::write(&json, "{\"totals\": []}").unwrap();
        assert!(matches!(read(&json), Err(ClearingError::Invalid { line: None, .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A reversal's original is its exact key when that was journaled, else the latest
    /// request that differs from it only in DE 41 when one of the two has none (a record
    /// written before the switch looked the original's key up carries the reversal's own
    /// terminal) — never another terminal's request.
    #[test]
    fn a_reversal_finds_its_exact_original_first_else_the_latest_but_for_de41() {
        let key = |terminal: &[u8; 8]| Key {
            participant: "acq".into(),
            class: 2,
            stan: 7,
            time: 1_201_103_000,
            terminal: *terminal,
            acquirer: 12_345_678,
            forwarder: 0,
        };
        let mut r = Requests::default();
        r.insert(key(b"TERM0001"), 10);
        r.insert(key(b"TERM0002"), 11);
        assert_eq!(
            r.original(&key(b"TERM0001")),
            Some(10),
            "the exact key, though a later one differs in DE 41"
        );
        assert_eq!(r.original(&key(b"        ")), Some(11), "no exact key: the latest but for DE 41");
        r.insert(key(b"TERM0001"), 12);
        assert_eq!(r.original(&key(b"TERM0001")), Some(12), "a key journaled again is its latest record");
        assert_eq!(r.original(&Key { stan: 8, ..key(b"TERM0001") }), None);
        assert_eq!(r.original(&key(b"TERM0003")), None, "another terminal's reversal of a request never had");
        r.insert(key(b"        "), 13);
        assert_eq!(
            r.original(&key(b"TERM0003")),
            Some(13),
            "one without DE 41: the switch may have added it"
        );
    }

    fn tx(rrn: &str, amount: u64) -> Row {
        Row {
            record: "transaction".into(),
            rrn: rrn.into(),
            transmission_time: "1201101500".into(),
            acquirer_id: "11110001".into(),
            mti: "0200".into(),
            amount: Some(amount),
            currency: "CNY".into(),
            originator: "wallet".into(),
            destination: "unionpay".into(),
            settlement_amount: Some(amount / 7),
            settlement_currency: "USD".into(),
            ..Row::default()
        }
    }

    #[test]
    fn every_kind_of_break_is_found_and_matches_are_not_breaks() {
        let ours = vec![tx("1", 100), tx("2", 200), tx("3", 300), tx("5", 500)];
        let mut reversal = tx("5", 500);
        reversal.mti = "0420".into();
        let mut lone = tx("9", 900);
        lone.mti = "0420".into();
        let theirs = vec![tx("1", 100), tx("2", 201), tx("4", 400), tx("5", 500), reversal, lone];
        let r = reconcile(ours, theirs);
        let kinds: Vec<(&str, &str)> = r.lines.iter().map(|l| (l.kind, l.rrn.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("matched", "1"),
                ("amount-mismatch", "2"),
                ("missing-theirs", "3"),
                ("missing-theirs", "5"),
                ("missing-ours", "4"),
                ("reversal-only", "9")
            ]
        );
        assert_eq!(r.breaks(), 5);
        assert_eq!(r.totals["missing-theirs"].1["CNY"], 800);
        assert_eq!(reconcile(vec![tx("1", 1)], vec![tx("1", 1)]).breaks(), 0);
    }

    #[test]
    fn positions_net_what_each_is_owed_against_what_it_owes() {
        let mut back = tx("2", 700);
        back.originator = "unionpay".into();
        back.destination = "wallet".into();
        let rows = vec![tx("1", 1400), back];
        let s = summary(&rows, Some("wallet"));
        let pos: Vec<(&str, &str, Option<i64>)> = s
            .iter()
            .filter(|r| r.record == "position")
            .map(|r| (r.participant.as_str(), r.counterparty.as_str(), r.net))
            .collect();
        // The wallet owes 200 USD (1400/7) for its payment and is owed 100 (700/7).
        assert_eq!(pos, [("wallet", "unionpay", Some(-100))]);
        let totals: Vec<_> = s
            .iter()
            .filter(|r| r.record == "total")
            .map(|r| (r.currency.as_str(), r.count, r.amount))
            .collect();
        assert_eq!(totals, [("CNY", Some(2), Some(2100))]);
    }

    #[test]
    fn flows_follow_the_markets() {
        use corridor_engine::config::flow;
        let (cn, th, vn) = (Some(*b"CN"), Some(*b"TH"), Some(*b"VN"));
        assert_eq!(flow(th, cn, cn), "inbound");
        assert_eq!(flow(cn, vn, cn), "outbound");
        assert_eq!(flow(th, vn, cn), "third-market");
        assert_eq!(flow(cn, cn, cn), "domestic");
        assert_eq!(flow(th, None, cn), "");
    }
}

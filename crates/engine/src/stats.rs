//! Counters the engine keeps. Plain integers: the binary exports them.

use corridor_wire::ResponseCode;

/// Switch-wide counters since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests received from links (network management excluded).
    pub requests_in: u64,
    /// Requests (and advices) received from other shards of this switch: counted once, in
    /// [`Stats::requests_in`], on their originator's shard.
    pub hop_requests_in: u64,
    /// Requests forwarded to a destination (not to another shard).
    pub forwarded: u64,
    /// Destination responses relayed to the originator.
    pub relayed: u64,
    /// Switch-made declines, by response code (index: see [`Stats::declines_for`]).
    pub declines: [u64; DECLINE_CODES.len()],
    /// Requests answered 68 because the destination did not answer in time.
    pub timeouts: u64,
    /// Reversals and advices put in store-and-forward (the switch's and participants',
    /// and exceptions an operator retried).
    pub saf_queued: u64,
    /// Reversals sent (first transmissions and repeats).
    pub reversals_sent: u64,
    /// Reversals acknowledged with 0430.
    pub reversals_acked: u64,
    /// Reversals given up after their last repeat, or evicted at the bound.
    pub reversals_abandoned: u64,
    /// Responses that came after their request had timed out (never relayed).
    pub late_responses: u64,
    /// Late or undeliverable approvals for which a reversal was started.
    pub approvals_reversed: u64,
    /// Responses that matched nothing in flight.
    pub unmatched_responses: u64,
    /// Requests declined because a link or participant was at its in-flight limit.
    pub inflight_limit_hits: u64,
    /// Frames that broke the framing (their links were closed).
    pub framing_errors: u64,
    /// Bodies that broke the dictionary.
    pub format_errors: u64,
    /// Network management messages answered.
    pub network_answered: u64,
    /// Links closed for missing echoes.
    pub echo_failures: u64,
    /// Requests read while their originator was at its in-flight limit, held until a slot
    /// came free (backpressure).
    pub requests_held: u64,
    /// Answers whose originator was gone (approvals among them are reversed).
    pub undeliverable: u64,
    /// Responses that could not be encoded for their originator (answered 96 instead).
    pub unrelayable: u64,
    /// Malformed requests dropped because no answer could be matched by their sender.
    pub format_errors_dropped: u64,
    /// Links closed for not signing on in time.
    pub sign_on_timeouts: u64,
    /// Links closed for a frame left unfinished.
    pub frame_timeouts: u64,
    /// Connections closed to make room for a new one at their link's connection limit.
    pub displaced: u64,
    /// Links taken out of routing after timeouts in a row.
    pub unresponsive_links: u64,
    /// Repeats of completed requests answered from their outcome (never forwarded again).
    pub duplicates_replayed: u64,
    /// Participants' advices and reversals stored for their destination.
    pub advices_stored: u64,
    /// Participants' reversals of requests the switch had already reversed: acknowledged,
    /// not forwarded.
    pub reversals_redundant: u64,
    /// New requests and advices declined 96 because the journal's disk was full or, in a
    /// cluster, its replication was paused.
    pub storage_declines: u64,
    /// Journal batches handed out to be synced.
    pub journal_batches: u64,
    /// Journal records in them.
    pub journal_records: u64,
}

/// What one configured link carried, across its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkCounts {
    /// Connections made (accepted or dialed) since start.
    pub connections: u64,
    /// Connections open now.
    pub open: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames written to its batches.
    pub frames_out: u64,
}

impl LinkCounts {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &Self) {
        self.connections += o.connections;
        self.open += o.open;
        self.frames_in += o.frames_in;
        self.frames_out += o.frames_out;
    }
}

/// The decline codes counted in [`Stats::declines`], in index order.
pub const DECLINE_CODES: [ResponseCode; 10] = [
    crate::qr::INVALID_TRANSACTION,
    crate::qr::INVALID_AMOUNT,
    crate::qr::EXCEEDS_LIMIT,
    ResponseCode::FORMAT_ERROR,
    ResponseCode::SECURITY_VIOLATION,
    ResponseCode::TIMEOUT,
    ResponseCode::DESTINATION_UNAVAILABLE,
    ResponseCode::NO_ROUTE,
    ResponseCode::DUPLICATE,
    ResponseCode::SYSTEM_ERROR,
];

impl Stats {
    /// Adds `o`'s counts to these (the shards' counters summed into the switch's).
    pub fn add(&mut self, o: &Self) {
        self.requests_in += o.requests_in;
        self.hop_requests_in += o.hop_requests_in;
        self.forwarded += o.forwarded;
        self.relayed += o.relayed;
        for (a, b) in self.declines.iter_mut().zip(o.declines) {
            *a += b;
        }
        self.timeouts += o.timeouts;
        self.saf_queued += o.saf_queued;
        self.reversals_sent += o.reversals_sent;
        self.reversals_acked += o.reversals_acked;
        self.reversals_abandoned += o.reversals_abandoned;
        self.late_responses += o.late_responses;
        self.approvals_reversed += o.approvals_reversed;
        self.unmatched_responses += o.unmatched_responses;
        self.inflight_limit_hits += o.inflight_limit_hits;
        self.framing_errors += o.framing_errors;
        self.format_errors += o.format_errors;
        self.network_answered += o.network_answered;
        self.echo_failures += o.echo_failures;
        self.requests_held += o.requests_held;
        self.undeliverable += o.undeliverable;
        self.unrelayable += o.unrelayable;
        self.format_errors_dropped += o.format_errors_dropped;
        self.sign_on_timeouts += o.sign_on_timeouts;
        self.frame_timeouts += o.frame_timeouts;
        self.displaced += o.displaced;
        self.unresponsive_links += o.unresponsive_links;
        self.duplicates_replayed += o.duplicates_replayed;
        self.advices_stored += o.advices_stored;
        self.reversals_redundant += o.reversals_redundant;
        self.storage_declines += o.storage_declines;
        self.journal_batches += o.journal_batches;
        self.journal_records += o.journal_records;
    }

    /// Switch-made declines with `code`.
    #[must_use]
    pub fn declines_for(&self, code: ResponseCode) -> u64 {
        DECLINE_CODES.iter().position(|&c| c == code).map_or(0, |i| self.declines[i])
    }

    pub(crate) fn count_decline(&mut self, code: ResponseCode) {
        if let Some(i) = DECLINE_CODES.iter().position(|&c| c == code) {
            self.declines[i] += 1;
        }
    }
}

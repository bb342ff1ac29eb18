//! Links: one connection (or QUIC lane) of a configured link — its correlation space, its
//! write batch (the outbox) and the requests held back while its originator is at its limit.

use std::{collections::VecDeque, time::Instant};

use bytes::{Bytes, BytesMut};
use corridor_wire::{DecodeError, Dialect, EncodeError, FrameDecoder, Stan};

use crate::config::{AtLimit, Framing, LinkSpec};

/// One connection of a configured link. Never reused: a reconnection is a new id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// Why the engine wants a link closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer broke the framing: the stream cannot be trusted.
    Framing(DecodeError),
    /// The peer does not read: its write batch reached
    /// [`LINK_OUT_BYTES_MAX`](crate::limits::LINK_OUT_BYTES_MAX).
    Stalled,
    /// The peer missed the configured number of echoes.
    EchoMissed,
    /// The peer did not sign on within the link's sign-on deadline.
    NoSignOn,
    /// The peer started a frame and did not finish it within the link's frame deadline.
    FrameTimeout,
    /// Requests forwarded on the link timed out one after another with nothing received.
    Unresponsive,
    /// An operator closed it.
    Operator,
    /// Its configured link was removed (or changed in a way its connections cannot take)
    /// by a reload, and what it carried has drained.
    Reconfigured,
    /// Its link was at its connection limit and a new connection came: this one, the
    /// oldest that had not signed on or held a stalled partial frame, made room.
    Displaced,
}

impl CloseReason {
    /// Whether the close lingers (SPEC §2: the sending side shut after what was written,
    /// then the peer's input read and discarded for a bounded time, so answers on their way
    /// are not destroyed by a reset, and the connection keeps its slot meanwhile). A peer
    /// that never signed on was sent no financial answer, and one displaced to make room for
    /// a new connection must give its slot up now: both close at once.
    #[must_use]
    pub fn lingers(&self) -> bool {
        !matches!(self, Self::NoSignOn | Self::Displaced)
    }
}

/// Whether a link's reader should go on reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadState {
    /// Read on.
    Open,
    /// Stop reading until [`Event::Resume`](crate::Event::Resume) for this link: its
    /// originator is at its in-flight limit and the requests waiting reached
    /// [`HELD_BYTES_MAX`](crate::limits::HELD_BYTES_MAX). Bytes already read stay in the
    /// caller's buffer; pass them again with the next `handle_read`.
    Paused,
    /// The link is closing or gone: stop.
    Closed,
}

/// What the engine knows of a link, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// The configured link it belongs to.
    pub spec: usize,
    /// Its participant.
    pub participant: usize,
    /// Whether it may carry financial traffic (signed on, or sign-on not required).
    pub signed_on: bool,
    /// Whether the engine asked for it to be closed.
    pub closing: bool,
    /// Requests forwarded on it awaiting an answer.
    pub inflight_out: u32,
    /// Requests received on it awaiting an answer.
    pub inflight_in: u32,
    /// Requests read from it and waiting for its in-flight count to drop.
    pub held: usize,
    /// Approvals written for it and not yet known to have reached its socket.
    pub undelivered: usize,
    /// When it last received anything.
    pub last_rx: Instant,
    /// Frames received and written on this connection.
    pub frames_in: u64,
    /// Frames written to its batches.
    pub frames_out: u64,
}

/// An approval written into a link's batch but not yet known to have reached the socket:
/// if the link goes first, the originator never learned of it and it is reversed.
#[derive(Clone, Debug)]
pub(crate) struct Undelivered {
    /// The participant that approved it.
    pub(crate) destination: usize,
    /// The request as the originator sent it.
    pub(crate) request: Bytes,
    /// Its dialect.
    pub(crate) dialect: Dialect,
    /// The STAN the destination saw.
    pub(crate) sent_stan: [u8; 6],
    /// Its duplicate key.
    pub(crate) dup: crate::duplicates::DupKey,
}

/// A link's write batch, with a release point: bytes past it are not handed to the I/O
/// layer yet (the journal will hold output back until its records are durable; today every
/// write is released at once).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    buf: BytesMut,
    released: usize,
    /// Approvals in `buf`, with the offset their frame ends at.
    answers: VecDeque<(usize, Undelivered)>,
    /// Frames that may not leave before a journal record is durable: where each starts in
    /// `buf`, and the record's sequence number. Frames behind one wait with it (order).
    holds: VecDeque<(usize, u64)>,
    /// Approvals in batches taken and not yet written, with the offset (counted over every
    /// byte ever taken) their frame ends at.
    in_write: VecDeque<(u64, Undelivered)>,
    /// Bytes handed to the I/O layer, ever.
    taken: u64,
    /// Bytes the I/O layer reported written to the socket, ever.
    written: u64,
}

/// A batch buffer holding more than this while empty is given back: an idle link keeps no
/// large allocation.
const OUTBOX_KEEP_BYTES: usize = 64 * 1024;

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes that may be taken now.
    pub(crate) fn has_released(&self) -> bool {
        self.released > 0
    }

    /// Marks everything written so far as releasable, up to the first frame still waiting
    /// for a journal record past `durable`.
    pub(crate) fn release(&mut self, durable: u64) {
        while self.holds.front().is_some_and(|&(_, seq)| seq <= durable) {
            self.holds.pop_front();
        }
        self.released = self.holds.front().map_or(self.buf.len(), |&(start, _)| start);
    }

    /// The frame that begins at `start` waits for journal record `seq`.
    pub(crate) fn hold(&mut self, start: usize, seq: u64) {
        self.holds.push_back((start, seq));
    }

    /// Whether frames wait for the journal.
    pub(crate) fn is_held(&self) -> bool {
        !self.holds.is_empty()
    }

    /// Records that the frame just written (ending at the batch's current end) is an
    /// approval the originator must receive.
    pub(crate) fn track(&mut self, answer: Undelivered) {
        self.answers.push_back((self.buf.len(), answer));
    }

    /// Takes the released part of the batch; its approvals wait for [`Outbox::written`].
    pub(crate) fn take(&mut self) -> Option<BytesMut> {
        if self.released == 0 {
            return None;
        }
        let n = self.released;
        let out = self.buf.split_to(n);
        self.released = 0;
        while let Some(&(end, _)) = self.answers.front() {
            if end > n {
                break;
            }
            if let Some((end, a)) = self.answers.pop_front() {
                self.in_write.push_back((self.taken + end as u64, a));
            }
        }
        self.taken += n as u64;
        for (end, _) in &mut self.answers {
            *end -= n;
        }
        for (start, _) in &mut self.holds {
            // Held frames start at or after the release point, which is where the split was.
            *start -= n;
        }
        if self.buf.is_empty() && self.buf.capacity() > OUTBOX_KEEP_BYTES {
            self.buf = BytesMut::new();
        }
        Some(out)
    }

    /// `bytes` more of what was taken reached the socket: the approvals whose frames are
    /// wholly in it are delivered.
    pub(crate) fn written(&mut self, bytes: usize) {
        self.written = (self.written + bytes as u64).min(self.taken);
        while self.in_write.front().is_some_and(|&(end, _)| end <= self.written) {
            self.in_write.pop_front();
        }
    }

    /// Approvals in flight to the peer: written, not confirmed.
    pub(crate) fn undelivered(&self) -> usize {
        self.answers.len() + self.in_write.len()
    }

    /// Empties the outbox (the link is gone) and returns its undelivered approvals.
    pub(crate) fn abandon(&mut self) -> Vec<Undelivered> {
        let mut out: Vec<Undelivered> = self.in_write.drain(..).map(|(_, a)| a).collect();
        out.extend(self.answers.drain(..).map(|(_, a)| a));
        self.holds.clear();
        self.buf = BytesMut::new();
        self.released = 0;
        out
    }

    pub(crate) fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

/// A link's network-management session: what its peer (or its answer to the switch's
/// sign-on) last said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// No sign-on yet.
    Awaiting,
    /// Signed on: it may carry financial traffic.
    SignedOn,
    /// The peer signed off, or refused the switch's sign-on.
    SignedOff,
}

/// Where a link is in its life. One state at a time: a retiring link takes no new requests
/// by definition, and a closing one is nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    /// Carries traffic both ways.
    Open,
    /// An operator signed it off: no new requests are routed to it (its peer's are still
    /// taken).
    SignedOff,
    /// A reload removed or restarted its configured link: no new requests are routed to it,
    /// its peer's are answered 91, and it is closed once what it carries is answered, or at
    /// this deadline.
    Retiring(Instant),
    /// The engine asked for it to be closed.
    Closing,
}

/// One open link.
pub(crate) struct Link {
    pub(crate) spec: usize,
    pub(crate) participant: usize,
    pub(crate) dial: bool,
    pub(crate) framing: Framing,
    pub(crate) dialect: Dialect,
    pub(crate) frame_bytes_max: usize,
    pub(crate) inflight_max: u32,
    pub(crate) at_limit: AtLimit,
    pub(crate) sign_on_required: bool,
    pub(crate) decoder: FrameDecoder,
    pub(crate) out: Outbox,
    pub(crate) dirty: bool,
    /// Its network-management session with the peer.
    session: Session,
    /// Where it is in its life.
    lifecycle: Lifecycle,
    pub(crate) inflight_out: u32,
    pub(crate) inflight_in: u32,
    next_correlation: u64,
    pub(crate) stan: Stan,
    pub(crate) last_rx: Instant,
    pub(crate) echo_missed: u32,
    /// Timeouts in a row on requests forwarded here, with nothing received in between.
    pub(crate) timeouts_in_row: u32,
    /// Requests read from this link while it was at its in-flight limit, in order.
    pub(crate) held: VecDeque<(u64, Bytes)>,
    pub(crate) held_bytes: usize,
    /// The reader was told to stop ([`ReadState::Paused`]).
    pub(crate) paused: bool,
    /// A held request is being handled again (it must not be held behind the others).
    pub(crate) replaying: bool,
    /// When the partial frame now buffered was first seen.
    pub(crate) partial_since: Option<Instant>,
    /// A frame timer is set for this link (at most one is).
    pub(crate) frame_timer: bool,
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    /// The journal's durable sequence number as this link last heard it.
    pub(crate) durable: u64,
}

impl Link {
    pub(crate) fn new(spec_index: usize, s: &LinkSpec, now: Instant) -> Self {
        Self {
            spec: spec_index,
            participant: s.participant,
            dial: s.dial,
            framing: s.framing,
            dialect: s.dialect,
            frame_bytes_max: s.frame_bytes_max,
            inflight_max: s.inflight_max,
            at_limit: s.at_limit,
            sign_on_required: s.sign_on_required,
            decoder: s.framing.decoder(s.frame_bytes_max),
            out: Outbox::default(),
            dirty: false,
            session: Session::Awaiting,
            lifecycle: Lifecycle::Open,
            inflight_out: 0,
            inflight_in: 0,
            next_correlation: 0,
            stan: Stan::new(0).unwrap_or_else(|| unreachable!("0 is a STAN")),
            last_rx: now,
            echo_missed: 0,
            timeouts_in_row: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            paused: false,
            replaying: false,
            partial_since: None,
            frame_timer: false,
            frames_in: 0,
            frames_out: 0,
            durable: u64::MAX,
        }
    }

    /// Whether the link may be given financial traffic.
    pub(crate) fn routable(&self) -> bool {
        self.lifecycle == Lifecycle::Open && (self.signed_on() || !self.sign_on_required)
    }

    /// Whether the session is signed on (whether or not the link requires it).
    pub(crate) fn signed_on(&self) -> bool {
        self.session == Session::SignedOn
    }

    /// The session's new state: the peer signed on or off, or answered the switch's sign-on.
    pub(crate) fn set_session(&mut self, session: Session) {
        self.session = session;
    }

    /// Whether the engine asked for the link to be closed.
    pub(crate) fn closing(&self) -> bool {
        self.lifecycle == Lifecycle::Closing
    }

    /// The deadline of a link being retired.
    pub(crate) fn retiring(&self) -> Option<Instant> {
        match self.lifecycle {
            Lifecycle::Retiring(at) => Some(at),
            _ => None,
        }
    }

    /// Marks the link closing; whether it was not already.
    pub(crate) fn start_closing(&mut self) -> bool {
        let was = self.lifecycle;
        self.lifecycle = Lifecycle::Closing;
        was != Lifecycle::Closing
    }

    /// Retires the link by `deadline`; whether it was open or signed off (a closing or
    /// retiring link stays as it is).
    pub(crate) fn retire(&mut self, deadline: Instant) -> bool {
        match self.lifecycle {
            Lifecycle::Open | Lifecycle::SignedOff => {
                self.lifecycle = Lifecycle::Retiring(deadline);
                true
            }
            Lifecycle::Retiring(_) | Lifecycle::Closing => false,
        }
    }

    /// An operator's sign-off (`on`: false) or sign-on of the link. Only an open or
    /// signed-off link changes: an operator's sign-on does not bring back a link a reload
    /// is retiring.
    pub(crate) fn operator_sign(&mut self, on: bool) {
        self.lifecycle = match (self.lifecycle, on) {
            (Lifecycle::Open | Lifecycle::SignedOff, true) => Lifecycle::Open,
            (Lifecycle::Open | Lifecycle::SignedOff, false) => Lifecycle::SignedOff,
            (other, _) => other,
        };
    }

    /// Whether its originator has every in-flight slot taken.
    pub(crate) fn origin_full(&self) -> bool {
        self.inflight_in >= self.inflight_max
    }

    /// The next outbound correlation: the header id on native links, a fresh STAN on classic
    /// ones (DE 11 is six digits, so it wraps at 999 999).
    pub(crate) fn next_key(&mut self) -> (u64, Stan) {
        self.stan = self.stan.next();
        let stan = self.stan;
        match self.framing {
            Framing::Native => {
                self.next_correlation = self.next_correlation.wrapping_add(1);
                (self.next_correlation, stan)
            }
            Framing::Length(_) => (u64::from(self.stan.value()), stan),
        }
    }

    /// Appends one frame to the write batch: the header (native or length), then whatever
    /// `body` writes. On error nothing is left behind. The frame may leave at once, unless
    /// an earlier one waits for the journal.
    pub(crate) fn frame(
        &mut self,
        flags: u8,
        correlation: u64,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        self.frame_after(0, flags, correlation, body)
    }

    /// Like [`Link::frame`], for a frame that may not leave before journal record `seq` is
    /// durable (0: none).
    pub(crate) fn frame_after(
        &mut self,
        seq: u64,
        flags: u8,
        correlation: u64,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = self.out.len();
        let result = self.framing.write(flags, correlation, self.frame_bytes_max, self.out.buf_mut(), body);
        if result.is_ok() {
            self.frames_out += 1;
            self.hold_from(start, seq);
        }
        result
    }

    /// The frames written from `start` on wait for journal record `seq` (for a frame
    /// written before its record was made, in the same engine call: nothing has been taken
    /// since).
    pub(crate) fn hold_from(&mut self, start: usize, seq: u64) {
        if seq > self.durable {
            self.out.hold(start, seq);
        }
        self.out.release(self.durable);
    }

    pub(crate) fn status(&self) -> LinkStatus {
        LinkStatus {
            spec: self.spec,
            participant: self.participant,
            signed_on: self.routable(),
            closing: matches!(self.lifecycle, Lifecycle::Closing | Lifecycle::Retiring(_)),
            inflight_out: self.inflight_out,
            inflight_in: self.inflight_in,
            held: self.held.len(),
            undelivered: self.out.undelivered(),
            last_rx: self.last_rx,
            frames_in: self.frames_in,
            frames_out: self.frames_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(n: u8) -> Undelivered {
        Undelivered {
            destination: usize::from(n),
            request: Bytes::new(),
            dialect: Dialect::Native,
            sent_stan: [b'0'; 6],
            dup: crate::duplicates::DupKey::from_journal(0, &corridor_journal::entry::key("p", 2, 0)),
        }
    }

    #[test]
    fn an_outbox_keeps_its_approvals_until_their_batch_is_written() {
        let mut o = Outbox::default();
        o.buf_mut().extend_from_slice(b"aaaa");
        o.track(approval(1));
        o.buf_mut().extend_from_slice(b"bb");
        o.release(0);
        assert_eq!(o.undelivered(), 1);
        let batch = o.take().expect("released bytes");
        assert_eq!(&batch[..], b"aaaabb");
        assert_eq!(o.undelivered(), 1, "taken is not written");
        o.written(3);
        assert_eq!(o.undelivered(), 1, "a partial write does not deliver the approval's frame");
        o.written(1);
        assert_eq!(o.undelivered(), 0);
        o.written(100);
        assert!(o.take().is_none(), "nothing released");
        o.buf_mut().extend_from_slice(b"cc");
        o.track(approval(2));
        o.release(0);
        let gone = o.abandon();
        assert_eq!(gone.iter().map(|a| a.destination).collect::<Vec<_>>(), [2]);
        assert!(o.is_empty() && o.undelivered() == 0);
    }

    #[test]
    fn held_frames_and_those_behind_them_wait_for_their_record() {
        let mut o = Outbox::default();
        o.buf_mut().extend_from_slice(b"free");
        o.hold(4, 10);
        o.buf_mut().extend_from_slice(b"held");
        o.buf_mut().extend_from_slice(b"behind");
        o.release(9);
        assert_eq!(&o.take().expect("the free frame")[..], b"free");
        assert!(o.take().is_none(), "record 10 is not durable yet");
        o.hold(6, 12);
        o.buf_mut().extend_from_slice(b"later");
        o.release(10);
        assert_eq!(&o.take().expect("up to the next hold")[..], b"heldbe");
        o.release(12);
        assert_eq!(&o.take().expect("the rest")[..], b"hindlater");
        assert!(!o.is_held());
    }
}

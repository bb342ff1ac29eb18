//! Two shards of one switch in memory, joined by their hop: the acquirers on shard 0, the
//! issuers on shard 1, so every request crosses. What crosses is the bytes each engine
//! writes on its hop link, handed to the other's as a reader would (and held back, to
//! stall the hop).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use corridor_engine::{shards::ShardPlan, Engine, Journal, LinkId, WallClock};
use corridor_journal::{request::PanKey, scan_log, GroupCommit};
use corridor_wire::{de, Mti};
use harness::*;

struct Pair {
    s: [Harness; 2],
    hop: [LinkId; 2],
    /// Each shard's configured hop link to the other.
    specs: [usize; 2],
    /// Whether bytes cross the hop (false: it stalls).
    flowing: bool,
}

impl Pair {
    fn new() -> Self {
        Self::with(Harness::with)
    }

    /// [`Pair::new`], each shard journaling (its records synced only by [`Harness::sync`]).
    fn journaled() -> Self {
        Self::with(|config| {
            let now = std::time::Instant::now();
            let policy = GroupCommit { records_max: 64, wait: Duration::ZERO, ..GroupCommit::default() };
            let journal = Journal::new(policy, 1, None, PanKey::new(3, &[0x5A; 32]).unwrap(), [7; 8]);
            let clock = WallClock { at: now, unix_secs: 1_795_644_930 };
            Harness::with_engine(Engine::with_journal(config, clock, journal), now)
        })
    }

    /// [`Pair::journaled`] with the acquirer up on shard 0 and the issuer on shard 1, what
    /// that journaled synced into each shard's log: the pair, the two links, the two logs.
    fn journaled_up() -> (Self, LinkId, LinkId, [Vec<u8>; 2]) {
        let mut p = Self::journaled();
        let mut logs = [Vec::new(), Vec::new()];
        let acq = p.s[0].acquirer_up(L_ACQ);
        let iss = p.s[1].issuer_up(L_ISS_A1);
        for (h, log) in p.s.iter_mut().zip(&mut logs) {
            h.sync(log);
        }
        (p, acq, iss, logs)
    }

    /// The pair, each shard's harness made by `make` from its configuration.
    fn with(make: impl Fn(corridor_engine::Config) -> Harness) -> Self {
        let base = config();
        // acq, acq2 on shard 0; issuer-a, issuer-b on shard 1.
        let plan = {
            let mut ps = base.participants.clone();
            for (p, s) in ps.iter_mut().zip([0, 0, 1, 1]) {
                p.shard = Some(s);
            }
            ShardPlan::new(2, &corridor_engine::Config { participants: ps, ..base.clone() })
        };
        let mut s = [make(plan.config_for(&base, 0)), make(plan.config_for(&base, 1))];
        let now = s[0].now;
        s[1].now = now;
        let specs = [plan.hop_spec(1), plan.hop_spec(0)];
        let hop = [s[0].up(specs[0]), s[1].up(specs[1])];
        Self { s, hop, specs, flowing: true }
    }

    /// Both shards of `p` dead, restarted on what each synced (`logs`, appended to from
    /// here on), and joined by their hop again; what each resumed.
    fn restarted(p: Self, logs: &[Vec<u8>; 2]) -> (Self, [corridor_engine::Resumed; 2]) {
        let [c0, c1] = [0, 1].map(|i| p.s[i].engine.config().clone());
        let specs = p.specs;
        drop(p);
        let ((mut h0, d0), (mut h1, d1)) = (restart(c0, &logs[0]), restart(c1, &logs[1]));
        h1.now = h0.now;
        let hop = [h0.up(specs[0]), h1.up(specs[1])];
        (Self { s: [h0, h1], hop, specs, flowing: true }, [d0, d1])
    }

    /// The acquirer on `acq` sends `req`; the acquirer's shard syncs it (into `log0`) and it
    /// crosses: what the issuer on `iss` got, once.
    fn cross(
        &mut self,
        acq: LinkId,
        iss: LinkId,
        log0: &mut Vec<u8>,
        req: &corridor_wire::OwnedMessage,
    ) -> Got {
        self.s[0].send(acq, 0, req);
        self.s[0].sync(log0);
        self.shuttle();
        let mut got = self.s[1].recv_app(iss);
        assert_eq!(got.len(), 1, "forwarded once");
        got.remove(0)
    }

    /// Syncs both shards and moves what crosses until nothing more happens (bounded), the
    /// issuer on `iss` acknowledging every reversal it gets: the reversals it got.
    fn settle(&mut self, logs: &mut [Vec<u8>; 2], iss: LinkId) -> Vec<Got> {
        let mut got = Vec::new();
        for _ in 0..16 {
            let synced: usize = self.s.iter_mut().zip(logs.iter_mut()).map(|(h, log)| h.sync(log)).sum();
            self.shuttle();
            let reversals = self.s[1].recv_app(iss);
            if synced == 0 && reversals.is_empty() {
                return got;
            }
            for r in reversals {
                assert_eq!(r.msg.mti().class(), 4, "only reversals reach the issuer here: {r:?}");
                self.s[1].answer(iss, &r, "00");
                got.push(r);
            }
        }
        panic!("the shards did not settle");
    }

    /// Moves what each shard wrote on its hop to the other until neither writes more.
    fn shuttle(&mut self) {
        if !self.flowing {
            return;
        }
        for _ in 0..64 {
            let a = self.s[0].take_raw(self.hop[0]);
            let b = self.s[1].take_raw(self.hop[1]);
            if a.is_empty() && b.is_empty() {
                return;
            }
            self.s[1].send_raw(self.hop[1], &a);
            self.s[0].send_raw(self.hop[0], &b);
        }
        panic!("the shards kept writing to each other");
    }

    fn advance(&mut self, d: Duration) {
        self.s[0].advance(d);
        self.s[1].advance(d);
        self.shuttle();
    }
}

/// A shard restarted on `log` (what it synced before it died), with `config`: recovered
/// and resumed as a restart does; what it resumed.
fn restart(config: corridor_engine::Config, log: &[u8]) -> (Harness, corridor_engine::Resumed) {
    let scan = scan_log(&[(1, log)]).unwrap();
    let owed = corridor_journal::recovery::Recovery::of(&scan).unwrap();
    let now = std::time::Instant::now();
    let policy = GroupCommit { records_max: 64, wait: Duration::ZERO, ..GroupCommit::default() };
    let journal = Journal::new(
        policy,
        scan.next_seq,
        Some(log.len() as u64),
        PanKey::new(3, &[0x5A; 32]).unwrap(),
        [9; 8],
    );
    let mut h = Harness::with_engine(
        Engine::with_journal(config, WallClock { at: now, unix_secs: 1_795_644_930 }, journal),
        now,
    );
    let done = h.engine.resume(&owed, now, 1_795_644_930_000);
    (h, done)
}

#[test]
fn a_request_crosses_and_its_answer_comes_back() {
    let mut p = Pair::new();
    let acq = p.s[0].acquirer_up(L_ACQ);
    let iss = p.s[1].issuer_up(L_ISS_A1);
    let req = purchase("4761739001010010", "000123", "12345678");
    p.s[0].send(acq, 0, &req);
    assert!(p.s[0].recv(acq).is_empty(), "nothing is answered before the destination does");
    p.shuttle();
    let got = p.s[1].recv_app(iss);
    assert_eq!(got.len(), 1, "the issuer on the other shard gets the request once");
    assert_eq!(got[0].msg.mti(), Mti::FINANCIAL_REQUEST);
    assert_eq!(got[0].field(32).as_deref(), Some("12345678"));
    p.s[1].answer(iss, &got[0], "00");
    p.shuttle();
    let back = p.s[0].recv(acq);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].msg.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(back[0].field(39).as_deref(), Some("00"));
    // The acquirer's own STAN, in its own dialect (iso87-ascii over bin2).
    assert_eq!(back[0].field(11).as_deref(), Some("000123"));
    assert_eq!(p.s[0].engine.requests_pending(), 0);
    assert_eq!(p.s[1].engine.requests_pending(), 0);

    // Its retransmission is answered from its outcome on the acquirer's shard: nothing
    // crosses again.
    p.s[0].send(acq, 0, &req);
    let again = p.s[0].recv(acq);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].field(39).as_deref(), Some("00"));
    p.shuttle();
    assert!(p.s[1].recv_app(iss).is_empty(), "a repeat never reaches the destination");
}

/// A hop adds no durable step: the acquirer's shard journals the request before it crosses
/// and the answer before it answers; the issuer's shard forwards the request, and sends its
/// destination's answer back, without waiting for its own records — they are written all the
/// same, and a restart of that shard leaves the request to the acquirer's shard (which
/// reverses it), never reversing it a second time. What that shard decides itself (a 68 on
/// its timeout, with the reversal it owes) still waits for its records.
#[test]
fn a_hop_adds_no_durable_step_and_the_originators_shard_covers_what_crosses() {
    let (mut p, acq, iss, [mut log0, mut log1]) = Pair::journaled_up();
    let first = purchase("4761739001010010", "000201", "12345678");
    p.s[0].send(acq, 0, &first);
    p.shuttle();
    assert!(
        p.s[1].recv_app(iss).is_empty(),
        "nothing crosses before the acquirer's shard's record is durable"
    );
    assert!(p.s[0].sync(&mut log0) > 0);
    p.shuttle();
    let got = p.s[1].recv_app(iss);
    assert_eq!(got.len(), 1, "forwarded at once, before the issuer's shard syncs anything");
    p.s[1].answer(iss, &got[0], "00");
    p.shuttle();
    assert!(p.s[0].recv(acq).is_empty(), "the answer waits for the acquirer's shard's record of it");
    assert!(p.s[0].sync(&mut log0) > 0);
    let back = p.s[0].recv(acq);
    assert_eq!(back.len(), 1, "answered, and the issuer's shard has synced nothing since its links came up");
    assert_eq!(back[0].field(39).as_deref(), Some("00"));
    // The issuer's shard wrote its records all the same (request accepted and forwarded,
    // answer).
    assert!(p.s[1].sync(&mut log1) >= 2);

    // A second purchase the issuer never answers: the issuer's shard's 68 (and the
    // reversal it owes) wait for its own records.
    p.s[0].send(acq, 0, &purchase("4761739001010010", "000202", "12345678"));
    p.s[0].sync(&mut log0);
    p.shuttle();
    assert_eq!(p.s[1].recv_app(iss).len(), 1);
    p.s[1].sync(&mut log1);
    p.advance(TIMEOUT + Duration::from_millis(10));
    assert!(p.s[1].recv_app(iss).is_empty(), "the reversal waits for its record");
    p.s[0].sync(&mut log0);
    assert!(p.s[0].recv(acq).is_empty(), "and the 68 does not cross before the issuer's shard's records");
    assert!(p.s[1].sync(&mut log1) > 0);
    p.shuttle();
    p.s[0].sync(&mut log0);
    let back = p.s[0].recv(acq);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].field(39).as_deref(), Some("68"));
    assert_eq!(p.s[1].recv_app(iss).len(), 1, "its reversal, once");

    // A third the issuer approves, its answer back at the acquirer's shard, before either
    // shard syncs again — then both die: the issuer's shard's records of the request are
    // durable (its disk was quick), its answer's and the acquirer's shard's answer's are not.
    p.s[0].send(acq, 0, &purchase("4761739001010010", "000203", "12345678"));
    p.s[0].sync(&mut log0);
    p.shuttle();
    let got = p.s[1].recv_app(iss);
    assert_eq!(got.len(), 1);
    assert!(p.s[1].sync(&mut log1) > 0);
    p.s[1].answer(iss, &got[0], "00");
    p.shuttle();
    assert!(p.s[0].recv(acq).is_empty(), "not answered: the acquirer's shard's record is not durable");
    let plan = {
        let config = p.s[1].engine.config().clone();
        (config, p.s[0].engine.config().clone())
    };
    let hop_spec0 = p.specs[0];
    drop(p);
    // The issuer's shard: its third request is open in its records; it closes it and
    // leaves it to the acquirer's shard — reversed here too, it would be reversed twice
    // (and had the acquirer's shard answered, an approval its terminal got reversed).
    let (_, done1) = restart(plan.0, &log1);
    assert_eq!((done1.reversed, done1.crossing), (0, 1), "{done1:?}");
    // The acquirer's shard: the third is open (its answer never durable): reversed, once,
    // toward the issuer across the hop — as soon as the hop is up (a hop takes no sign-on
    // that would send it; it waited for its retry, 10 s, before).
    let (mut h0, done0) = restart(plan.1, &log0);
    assert_eq!((done0.reversed, done0.unresolved), (1, 0), "{done0:?}");
    assert!(h0.sync(&mut log0) > 0, "the reversal's record, durable");
    let hop = h0.up(hop_spec0);
    assert!(h0.sync(&mut log0) > 0, "its transmission's record");
    let crossing = h0.take_raw(hop);
    let reversal = corridor_wire::NativeFramer::new(corridor_wire::FRAME_BYTES_MAX)
        .decode(&mut bytes::BytesMut::from(&crossing[..]))
        .unwrap()
        .map(|f| corridor_wire::Message::parse(corridor_wire::Dialect::Native, f.into_body()).unwrap().mti());
    assert_eq!(reversal, Some(Mti::REVERSAL_ADVICE), "the reversal crosses the moment the hop is up");
}

/// A shard whose replication is paused (a node's takeover, until its journal is replicated)
/// declines new liabilities 96 — a partner tries another node — but takes another shard's
/// stored entry over the hop: that shard has no other node to try, and would send it again
/// only a retry (10 s) later. Its acknowledgement waits for its record as always.
#[test]
fn a_paused_shard_takes_another_shards_entry_and_forwards_it_once_durable() {
    let (mut p, acq, iss, [mut log0, mut log1]) = Pair::journaled_up();
    p.s[1].engine.set_replication_paused(true);
    let original = purchase("4761739001010010", "000301", "12345678");
    p.s[0].send(acq, 0, &reversal_of(&original, "000302"));
    p.s[0].sync(&mut log0);
    let acked = p.s[0].recv(acq);
    assert_eq!(acked.len(), 1, "the acquirer's shard stored it and acknowledged it");
    p.shuttle();
    p.s[1].sync(&mut log1);
    p.shuttle();
    p.s[0].sync(&mut log0);
    p.s[1].sync(&mut log1);
    let got = p.s[1].recv_app(iss);
    assert_eq!(got.len(), 1, "taken while paused, forwarded once durable");
    assert_eq!(got[0].msg.mti(), Mti::REVERSAL_ADVICE);
    p.s[1].answer(iss, &got[0], "00");
    p.shuttle();
    p.s[1].sync(&mut log1);
    p.shuttle();
    p.s[0].sync(&mut log0);
    assert_eq!(p.s[0].engine.reversals_pending(), 0, "acknowledged across the hop, not refused");
    assert_eq!(p.s[1].engine.reversals_pending(), 0);
    // A new request crossing to it meanwhile is declined 96, as a partner's would be.
    p.s[0].send(acq, 0, &purchase("4761739001010010", "000303", "12345678"));
    p.s[0].sync(&mut log0);
    p.shuttle();
    p.s[0].sync(&mut log0);
    let back = p.s[0].recv(acq);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].field(39).as_deref(), Some("96"));
}

#[test]
fn no_link_on_the_destinations_shard_is_declined_91_through_the_hop() {
    let mut p = Pair::new();
    let acq = p.s[0].acquirer_up(L_ACQ);
    p.s[0].send(acq, 0, &purchase("4761739001010010", "000124", "12345678"));
    p.shuttle();
    let back = p.s[0].recv(acq);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].field(39).as_deref(), Some("91"));
}

#[test]
fn the_destinations_shard_times_out_and_reverses_once() {
    let mut p = Pair::new();
    let acq = p.s[0].acquirer_up(L_ACQ);
    let iss = p.s[1].issuer_up(L_ISS_A1);
    p.s[0].send(acq, 0, &purchase("4761739001010010", "000125", "12345678"));
    p.shuttle();
    assert_eq!(p.s[1].recv_app(iss).len(), 1);
    // The issuer never answers. At the route's timeout its shard declines 68 and reverses;
    // the acquirer's shard, waiting a margin longer, relays the 68 and reverses nothing.
    p.advance(TIMEOUT + Duration::from_millis(10));
    let back = p.s[0].recv(acq);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].field(39).as_deref(), Some("68"));
    let rev = p.s[1].recv_app(iss);
    assert_eq!(rev.len(), 1, "one reversal, from the issuer's shard");
    assert_eq!(rev[0].msg.mti(), Mti::REVERSAL_ADVICE);
    p.s[1].answer(iss, &rev[0], "00");
    p.advance(corridor_engine::shards::HOP_MARGIN * 2);
    assert!(p.s[0].recv(acq).is_empty(), "no second answer");
    p.advance(RETRY * 2);
    assert!(p.s[1].recv_app(iss).is_empty(), "no second reversal");
    assert_eq!(p.s[0].engine.reversals_pending(), 0);
    assert_eq!(p.s[1].engine.reversals_pending(), 0);
    // Every figure says what one shard would: a timeout by the switch, not the
    // destination's 68 relayed.
    assert_timed_out_once(&p);
}

/// The figures of a switch of two shards, summed as the network layer sums them, after one
/// request to issuer A timed out on the issuer's shard: counted as a timeout of issuer A,
/// answered 68 by the switch, relayed by nobody, and its outcome remembered as reversed.
fn assert_timed_out_once(p: &Pair) {
    let mut stats = p.s[0].engine.stats().clone();
    stats.add(p.s[1].engine.stats());
    assert_eq!(stats.timeouts, 1, "{stats:?}");
    assert_eq!(stats.relayed, 0, "a switch-made 68 is not a relayed answer: {stats:?}");
    assert_eq!(stats.declines_for(corridor_wire::ResponseCode::TIMEOUT), 1, "{stats:?}");
    let mut m = p.s[0].engine.metrics().clone();
    m.add(p.s[1].engine.metrics());
    let d = &m.destinations[ISSUER_A];
    assert_eq!(d.timeouts, 1, "corridor_timeouts_total of the destination");
    assert_eq!(d.answers.by_switch(), 1, "answered by the switch: {:?}", d.answers);
    assert_eq!(d.answers.total(), 1, "{:?}", d.answers);
    assert_eq!(d.destination_latency.count, 0, "the destination never answered");
}

#[test]
fn a_repeat_of_a_request_timed_out_across_the_hop_is_told_68_and_its_reversal_is_not_sent_again() {
    let mut p = Pair::new();
    let acq = p.s[0].acquirer_up(L_ACQ);
    let iss = p.s[1].issuer_up(L_ISS_A1);
    let req = purchase("4761739001010010", "000135", "12345678");
    p.s[0].send(acq, 0, &req);
    p.shuttle();
    assert_eq!(p.s[1].recv_app(iss).len(), 1);
    p.advance(TIMEOUT + Duration::from_millis(10));
    assert_eq!(p.s[0].recv(acq)[0].field(39).as_deref(), Some("68"));
    let rev = p.s[1].recv_app(iss);
    assert_eq!(rev.len(), 1);
    p.s[1].answer(iss, &rev[0], "00");
    p.shuttle();
    // The acquirer reverses what it was told 68: the switch already did, so its shard
    // acknowledges it without sending anything across.
    p.s[0].send(acq, 0, &reversal_of(&req, "000136"));
    assert_eq!(p.s[0].recv(acq)[0].field(39).as_deref(), Some("00"));
    assert!(p.s[0].take_raw(p.hop[0]).is_empty(), "nothing crosses the hop");
    assert_eq!(p.s[0].engine.reversals_pending(), 0);
    assert_timed_out_once(&p);
}

#[test]
fn an_approval_its_originator_never_got_is_reversed_across_the_hop() {
    let mut p = Pair::new();
    let acq = p.s[0].acquirer_up(L_ACQ);
    let iss = p.s[1].issuer_up(L_ISS_A1);
    p.s[0].send(acq, 0, &purchase("4761739001010010", "000126", "12345678"));
    p.shuttle();
    let got = p.s[1].recv_app(iss);
    // The acquirer's link goes before the approval is back.
    p.s[0].engine.link_down(acq, p.s[0].now);
    p.s[0].pump();
    p.s[1].answer(iss, &got[0], "00");
    p.shuttle();
    p.advance(Duration::from_millis(1));
    let rev = p.s[1].recv_app(iss);
    assert_eq!(rev.len(), 1, "the approval is reversed toward the issuer");
    assert_eq!(rev[0].msg.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(rev[0].field(de::ORIGINAL_DATA.get()).as_deref().map(|d| &d[..4]), Some("0200"));
    p.s[1].answer(iss, &rev[0], "00");
    p.advance(RETRY * 3);
    assert!(p.s[1].recv_app(iss).is_empty());
    assert_eq!(p.s[0].engine.reversals_pending(), 0, "the hop acknowledged it");
    assert_eq!(p.s[1].engine.reversals_pending(), 0, "the issuer acknowledged it");
}

#[test]
fn a_stalled_hop_repeats_a_reversal_but_the_issuer_gets_it_once() {
    let mut p = Pair::new();
    let acq = p.s[0].acquirer_up(L_ACQ);
    let iss = p.s[1].issuer_up(L_ISS_A1);
    let req = purchase("4761739001010010", "000127", "12345678");
    p.s[0].send(acq, 0, &req);
    p.shuttle();
    let got = p.s[1].recv_app(iss);
    p.s[1].answer(iss, &got[0], "00");
    p.shuttle();
    assert_eq!(p.s[0].recv(acq)[0].field(39).as_deref(), Some("00"));
    // The acquirer reverses it; its shard stores and acknowledges it, then sends it on the
    // hop. The other shard stores it, acknowledges it and forwards it, but its
    // acknowledgement is lost on the hop: the acquirer's shard repeats it.
    p.flowing = false;
    p.s[0].send(acq, 0, &reversal_of(&req, "000128"));
    assert_eq!(p.s[0].recv(acq)[0].field(39).as_deref(), Some("00"));
    let out = p.s[0].take_raw(p.hop[0]);
    assert!(!out.is_empty(), "the reversal goes on the hop");
    p.s[1].send_raw(p.hop[1], &out);
    let first = p.s[1].recv_app(iss);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].msg.mti(), Mti::REVERSAL_ADVICE);
    p.s[1].answer(iss, &first[0], "00");
    let lost = p.s[1].take_raw(p.hop[1]);
    assert!(!lost.is_empty(), "the other shard acknowledged it");
    assert_eq!(p.s[0].engine.reversals_pending(), 1);
    p.advance(RETRY + Duration::from_millis(1));
    let repeat = p.s[0].take_raw(p.hop[0]);
    assert!(!repeat.is_empty(), "unacknowledged, it is repeated on the hop");
    p.flowing = true;
    p.s[1].send_raw(p.hop[1], &repeat);
    p.shuttle();
    // The repeat was acknowledged again, not stored a second time.
    assert_eq!(p.s[0].engine.reversals_pending(), 0);
    assert_eq!(p.s[1].engine.reversals_pending(), 0);
    p.advance(RETRY * 3);
    let more = p.s[1].recv_app(iss);
    assert!(more.is_empty(), "the issuer got the reversal once: {more:?}");
}

#[test]
fn an_advice_the_other_shard_refuses_while_its_disk_is_full_goes_again_and_is_not_lost() {
    let mut p = Pair::new();
    let acq = p.s[0].acquirer_up(L_ACQ);
    let iss = p.s[1].issuer_up(L_ISS_A1);
    let mut advice = purchase("4761739001010010", "000301", "12345678");
    advice.set_mti(Mti::new(220).unwrap());
    advice.remove(de::PIN_BLOCK);
    // The issuer's shard takes no new liability: its disk is full.
    p.s[1].engine.set_storage_full(true);
    p.s[0].send(acq, 0, &advice);
    assert_eq!(p.s[0].recv(acq)[0].field(39).as_deref(), Some("00"), "stored where it came in");
    p.shuttle();
    assert!(p.s[1].recv_app(iss).is_empty(), "refused (96) there, not stored");
    assert_eq!(p.s[0].engine.reversals_pending(), 1, "a refusal is no acknowledgement");
    // A refusal that comes after the entry went again is no acknowledgement either.
    p.flowing = false;
    p.advance(RETRY + Duration::from_millis(1));
    let again = p.s[0].take_raw(p.hop[0]);
    assert!(!again.is_empty(), "sent again after the retry interval");
    p.s[1].send_raw(p.hop[1], &again);
    let _refused_again = p.s[1].take_raw(p.hop[1]);
    assert_eq!(p.s[0].engine.reversals_pending(), 1);
    p.flowing = true;
    p.s[1].engine.set_storage_full(false);
    p.advance(RETRY * 3);
    let got = p.s[1].recv_app(iss);
    assert_eq!(got.len(), 1, "stored there at last and forwarded once: {got:?}");
    assert_eq!(got[0].msg.mti().class(), 2);
    p.s[1].answer(iss, &got[0], "00");
    p.advance(RETRY * 2);
    assert_eq!(p.s[0].engine.reversals_pending(), 0);
    assert_eq!(p.s[1].engine.reversals_pending(), 0);
}

/// A purchase with STAN `stan` from terminal `TERM0001`, and its twin from `TERM0002`: one
/// STAN, one DE 7, keys that differ only in DE 41.
fn twins(stan: &str) -> (corridor_wire::OwnedMessage, corridor_wire::OwnedMessage) {
    let first = purchase("4761739001010010", stan, "12345678");
    let mut second = first.clone();
    second.set(de::TERMINAL_ID, "TERM0002").unwrap();
    (first, second)
}

/// Two purchases of one acquirer that differ only in DE 41 (two terminals, one STAN, one
/// DE 7), both answered 00; the issuer's shard synced its records of the first only before
/// both shards died (what it writes for a request that crossed is not waited for). After
/// the restart the acquirer reverses each: the reversal of the second carries its DE 41, so
/// the issuer's shard, knowing no such request, stores and forwards it — it does not take
/// it for the first's (it once did: the first was marked reversed by it, and the first's
/// own reversal was then acknowledged and never forwarded — an approval the issuer kept).
#[test]
fn a_reversal_across_the_hop_is_never_taken_for_another_terminals_request() {
    let (mut p, acq, iss, mut logs) = Pair::journaled_up();
    let (first, second) = twins("000401");
    for (req, synced_there) in [(&first, true), (&second, false)] {
        let got = p.cross(acq, iss, &mut logs[0], req);
        p.s[1].answer(iss, &got, "00");
        p.shuttle();
        if synced_there {
            assert!(p.s[1].sync(&mut logs[1]) >= 2, "request (accepted and forwarded) and answer there");
        }
        p.s[0].sync(&mut logs[0]);
        assert_eq!(p.s[0].recv(acq)[0].field(39).as_deref(), Some("00"));
    }
    let (mut p, [d0, d1]) = Pair::restarted(p, &logs);
    assert_eq!((d0.reversed, d1.crossing, d1.unresolved), (0, 0, 0), "{d0:?} {d1:?}");
    let acq = p.s[0].acquirer_up(L_ACQ);
    let iss = p.s[1].issuer_up(L_ISS_A1);
    let mut terminals = Vec::new();
    for (req, stan) in [(&second, "000402"), (&first, "000403")] {
        p.s[0].send(acq, 0, &reversal_of(req, stan));
        let got = p.settle(&mut logs, iss);
        assert_eq!(p.s[0].recv(acq)[0].field(39).as_deref(), Some("00"), "stored and acknowledged");
        terminals.extend(got.iter().map(|r| r.field(41).unwrap_or_default()));
    }
    assert_eq!(terminals, ["TERM0002", "TERM0001"], "each reversal reaches the issuer, once");
    assert_eq!(p.s[0].engine.reversals_pending() + p.s[1].engine.reversals_pending(), 0);
}

/// The same two purchases, the issuer's shard again with records of the first only, and
/// neither answered when both shards die: the acquirer's shard reverses both across the
/// hop (68). The issuer gets both reversals — the second's is the switch's own, made from
/// its record of the request with its DE 41 — not one of them taken for the other (the
/// crash test `the_load_generator_reverses_what_got_no_answer_on_the_node_it_fails_over_to`
/// found it so: its two connections send one STAN and DE 7 from two terminals).
#[test]
fn the_reversals_a_restart_makes_across_the_hop_each_reach_the_issuer() {
    let (mut p, acq, iss, mut logs) = Pair::journaled_up();
    let (first, second) = twins("000411");
    for (req, synced_there) in [(&first, true), (&second, false)] {
        p.cross(acq, iss, &mut logs[0], req);
        if synced_there {
            assert!(p.s[1].sync(&mut logs[1]) >= 1, "the request (accepted and forwarded) there");
        }
    }
    let (mut p, [d0, d1]) = Pair::restarted(p, &logs);
    assert_eq!((d0.reversed, d1.crossing), (2, 1), "{d0:?} {d1:?}");
    let iss = p.s[1].issuer_up(L_ISS_A1);
    let got = p.settle(&mut logs, iss);
    let mut terminals: Vec<String> = got.iter().map(|r| r.field(41).unwrap_or_default()).collect();
    terminals.sort();
    assert_eq!(terminals, ["TERM0001", "TERM0002"], "each reversed at the issuer, once");
    assert!(got.iter().all(|r| r.field(39).as_deref() == Some("68")));
    assert_eq!(p.s[0].engine.reversals_pending() + p.s[1].engine.reversals_pending(), 0);
}

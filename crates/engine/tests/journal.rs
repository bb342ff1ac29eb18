//! Journal before answer, in memory: with a journal, nothing that acts on a decision leaves
//! before the decision's record is durable, and the records say what happened — with no card
//! secret in them.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod harness;

use std::time::{Duration, Instant};

use corridor_engine::{Engine, Journal, LinkId, WallClock};
use corridor_journal::{
    entry::Entry,
    request::{open, PanKey},
    scan_log, GroupCommit,
};
use corridor_wire::{de, Mti, OwnedMessage};
use harness::*;

const PAN_A: &str = "4761739001010010";
const KEY: [u8; 32] = [0x5A; 32];

fn journaled() -> Harness {
    let now = Instant::now();
    let policy = GroupCommit { records_max: 64, wait: Duration::from_micros(200), ..GroupCommit::default() };
    let journal = Journal::new(policy, 1, None, PanKey::new(3, &KEY).unwrap(), [7; 8]);
    let engine = Engine::with_journal(config(), WallClock { at: now, unix_secs: 1_795_644_930 }, journal);
    Harness::with_engine(engine, now)
}

/// Syncs whatever batch is due, appending its bytes to `log` (see [`Harness::sync`]).
fn sync(h: &mut Harness, log: &mut Vec<u8>) -> usize {
    h.sync(log)
}

/// The log's entries but the audit trail's link events.
fn entries(log: &[u8]) -> Vec<Entry> {
    let scan = scan_log(&[(1, log)]).expect("the log scans clean");
    scan.segments[0]
        .1
        .records
        .iter()
        .map(|f| {
            let e = Entry::decode(f.record.kind, f.record.payload).unwrap();
            // What the engine journals from borrowed parts (a request sealed in place) is the
            // entry's own layout, byte for byte.
            let mut again = Vec::new();
            e.encode(&mut again);
            assert_eq!(
                again,
                f.record.payload,
                "record {} ({:?}) as its entry encodes",
                f.record.seq,
                e.kind()
            );
            e
        })
        .filter(|e| !matches!(e, Entry::LinkEvent { .. }))
        .collect()
}

#[test]
fn a_request_and_its_answer_leave_only_once_their_records_are_durable() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    assert_eq!(h.engine.journal_durable(), Some(0));
    assert_eq!(sync(&mut h, &mut log), 2, "the two links up, for the audit trail");
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    assert!(h.recv(iss).is_empty(), "not forwarded before its records are durable");
    assert_eq!(sync(&mut h, &mut log), 1, "accepted and forwarded, one record");
    let fwd = h.recv(iss);
    assert_eq!(fwd.len(), 1, "forwarded once durable");
    h.answer(iss, &fwd[0], "00");
    assert!(h.recv(acq).is_empty(), "not answered before the answer's record is durable");
    assert_eq!(sync(&mut h, &mut log), 1);
    let back = h.recv(acq);
    assert_eq!((back.len(), back[0].field(39).as_deref()), (1, Some("00")));

    let e = entries(&log);
    assert_eq!(e.len(), 2);
    let Entry::Sent(sent) = &e[0] else { panic!("{e:?}") };
    let a = &sent.accepted;
    assert_eq!(
        (a.key.participant.as_str(), a.key.stan, a.link.as_str(), a.key.class),
        ("acq", 42, "acq-1", 2)
    );
    assert_eq!(
        (sent.destination.as_str(), sent.out_link.as_str(), &sent.sent_stan),
        ("issuer-a", "iss-a-1", b"000042")
    );
    // Sequence numbers 1 and 2 are the links' events: the request is record 3.
    let Entry::Answered(ans) = &e[1] else { panic!("{e:?}") };
    assert_eq!((ans.request, &ans.code, ans.switch_made), (3, b"00", false));
    // What was written holds no PAN and no PIN block; the key opens the request.
    assert!(!log.windows(PAN_A.len()).any(|w| w == PAN_A.as_bytes()), "no PAN in the journal");
    assert!(!log.windows(8).any(|w| w == [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]), "no PIN block");
    let request = open(&a.request, &PanKey::new(3, &KEY).unwrap()).unwrap();
    assert_eq!(request.get(de::PAN), Some(PAN_A.as_bytes()));
    assert!(request.get(de::PIN_BLOCK).is_none());
}

#[test]
fn a_timeout_is_journaled_before_its_68_and_its_reversal_before_the_0420() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    sync(&mut h, &mut log);
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    sync(&mut h, &mut log);
    assert_eq!(h.recv(iss).len(), 1);
    h.advance(TIMEOUT);
    assert!(h.recv(acq).is_empty() && h.recv(iss).is_empty(), "the 68 and the 0420 wait for their records");
    assert_eq!(sync(&mut h, &mut log), 3, "answered 68, reversal queued, reversal sent");
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("68"));
    let rev = h.recv(iss);
    assert_eq!(rev[0].msg.mti(), Mti::REVERSAL_ADVICE);
    h.answer(iss, &rev[0], "00");
    sync(&mut h, &mut log);
    let kinds: Vec<String> = entries(&log).iter().map(|e| format!("{:?}", e.kind())).collect();
    // The reversal's records go before the answer's: a batch torn between them leaves a
    // queued reversal (recovery then does not reverse again), never a 68 without its 0420.
    assert_eq!(kinds, ["RequestForwarded", "ReversalQueued", "ReversalSent", "AnswerSent", "ReversalAcked"]);
    let e = entries(&log);
    let Entry::Answered(a) = &e[3] else { panic!() };
    assert_eq!((&a.code, a.switch_made), (b"68", true));
    let Entry::ReversalQueued(q) = &e[1] else { panic!() };
    let Entry::ReversalAcked { id } = e[4] else { panic!() };
    assert_eq!(
        (q.id, id),
        (4, 4),
        "the reversal's id is its record's sequence number (after two link events)"
    );
    let reversal = open(&q.reversal, &PanKey::new(3, &KEY).unwrap()).unwrap();
    assert_eq!(reversal.get(de::PAN), Some(PAN_A.as_bytes()), "a reversal after a restart has its PAN");
}

#[test]
fn without_a_journal_nothing_waits() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    assert_eq!(h.recv(iss).len(), 1);
    assert_eq!(h.engine.journal_durable(), None);
    assert!(h.engine.poll_journal(h.now, 0).is_none());
}

#[test]
fn a_restart_reverses_what_was_forwarded_and_never_answered_and_resumes_reversals() {
    // Run 1: two purchases forwarded; the issuer answers neither; the switch dies.
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    for stan in ["000001", "000002"] {
        h.send(acq, 0, &purchase(PAN_A, stan, "12345678"));
    }
    sync(&mut h, &mut log);
    let forwarded = h.recv(iss);
    assert_eq!(forwarded.len(), 2);
    drop(h);

    // Run 2, on the same log: both are reversed toward the issuer once its link is up.
    let scan = scan_log(&[(1, &log[..])]).unwrap();
    let owed = corridor_journal::recovery::Recovery::of(&scan).unwrap();
    assert_eq!(owed.open().count(), 2);
    let now = Instant::now();
    let policy = GroupCommit { records_max: 64, wait: Duration::ZERO, ..GroupCommit::default() };
    let journal =
        Journal::new(policy, scan.next_seq, Some(log.len() as u64), PanKey::new(3, &KEY).unwrap(), [8; 8]);
    let engine = Engine::with_journal(config(), WallClock { at: now, unix_secs: 1_795_644_930 }, journal);
    let mut h = Harness::with_engine(engine, now);
    let done = h.engine.resume(&owed, h.now, 1_795_644_930_000);
    assert_eq!((done.reversed, done.reversals, done.unresolved), (2, 0, 0));
    let iss = h.issuer_up(L_ISS_A1);
    sync(&mut h, &mut log);
    let revs: Vec<_> = h.recv(iss).into_iter().filter(|g| g.msg.mti() == Mti::REVERSAL_ADVICE).collect();
    assert_eq!(revs.len(), 2, "each open request reversed as soon as the issuer signed on");
    let originals: Vec<String> = forwarded.iter().map(|g| g.field(11).unwrap()).collect();
    for r in &revs {
        assert!(originals.contains(&r.field(90).unwrap()[4..10].to_owned()), "DE 90 names an original");
        assert_eq!(r.field(2).as_deref(), Some(PAN_A), "the PAN, unsealed for the reversal");
    }
    // The issuer acknowledges one; the switch dies again.
    h.answer(iss, &revs[0], "00");
    sync(&mut h, &mut log);
    drop(h);

    // Run 3: nothing to reverse any more, and the unacknowledged reversal resumes as a repeat.
    let scan = scan_log(&[(1, &log[..])]).unwrap();
    let owed = corridor_journal::recovery::Recovery::of(&scan).unwrap();
    assert_eq!(
        (owed.open().count(), owed.reversals.len()),
        (0, 1),
        "closed as answered 68; one reversal left"
    );
    let now = Instant::now();
    let journal =
        Journal::new(policy, scan.next_seq, Some(log.len() as u64), PanKey::new(3, &KEY).unwrap(), [9; 8]);
    let engine = Engine::with_journal(config(), WallClock { at: now, unix_secs: 1_795_644_930 }, journal);
    let mut h = Harness::with_engine(engine, now);
    let done = h.engine.resume(&owed, h.now, 1_795_644_930_000);
    assert_eq!((done.reversed, done.reversals), (0, 1));
    let iss = h.issuer_up(L_ISS_A1);
    sync(&mut h, &mut log);
    let again: Vec<_> = h.recv(iss).into_iter().filter(|g| g.msg.mti().class() == 4).collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].msg.mti(), Mti::REVERSAL_ADVICE_REPEAT, "sent before: a repeat");
    assert_eq!(again[0].field(90), revs[1].field(90), "the one not acknowledged");
}

/// Found by corridor-sim (seed 4228): a terminal's reversal of a request the switch had
/// just reversed itself was acknowledged at once, while the switch's own reversal waited
/// for the disk; a crash then lost both. The acknowledgement waits for it now.
#[test]
fn a_redundant_reversal_is_acknowledged_only_once_the_reversal_before_it_is_durable() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    sync(&mut h, &mut log);
    let p = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &p);
    sync(&mut h, &mut log);
    assert_eq!(h.recv(iss).len(), 1);
    // The terminal's connection goes; the request times out with no one to tell.
    h.engine.link_down(acq, h.now);
    let acq = h.acquirer_up(L_ACQ);
    while sync(&mut h, &mut log) > 0 {}
    h.advance(TIMEOUT);
    // The terminal reverses on its new connection before the switch's reversal is durable.
    h.send(acq, 0, &reversal_of(&p, "000043"));
    assert!(h.recv(acq).is_empty(), "the 0430 waits for the switch's reversal to be durable");
    while sync(&mut h, &mut log) > 0 {}
    let answers = h.recv(acq);
    let got: Vec<(u16, Option<String>)> =
        answers.iter().map(|a| (a.msg.mti().value(), a.field(39))).collect();
    assert_eq!(got, [(430, Some("00".to_owned()))]);
    assert_eq!(h.engine.stats().reversals_redundant, 1);
}

#[test]
fn a_repeat_on_a_connection_idle_through_the_syncs_is_answered_at_once() {
    // Found by the simulator (a seed with configuration reloads): a frame held for a record
    // already durable waited for the next sync, and an idle switch makes none. The second
    // connection of the acquirer's link saw none of the syncs below.
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    let idle = h.acquirer_up(L_ACQ);
    sync(&mut h, &mut log);
    let req = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &req);
    sync(&mut h, &mut log);
    let fwd = h.recv(iss).pop().unwrap();
    h.answer(iss, &fwd, "00");
    sync(&mut h, &mut log);
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("00"));
    assert!(h.engine.poll_journal(h.now, 0).is_none(), "nothing left to sync: the switch is idle");

    // The repeat, on the other connection: answered from the outcome, whose record is durable.
    h.send(idle, 0, &req);
    let back = h.recv(idle);
    assert_eq!(back.len(), 1, "answered without waiting for a sync that will not come");
    assert_eq!(back[0].field(39).as_deref(), Some("00"));
    assert!(h.recv(iss).is_empty(), "not forwarded again");
}

/// The acquirer sends `answered`, which the issuer approves, then `in_flight`, which it
/// keeps unanswered: what the issuer got of the second.
fn answer_one_keep_one(
    h: &mut Harness,
    log: &mut Vec<u8>,
    (acq, iss): (LinkId, LinkId),
    answered: &OwnedMessage,
    in_flight: &OwnedMessage,
) -> Vec<Got> {
    h.send(acq, 0, answered);
    sync(h, log);
    let fwd = h.recv(iss);
    h.answer(iss, &fwd[0], "00");
    sync(h, log);
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"));
    h.send(acq, 0, in_flight);
    sync(h, log);
    h.recv(iss)
}

/// Found from outside: a wallet's 0420 naming its original in DE 90, with the same DE 32
/// but no DE 41, was stored with its own (blank) terminal in the original's key, so the
/// journal — and clearing, which reads it — never tied it to the payment it reversed. DE 90
/// names the original (SPEC §9): the reversal's record names the original's key, whether
/// the original is answered or still in flight.
#[test]
fn a_reversal_without_de41_names_its_originals_key_in_the_journal() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    sync(&mut h, &mut log);
    // One answered before its reversal, one still in flight when its reversal comes.
    let answered = purchase(PAN_A, "000061", "12345678");
    let in_flight = purchase(PAN_A, "000063", "12345678");
    let pending = answer_one_keep_one(&mut h, &mut log, (acq, iss), &answered, &in_flight);
    assert_eq!(pending.len(), 1);
    for (original, stan) in [(&answered, "000062"), (&in_flight, "000064")] {
        let mut rev = reversal_of(original, stan);
        rev.remove(de::TERMINAL_ID);
        h.send(acq, 0, &rev);
        sync(&mut h, &mut log);
        assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"), "acknowledged once stored");
    }
    let e = entries(&log);
    let key_of = |stan: u32| {
        e.iter()
            .find_map(|x| match x {
                Entry::Sent(s) if s.accepted.key.stan == stan => Some(s.accepted.key.clone()),
                _ => None,
            })
            .unwrap()
    };
    let originals: Vec<_> = e
        .iter()
        .filter_map(|x| match x {
            Entry::ReversalQueued(q) if q.advice.is_some() => q.original.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(originals, vec![key_of(61), key_of(63)], "{e:?}");
    assert_eq!(&originals[0].terminal, b"TERM0001");
    // The one in flight waits for its answer, then goes: the issuer gets the answer's
    // reversal after the request, once.
    h.answer(iss, &pending[0], "00");
    sync(&mut h, &mut log);
    sync(&mut h, &mut log);
    let revs: Vec<_> = h.recv(iss).into_iter().filter(|g| g.msg.mti() == Mti::REVERSAL_ADVICE).collect();
    assert_eq!(revs.len(), 2, "both reversals reach the issuer");
}

/// Twin terminals of one acquirer: terminal 1's purchase is at the issuer when terminal 2
/// reverses its own purchase with the same STAN and DE 7, which never reached the switch.
/// That reversal carries terminal 2's DE 41: it names no request the switch has (it is
/// stored and forwarded as it came), not terminal 1's — taken for it, terminal 1's own
/// reversal would then be acknowledged as redundant and never forwarded, and its approval
/// would stand at the issuer.
#[test]
fn a_reversal_carrying_de41_is_never_taken_for_another_terminals_request() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    sync(&mut h, &mut log);
    let first = purchase(PAN_A, "000081", "12345678");
    let mut twin = first.clone();
    twin.set(de::TERMINAL_ID, "TERM0002").unwrap();
    h.send(acq, 0, &first);
    sync(&mut h, &mut log);
    let fwd = h.recv(iss);
    assert_eq!(fwd.len(), 1);
    for (original, stan) in [(&twin, "000082"), (&first, "000083")] {
        h.send(acq, 0, &reversal_of(original, stan));
        sync(&mut h, &mut log);
        assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"), "stored and acknowledged");
    }
    h.answer(iss, &fwd[0], "00");
    sync(&mut h, &mut log);
    sync(&mut h, &mut log);
    let terminals: Vec<_> = h
        .recv(iss)
        .into_iter()
        .filter(|g| g.msg.mti() == Mti::REVERSAL_ADVICE)
        .map(|g| g.field(41).unwrap_or_default())
        .collect();
    assert_eq!(terminals, ["TERM0002", "TERM0001"], "each reversal reaches the issuer, once");
    let originals: Vec<_> = entries(&log)
        .into_iter()
        .filter_map(|x| match x {
            Entry::ReversalQueued(q) if q.advice.is_some() => q.original.map(|k| k.terminal),
            _ => None,
        })
        .collect();
    assert_eq!(originals, [*b"TERM0002", *b"TERM0001"], "each names its own terminal's request");
}

/// Two requests of one originator that differ only in DE 41, one answered and one in
/// flight: a reversal that carries DE 41 names the one with its terminal, wherever that one
/// is — not the other because it is in flight.
#[test]
fn a_reversal_with_de41_names_the_original_with_that_terminal() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    sync(&mut h, &mut log);
    let mut answered = purchase(PAN_A, "000071", "12345678");
    answered.set(de::TERMINAL_ID, "TERM0002").unwrap();
    let in_flight = purchase(PAN_A, "000071", "12345678");
    let pending = answer_one_keep_one(&mut h, &mut log, (acq, iss), &answered, &in_flight);
    assert_eq!(pending.len(), 1, "another request: forwarded");
    h.send(acq, 0, &reversal_of(&answered, "000072"));
    sync(&mut h, &mut log);
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"));
    let e = entries(&log);
    let original = e
        .iter()
        .find_map(|x| match x {
            Entry::ReversalQueued(q) if q.advice.is_some() => q.original.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(&original.terminal, b"TERM0002", "{e:?}");
}

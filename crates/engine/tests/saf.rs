//! Store-and-forward of what participants send (0120, 0220, 0420): stored before it is
//! acknowledged, forwarded until its destination acknowledges it, in order, never ahead of
//! the request a reversal reverses, never twice, and into the exception queue — not away —
//! when its destination never answers.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod harness;

use std::time::{Duration, Instant};

use corridor_engine::{Engine, Journal, WallClock};
use corridor_journal::{recovery::Recovery, request::PanKey, scan_log, GroupCommit};
use corridor_wire::{de, Mti, OwnedMessage};
use harness::*;

const PAN_A: &str = "4761739001010010";
const KEY: [u8; 32] = [0x5A; 32];
const UNIX: u64 = 1_795_644_930;

fn journaled_with(config: corridor_engine::Config, log: &[u8], nonce: u8) -> (Harness, Recovery) {
    let now = Instant::now();
    let policy = GroupCommit { records_max: 64, wait: Duration::ZERO, ..GroupCommit::default() };
    let (next, owed, len) = if log.is_empty() {
        (1, Recovery::default(), None)
    } else {
        let scan = scan_log(&[(1, log)]).unwrap();
        (scan.next_seq, Recovery::of(&scan).unwrap(), Some(log.len() as u64))
    };
    let journal = Journal::new(policy, next, len, PanKey::new(3, &KEY).unwrap(), [nonce; 8]);
    let engine = Engine::with_journal(config, WallClock { at: now, unix_secs: UNIX }, journal);
    (Harness::with_engine(engine, now), owed)
}

fn journaled() -> Harness {
    journaled_with(config(), &[], 7).0
}

/// Syncs every batch due (as the I/O layer does after its fdatasync), appending to `log`.
fn sync(h: &mut Harness, log: &mut Vec<u8>) {
    loop {
        let Some(b) = h.engine.poll_journal(h.now, UNIX * 1000) else {
            // A batch nobody waits for is due a little later (GROUP_WAIT_UNAWAITED): the
            // journal's loop sleeps until then, and so does this.
            match h.engine.journal_timeout() {
                Some(due) if due > h.now => {
                    h.advance(due - h.now);
                    continue;
                }
                _ => return,
            }
        };
        if let Some(header) = b.new_segment {
            log.extend_from_slice(&header.to_bytes());
        }
        log.extend_from_slice(&b.bytes);
        h.engine.handle_journal_synced(b.last_seq);
        h.pump();
    }
}

fn kinds(log: &[u8]) -> Vec<String> {
    let scan = scan_log(&[(1, log)]).unwrap();
    scan.segments[0].1.records.iter().map(|f| format!("{:?}", f.record.kind)).collect()
}

/// An advice (0220) from the acquirer for `amount`.
fn advice(stan: &str, amount: &str) -> OwnedMessage {
    let mut m = purchase(PAN_A, stan, "12345678");
    m.set_mti(Mti::new(220).unwrap());
    m.remove(de::PIN_BLOCK);
    m.set(de::AMOUNT, amount.as_bytes().to_vec()).unwrap();
    m
}

fn mtis(got: &[Got]) -> Vec<u16> {
    got.iter().map(|g| g.msg.mti().value()).collect()
}

#[test]
fn a_participants_reversal_is_acknowledged_once_durable_and_forwarded_until_acknowledged() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    let p = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &p);
    sync(&mut h, &mut log);
    let fwd = h.recv(iss);
    h.answer(iss, &fwd[0], "00");
    sync(&mut h, &mut log);
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"));

    // The terminal reverses it itself.
    let rev = reversal_of(&p, "000043");
    h.send(acq, 0, &rev);
    assert!(h.recv(acq).is_empty() && h.recv(iss).is_empty(), "neither acknowledged nor sent before durable");
    sync(&mut h, &mut log);
    let ack = h.recv(acq);
    assert_eq!((mtis(&ack), ack[0].field(39).as_deref()), (vec![430], Some("00")));
    assert_eq!(ack[0].field(11).as_deref(), Some("000043"), "the sender's STAN back");
    let sent = h.recv(iss);
    assert_eq!(mtis(&sent), [420], "stored, then forwarded");
    assert_eq!(sent[0].field(2).as_deref(), Some(PAN_A));
    assert_eq!(sent[0].field(90).as_deref().map(|d| &d[..4]), Some("0200"));

    // Unanswered: repeated as 0421.
    h.advance(RETRY);
    sync(&mut h, &mut log);
    assert_eq!(mtis(&h.recv_app(iss)), [421]);
    // The terminal repeats its reversal: acknowledged again, not stored or sent again.
    let mut again = rev.clone();
    again.set_mti(Mti::REVERSAL_ADVICE_REPEAT);
    h.send(acq, 0, &again);
    sync(&mut h, &mut log);
    assert_eq!(mtis(&h.recv(acq)), [430]);
    assert!(h.recv(iss).is_empty());
    assert_eq!(h.engine.stats().advices_stored, 1);

    // Acknowledging the first transmission late still completes it.
    h.answer(iss, &sent[0], "00");
    sync(&mut h, &mut log);
    assert_eq!(h.engine.reversals_pending(), 0);
    let k = kinds(&log);
    assert_eq!(k.iter().filter(|k| *k == "ReversalQueued").count(), 1);
    assert_eq!(k.last().map(String::as_str), Some("ReversalAcked"));
}

#[test]
fn a_participants_reversal_of_a_request_in_flight_goes_after_its_answer() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let p = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &p);
    let fwd = h.recv(iss);
    assert_eq!(fwd.len(), 1);
    h.send(acq, 0, &reversal_of(&p, "000043"));
    assert_eq!(mtis(&h.recv(acq)), [430], "stored and acknowledged");
    assert!(h.recv(iss).is_empty(), "not ahead of the request it reverses");
    h.advance(TIMEOUT / 2);
    assert!(h.recv_app(iss).is_empty(), "still in flight: still waiting");
    h.answer(iss, &fwd[0], "00");
    assert_eq!(mtis(&h.recv(acq)), [210]);
    let sent = h.recv(iss);
    assert_eq!(mtis(&sent), [420], "sent once the request was answered");
    h.answer(iss, &sent[0], "00");
    assert_eq!(h.engine.reversals_pending(), 0);
}

#[test]
fn when_the_request_times_out_its_originators_stored_reversal_is_the_only_reversal() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let p = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &p);
    h.recv(iss);
    h.send(acq, 0, &reversal_of(&p, "000043"));
    assert_eq!(mtis(&h.recv(acq)), [430]);
    h.advance(TIMEOUT);
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("68"));
    let sent = h.recv(iss);
    assert_eq!(mtis(&sent), [420], "one reversal, not the switch's and the terminal's");
    assert_eq!(
        sent[0].field(90).as_deref().map(|d| &d[..10]),
        Some("0200000042"),
        "the terminal's, naming it"
    );
    h.answer(iss, &sent[0], "00");
    h.advance(RETRY * 3);
    assert!(h.recv_app(iss).is_empty());
    assert_eq!(h.engine.reversals_pending(), 0);
}

#[test]
fn a_participants_reversal_of_a_request_the_switch_reversed_is_acknowledged_not_forwarded() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let p = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &p);
    h.recv(iss);
    h.advance(TIMEOUT);
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("68"));
    let switch_rev = h.recv(iss);
    assert_eq!(mtis(&switch_rev), [420]);
    h.answer(iss, &switch_rev[0], "00");
    // The terminal, having had no approval, reverses too.
    h.send(acq, 0, &reversal_of(&p, "000043"));
    let ack = h.recv(acq);
    assert_eq!((mtis(&ack), ack[0].field(39).as_deref()), (vec![430], Some("00")));
    h.advance(RETRY);
    assert!(h.recv_app(iss).is_empty(), "the issuer sees one reversal");
    assert_eq!(h.engine.stats().reversals_redundant, 1);
    // A repeat of the original is told 68: it is reversed.
    h.send(acq, 0, &p);
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("68"));
    assert!(h.recv_app(iss).is_empty());
}

#[test]
fn advices_wait_for_their_destination_and_go_in_the_order_they_were_stored() {
    let mut h = Harness::new();
    let acq = h.acquirer_up(L_ACQ);
    let amounts = ["000000000101", "000000000102", "000000000103"];
    for (i, a) in amounts.iter().enumerate() {
        h.send(acq, 0, &advice(&format!("00006{i}"), a));
    }
    let acks = h.recv(acq);
    assert_eq!(mtis(&acks), [230, 230, 230], "stored while the issuer is down");
    assert!(acks.iter().all(|a| a.field(39).as_deref() == Some("00")));
    let iss = h.issuer_up(L_ISS_A1);
    let sent = h.recv(iss);
    assert_eq!(mtis(&sent), [220, 220, 220]);
    let order: Vec<String> = sent.iter().map(|g| g.field(4).unwrap()).collect();
    assert_eq!(order, amounts, "in the order they were stored");
    h.advance(RETRY);
    let repeats = h.recv_app(iss);
    assert_eq!(mtis(&repeats), [221, 221, 221]);
    for g in &repeats {
        h.answer(iss, g, "00");
    }
    assert_eq!(h.engine.reversals_pending(), 0);
}

#[test]
fn an_entry_past_its_limits_moves_to_the_exception_queue_until_an_operator_acts() {
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &advice("000061", "000000000101"));
    h.send(acq, 0, &advice("000062", "000000000102"));
    sync(&mut h, &mut log);
    assert_eq!(mtis(&h.recv(acq)), [230, 230]);
    // The issuer never acknowledges: the first transmission and two repeats (the harness's
    // limit, backing off: RETRY, then 2 × RETRY), then the exception queue (after 4 × RETRY).
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.extend(mtis(&h.recv_app(iss)));
        h.advance(RETRY);
        sync(&mut h, &mut log);
    }
    assert_eq!(seen, [220, 220, 221, 221, 221, 221]);
    assert_eq!(h.engine.reversals_pending(), 0);
    let ex = h.engine.exceptions();
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert_eq!((ex[0].destination.as_str(), ex[0].mti.value(), ex[0].attempts), ("issuer-a", 220, 3));
    assert!(ex[0].from_participant);
    h.advance(RETRY * 10);
    assert!(h.recv_app(iss).is_empty(), "nothing repeats from the exception queue");

    // A restart keeps the exception queue.
    let (mut h2, owed) = journaled_with(config(), &log, 8);
    assert_eq!(owed.exceptions.len(), 2);
    let done = h2.engine.resume(&owed, h2.now, UNIX * 1000);
    assert_eq!((done.exceptions, done.reversals), (2, 0));
    drop(h2);

    // The operator retries one and drops the other.
    assert!(h.engine.saf_retry(ex[0].id, h.now));
    assert!(h.engine.saf_drop(ex[1].id, h.now));
    assert!(!h.engine.saf_drop(ex[1].id, h.now), "gone");
    sync(&mut h, &mut log);
    let retried = h.recv_app(iss);
    assert_eq!(mtis(&retried), [221], "retried as a repeat");
    h.answer(iss, &retried[0], "00");
    sync(&mut h, &mut log);
    assert_eq!((h.engine.reversals_pending(), h.engine.exceptions_len()), (0, 0));
    let k = kinds(&log);
    for kind in ["ReversalAbandoned", "SafRetried", "SafDropped", "ReversalAcked"] {
        assert!(k.iter().any(|x| x == kind), "{kind} journaled: {k:?}");
    }
    let owed = Recovery::of(&scan_log(&[(1, &log[..])]).unwrap()).unwrap();
    assert!(owed.reversals.is_empty() && owed.exceptions.is_empty(), "the journal agrees: nothing owed");
}

#[test]
fn an_entry_older_than_its_age_limit_moves_to_the_exception_queue() {
    let mut c = config();
    c.settings.reversal_repeats_max = 1000;
    c.settings.saf_age_max = RETRY * 3;
    let mut h = Harness::with(c);
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &advice("000061", "000000000101"));
    h.recv(acq);
    // Sent at 0, RETRY, 3 × RETRY, 7 × RETRY (backing off): at that one it is past its age.
    for _ in 0..6 {
        h.advance(RETRY);
        h.recv_app(iss);
    }
    assert_eq!(
        (h.engine.reversals_pending(), h.engine.exceptions_len()),
        (1, 0),
        "young enough at its last try"
    );
    h.advance(RETRY);
    h.recv_app(iss);
    assert_eq!((h.engine.reversals_pending(), h.engine.exceptions_len()), (0, 1));
}

#[test]
fn after_a_restart_a_stored_reversal_of_an_open_request_is_its_only_reversal() {
    // Run 1: a purchase forwarded, never answered; the terminal's reversal of it stored and
    // acknowledged; the switch dies.
    let mut h = journaled();
    let mut log = Vec::new();
    let (iss, acq) = h.both_up();
    let p = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &p);
    sync(&mut h, &mut log);
    assert_eq!(h.recv(iss).len(), 1);
    h.send(acq, 0, &reversal_of(&p, "000043"));
    sync(&mut h, &mut log);
    assert_eq!(mtis(&h.recv(acq)), [430]);
    drop(h);

    // Run 2: the open request is reversed once — by the stored reversal.
    let (mut h, owed) = journaled_with(config(), &log, 9);
    let done = h.engine.resume(&owed, h.now, UNIX * 1000);
    assert_eq!((done.reversed, done.reversals), (1, 1), "{done:?}");
    let iss = h.issuer_up(L_ISS_A1);
    sync(&mut h, &mut log);
    let sent = h.recv(iss);
    assert_eq!(mtis(&sent), [420], "one reversal reaches the issuer");
    h.answer(iss, &sent[0], "00");
    sync(&mut h, &mut log);
    let k = kinds(&log);
    assert_eq!(k.iter().filter(|k| *k == "ReversalQueued").count(), 1, "{k:?}");
    // A repeat of the purchase is told 68; of the reversal, acknowledged again.
    let acq = h.acquirer_up(L_ACQ);
    h.send(acq, 0, &p);
    sync(&mut h, &mut log);
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("68"));
    let mut again = reversal_of(&p, "000043");
    again.set_mti(Mti::REVERSAL_ADVICE_REPEAT);
    h.send(acq, 0, &again);
    sync(&mut h, &mut log);
    assert_eq!(mtis(&h.recv(acq)), [430]);
    assert!(h.recv_app(iss).is_empty(), "the issuer sees neither again");
}

#[test]
fn after_a_restart_a_participants_reversal_of_a_request_the_switch_reversed_is_not_forwarded() {
    // On a classic link DE 90 is text; on a native one, BCD: both name the original.
    for (spec, acq_id) in [(L_ACQ, "12345678"), (L_ACQ2, "87654321")] {
        let mut h = journaled();
        let mut log = Vec::new();
        let iss = h.issuer_up(L_ISS_A1);
        let acq = if spec == L_ACQ { h.acquirer_up(spec) } else { h.up(spec) };
        let p = purchase(PAN_A, "000042", acq_id);
        h.send(acq, 0, &p);
        sync(&mut h, &mut log);
        assert_eq!(h.recv(iss).len(), 1);
        drop(h);
        let (mut h, owed) = journaled_with(config(), &log, 9);
        let done = h.engine.resume(&owed, h.now, UNIX * 1000);
        assert_eq!((done.reversed, done.reversals), (1, 0), "{done:?}");
        let acq = if spec == L_ACQ { h.acquirer_up(spec) } else { h.up(spec) };
        let mut rev = reversal_of(&p, "000043");
        let mut data = rev.get(de::ORIGINAL_DATA).unwrap().to_vec();
        data[20..31].copy_from_slice(format!("{acq_id:0>11}").as_bytes());
        rev.set(de::ORIGINAL_DATA, data).unwrap();
        h.send(acq, 1, &rev);
        sync(&mut h, &mut log);
        assert_eq!(mtis(&h.recv(acq)), [430]);
        let iss = h.issuer_up(L_ISS_A1);
        sync(&mut h, &mut log);
        let sent = h.recv(iss);
        assert_eq!(mtis(&sent), [420], "the switch's reversal only (link {spec})");
        assert_eq!(h.engine.stats().reversals_redundant, 1);
    }
}

#[test]
fn a_participants_reversal_names_its_original_by_the_stan_its_classic_destination_saw() {
    // Issuer B's link is classic: it saw the switch's STAN on the purchase, so that is the
    // STAN the terminal's reversal must name in DE 90 when it reaches it.
    let mut h = Harness::new();
    let iss = h.up(L_ISS_B);
    let acq = h.acquirer_up(L_ACQ);
    let p = purchase("5500000000000004", "000042", "12345678");
    h.send(acq, 0, &p);
    let fwd = h.recv(iss);
    let seen = fwd[0].field(11).unwrap();
    assert_ne!(seen, "000042", "the switch's own STAN on a classic link");
    h.answer(iss, &fwd[0], "00");
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"));
    h.send(acq, 0, &reversal_of(&p, "000043"));
    assert_eq!(mtis(&h.recv(acq)), [430]);
    let rev = h.recv(iss);
    assert_eq!(mtis(&rev), [420]);
    let de90 = rev[0].field(90).unwrap();
    assert_eq!((&de90[..4], &de90[4..10]), ("0200", seen.as_str()), "DE 90 names what the issuer saw");
    assert_eq!(&de90[10..20], "1125221530", "the original's DE 7 kept");
}

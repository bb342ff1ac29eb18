//! Every transaction rule of the switch, in memory with a manual clock.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod harness;

use std::time::Duration;

use corridor_engine::CloseReason;
use corridor_wire::{de, Mti, NativeHeader, OwnedMessage, Stan};
use harness::*;

const PAN_A: &str = "4761739001010010";

#[test]
fn request_is_routed_translated_and_its_response_matched_back() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let req = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &req);
    let at_issuer = h.recv(iss);
    assert_eq!(at_issuer.len(), 1);
    let fwd = &at_issuer[0];
    assert_eq!(fwd.msg.mti(), Mti::FINANCIAL_REQUEST);
    // Translated from iso87-ascii to native with every field intact.
    assert_eq!(fwd.msg, req, "the issuer sees the acquirer's fields unchanged");
    assert_eq!(h.engine.link_status(iss).unwrap().inflight_out, 1);

    h.answer(iss, fwd, "00");
    let back = h.recv(acq);
    assert_eq!(back.len(), 1, "exactly one answer");
    assert_eq!(back[0].msg.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(back[0].field(39).as_deref(), Some("00"));
    assert_eq!(back[0].field(11).as_deref(), Some("000042"), "the originator's STAN comes back");
    assert_eq!(back[0].field(2).as_deref(), Some(PAN_A));
    assert_eq!(h.engine.link_status(iss).unwrap().inflight_out, 0);
    assert_eq!(h.engine.link_status(acq).unwrap().inflight_in, 0);
    assert_eq!(h.engine.stats().relayed, 1);
}

#[test]
fn native_correlation_is_rewritten_per_link_and_restored() {
    let mut h = Harness::new();
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    h.send(acq2, 0xABCD, &purchase(PAN_A, "000007", "87654321"));
    let fwd = h.recv(iss).pop().unwrap();
    assert_ne!(fwd.correlation, 0xABCD, "the issuer sees the switch's correlation, not the acquirer's");
    h.answer(iss, &fwd, "05");
    let back = h.recv(acq2).pop().unwrap();
    assert_eq!(back.correlation, 0xABCD);
    assert_eq!(back.field(39).as_deref(), Some("05"));
    assert_eq!(back.flags & NativeHeader::FLAG_SWITCH_ORIGIN, 0, "a relayed answer is not switch-made");
}

#[test]
fn two_acquirers_with_the_same_stan_never_collide_on_a_classic_link() {
    let mut h = Harness::new();
    let iss_b = h.up(L_ISS_B);
    let acq = h.acquirer_up(L_ACQ);
    let acq2 = h.up(L_ACQ2);
    let mut r1 = purchase("5500000000000004", "000100", "12345678");
    let mut r2 = purchase("5500000000000004", "000100", "87654321");
    r1.set(de::RRN, "AAAAAAAAAAAA").unwrap();
    r2.set(de::RRN, "BBBBBBBBBBBB").unwrap();
    h.send(acq, 0, &r1);
    h.send(acq2, 9, &r2);
    let at_b = h.recv(iss_b);
    assert_eq!(at_b.len(), 2);
    assert_ne!(at_b[0].field(11), at_b[1].field(11), "the switch assigns its own STAN per outbound link");
    // Answer in reverse order.
    h.answer(iss_b, &at_b[1], "00");
    h.answer(iss_b, &at_b[0], "51");
    let back1 = h.recv(acq);
    let back2 = h.recv(acq2);
    assert_eq!((back1.len(), back2.len()), (1, 1));
    assert_eq!(back1[0].field(37).as_deref(), Some("AAAAAAAAAAAA"));
    assert_eq!(back1[0].field(11).as_deref(), Some("000100"));
    assert_eq!(back1[0].field(39).as_deref(), Some("51"));
    assert_eq!(back2[0].field(37).as_deref(), Some("BBBBBBBBBBBB"));
    assert_eq!(back2[0].field(11).as_deref(), Some("000100"));
    assert_eq!(back2[0].correlation, 9);
}

#[test]
fn receiving_institution_routes_before_the_bin() {
    let mut h = Harness::new();
    let iss_a = h.issuer_up(L_ISS_A1);
    let iss_b = h.up(L_ISS_B);
    let acq = h.acquirer_up(L_ACQ);
    let mut req = purchase(PAN_A, "000001", "12345678");
    req.set(de::RECEIVER_ID, "44556677").unwrap();
    h.send(acq, 0, &req);
    assert_eq!(h.recv(iss_b).len(), 1, "DE 100 names issuer B");
    assert!(h.recv(iss_a).is_empty());
}

#[test]
fn switch_made_declines() {
    let mut h = Harness::new();
    let acq = h.acquirer_up(L_ACQ);
    // No route: 92, with the request's fields echoed and no PIN block.
    h.send(acq, 0, &purchase("9999999999999999", "000001", "12345678"));
    let d = h.recv(acq).pop().unwrap();
    assert_eq!(d.msg.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(d.field(39).as_deref(), Some("92"));
    assert_eq!(d.field(11).as_deref(), Some("000001"));
    assert_eq!(d.field(37).as_deref(), Some("533022000042"));
    assert!(d.msg.get(de::PIN_BLOCK).is_none(), "a decline never carries the PIN block back");
    // Destination with no link up: 91.
    h.send(acq, 0, &purchase(PAN_A, "000002", "12345678"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("91"));
    // Spoofed DE 32: 63.
    h.send(acq, 0, &purchase(PAN_A, "000003", "87654321"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("63"));
    // Missing DE 32 is a spoof too: a request must say who sends it.
    let mut anon = purchase(PAN_A, "000004", "12345678");
    anon.remove(de::ACQUIRER_ID);
    h.send(acq, 0, &anon);
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("63"));
    // No STAN: 30.
    let mut no_stan = purchase(PAN_A, "000005", "12345678");
    no_stan.remove(de::STAN);
    h.send(acq, 0, &no_stan);
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("30"));
    let s = h.engine.stats();
    assert_eq!(
        (
            s.declines_for(corridor_wire::ResponseCode::NO_ROUTE),
            s.declines_for(corridor_wire::ResponseCode::SECURITY_VIOLATION)
        ),
        (1, 2)
    );
}

#[test]
fn malformed_but_readable_request_gets_a_format_error_and_the_link_stays_up() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    // DE 32 (n ..11) with a letter: the body breaks the dictionary, the framing is intact.
    let body = purchase(PAN_A, "000042", "12345678").to_bytes(corridor_wire::Dialect::Iso87Ascii).unwrap();
    let mut bad = body.to_vec();
    let pos = bad.windows(10).position(|w| w == b"0812345678").unwrap();
    bad[pos + 5] = b'X';
    let mut wire = (bad.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(&bad);
    h.send_raw(acq, &wire);
    let d = h.recv(acq).pop().expect("answered");
    assert_eq!(d.field(39).as_deref(), Some("30"));
    assert_eq!(d.field(11).as_deref(), Some("000042"), "fields before the broken one are echoed");
    assert!(h.closed.is_empty(), "a body error does not close the link");
    // The link still carries traffic.
    h.send(acq, 0, &purchase(PAN_A, "000043", "12345678"));
    assert_eq!(h.recv(iss).len(), 1);
}

#[test]
fn sign_on_is_enforced() {
    let mut h = Harness::new();
    let _iss = h.issuer_up(L_ISS_A1);
    let acq = h.up(L_ACQ);
    h.send(acq, 0, &purchase(PAN_A, "000001", "12345678"));
    assert_eq!(
        h.recv(acq).pop().unwrap().field(39).as_deref(),
        Some("91"),
        "no financial traffic before sign-on"
    );
    let mut on = OwnedMessage::new(Mti::NETWORK_REQUEST);
    on.set(de::TRANSMISSION_TIME, "1125221500")
        .unwrap()
        .set(de::STAN, "000009")
        .unwrap()
        .set(de::NETWORK_CODE, "001")
        .unwrap();
    h.send(acq, 0, &on);
    let ack = h.recv(acq).pop().unwrap();
    assert_eq!(
        (ack.msg.mti(), ack.field(39).as_deref(), ack.field(11).as_deref()),
        (Mti::NETWORK_RESPONSE, Some("00"), Some("000009"))
    );
    h.send(acq, 0, &purchase(PAN_A, "000002", "12345678"));
    assert!(h.recv(acq).is_empty(), "forwarded, so no decline");
    // Sign-off stops financial traffic again.
    on.set(de::NETWORK_CODE, "002").unwrap();
    h.send(acq, 0, &on);
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("00"));
    h.send(acq, 0, &purchase(PAN_A, "000003", "12345678"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("91"));
}

#[test]
fn a_dialed_link_carries_nothing_until_its_sign_on_is_answered() {
    let mut h = Harness::new();
    let iss = h.up(L_ISS_A1);
    let sign_on = h.recv(iss).pop().unwrap();
    let acq = h.acquirer_up(L_ACQ);
    h.send(acq, 0, &purchase(PAN_A, "000001", "12345678"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("91"));
    h.answer(iss, &sign_on, "00");
    h.send(acq, 0, &purchase(PAN_A, "000002", "12345678"));
    assert_eq!(h.recv(iss).len(), 1);
}

#[test]
fn duplicate_of_a_request_in_flight_is_declined_94() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let req = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &req);
    h.send(acq, 0, &req);
    let d = h.recv(acq);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field(39).as_deref(), Some("94"));
    assert_eq!(h.recv(iss).len(), 1, "never forwarded twice");
    // Another terminal with the same STAN is not a duplicate.
    let mut other = req.clone();
    other.set(de::TERMINAL_ID, "TERM0002").unwrap();
    h.send(acq, 0, &other);
    assert_eq!(h.recv(iss).len(), 1);
}

#[test]
fn a_destination_at_its_in_flight_limit_declines_91_instead_of_queueing() {
    // The originator has room for 8; the issuer's one link takes 4.
    let mut c = config();
    c.links[L_ACQ2].inflight_max = 8;
    let mut h = Harness::with(c);
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    // The issuer link takes 4 in flight.
    for i in 0..5u64 {
        h.send(acq2, i, &purchase(PAN_A, &format!("{:06}", i + 1), "87654321"));
    }
    assert_eq!(h.recv(iss).len(), 4);
    let d = h.recv(acq2);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].correlation, d[0].field(39).as_deref()), (4, Some("91")));
    assert_ne!(d[0].flags & NativeHeader::FLAG_SWITCH_ORIGIN, 0, "switch-made");
    assert_eq!(h.engine.stats().inflight_limit_hits, 1);
}

#[test]
fn load_spreads_across_links_and_fails_over_when_one_dies() {
    let mut h = Harness::new();
    let a1 = h.issuer_up(L_ISS_A1);
    let a2 = h.issuer_up(L_ISS_A2);
    let acq2 = h.up(L_ACQ2);
    for i in 0..4u64 {
        h.send(acq2, i, &purchase(PAN_A, &format!("{:06}", i + 1), "87654321"));
    }
    assert_eq!(h.recv(a1).len(), 2, "least outstanding spreads evenly");
    let on_a2 = h.recv(a2);
    assert_eq!(on_a2.len(), 2);
    for g in &on_a2 {
        h.answer(a2, g, "00");
    }
    h.engine.link_down(a1, h.now);
    for i in 4..6u64 {
        h.send(acq2, i, &purchase(PAN_A, &format!("{:06}", i + 1), "87654321"));
    }
    assert_eq!(h.recv(a2).len(), 2, "everything goes to the surviving link");
}

#[test]
fn timeout_answers_68_and_reverses_until_acknowledged() {
    let mut h = Harness::new();
    let (iss, acq, fwd) = h.forwarded(PAN_A, "000042");
    h.advance(TIMEOUT - Duration::from_millis(1));
    let early = h.recv(acq);
    assert!(early.is_empty(), "not yet: {early:?}");
    h.advance(Duration::from_millis(1));
    let d = h.recv(acq);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field(39).as_deref(), Some("68"));
    assert_eq!(d[0].field(11).as_deref(), Some("000042"));
    let rev = h.recv(iss);
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0].msg.mti(), Mti::REVERSAL_ADVICE);
    let de90 = rev[0].field(90).unwrap();
    assert_eq!(&de90[..4], "0200");
    assert_eq!(&de90[4..10], fwd.field(11).unwrap(), "DE 90 carries the STAN the issuer saw");
    assert_eq!(&de90[10..20], "1125221530");
    assert_eq!(&de90[20..31], "00012345678");
    assert_eq!(rev[0].field(39).as_deref(), Some("68"));
    assert!(rev[0].msg.get(de::PIN_BLOCK).is_none());
    // Unacknowledged: repeated as 0421.
    h.advance(RETRY);
    let rep = h.recv(iss);
    assert_eq!(rep.len(), 1);
    assert_eq!(rep[0].msg.mti(), Mti::REVERSAL_ADVICE_REPEAT);
    assert_eq!(rep[0].field(90), rev[0].field(90));
    // Acknowledged: no more repeats.
    h.answer(iss, &rep[0], "00");
    assert_eq!(h.engine.reversals_pending(), 0);
    h.advance(RETRY * 3);
    assert!(h.recv_app(iss).is_empty(), "no reversal after the 0430");
    assert_eq!(h.engine.stats().reversals_acked, 1);
    let _ = h.recv_app(acq);
    // The late original response is never relayed.
    h.answer(iss, &fwd, "05");
    assert!(h.recv_app(acq).is_empty());
    assert_eq!(h.engine.stats().late_responses, 1);
}

#[test]
fn a_late_acknowledgement_of_the_first_reversal_still_completes_it() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    let _ = h.recv(iss);
    h.advance(TIMEOUT);
    let first = h.recv(iss).pop().unwrap();
    h.advance(RETRY);
    let repeat = h.recv(iss).pop().unwrap();
    assert_eq!(repeat.msg.mti(), Mti::REVERSAL_ADVICE_REPEAT);
    h.answer(iss, &first, "00");
    assert_eq!(h.engine.reversals_pending(), 0);
    h.advance(RETRY * 3);
    assert!(h.recv_app(iss).is_empty());
}

#[test]
fn an_unacknowledged_reversal_is_abandoned_after_its_repeats() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    let _ = h.recv(iss);
    h.advance(TIMEOUT);
    // Sent at once, then repeated with backoff: the waits are RETRY, 2 × RETRY, 4 × RETRY.
    let mut sent = Vec::new();
    for tick in 0..10u32 {
        sent.extend(h.recv_app(iss).into_iter().map(|g| (tick, g.msg.mti().value())));
        if tick == 6 {
            assert_eq!(h.engine.stats().reversals_abandoned, 0, "the last repeat still awaited");
        }
        h.advance(RETRY);
    }
    assert_eq!(
        sent,
        vec![(0, 420), (1, 421), (3, 421)],
        "one 0420 and reversal_repeats_max repeats, backing off"
    );
    assert_eq!(h.engine.reversals_pending(), 0);
}

#[test]
fn a_late_approval_after_the_reversal_completed_is_reversed_again() {
    let mut h = Harness::new();
    let (iss, acq, fwd) = h.forwarded(PAN_A, "000042");
    h.advance(TIMEOUT);
    let _ = h.recv(acq);
    let rev = h.recv(iss).pop().unwrap();
    h.answer(iss, &rev, "00");
    // Now the approval arrives, late: it is not relayed, and it is reversed.
    h.answer(iss, &fwd, "00");
    assert!(h.recv(acq).is_empty());
    let again = h.recv(iss);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].msg.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(again[0].field(90), rev.field(90));
    assert_eq!(h.engine.stats().approvals_reversed, 1);
}

#[test]
fn a_late_approval_while_the_reversal_repeats_starts_no_second_one() {
    let mut h = Harness::new();
    let (iss, _acq, fwd) = h.forwarded(PAN_A, "000042");
    h.advance(TIMEOUT);
    assert_eq!(h.recv(iss).len(), 1);
    h.answer(iss, &fwd, "00");
    assert!(h.recv(iss).is_empty(), "the reversal under way covers it");
    assert_eq!(h.engine.reversals_pending(), 1);
}

#[test]
fn a_response_exactly_at_the_deadline_is_relayed_if_it_comes_first() {
    let mut h = Harness::new();
    let (iss, acq, fwd) = h.forwarded(PAN_A, "000042");
    h.now += TIMEOUT; // the clock reaches the deadline, the timer has not run yet
    h.answer(iss, &fwd, "00");
    h.engine.handle_timeout(h.now);
    h.pump();
    let back = h.recv(acq);
    assert_eq!(back.len(), 1, "exactly one answer");
    assert_eq!(back[0].field(39).as_deref(), Some("00"));
    assert!(h.recv(iss).is_empty(), "no reversal");
    assert_eq!(h.engine.stats().timeouts, 0);
}

#[test]
fn a_response_after_the_timer_fired_at_the_deadline_is_late() {
    let mut h = Harness::new();
    let (iss, acq, fwd) = h.forwarded(PAN_A, "000042");
    h.advance(TIMEOUT);
    h.answer(iss, &fwd, "05");
    let back = h.recv(acq);
    assert_eq!(back.len(), 1, "exactly one answer: the 68");
    assert_eq!(back[0].field(39).as_deref(), Some("68"));
}

#[test]
fn stan_wraps_at_999999_on_a_classic_link() {
    let mut h = Harness::new();
    let iss_b = h.up(L_ISS_B);
    let acq = h.acquirer_up(L_ACQ);
    h.engine.set_link_stan(iss_b, Stan::new(999_998).unwrap());
    for (i, stan) in ["000001", "000002", "000003"].iter().enumerate() {
        let mut r = purchase("5500000000000004", stan, "12345678");
        r.set(de::RRN, format!("RRN{i:09}").into_bytes()).unwrap();
        h.send(acq, 0, &r);
    }
    let got = h.recv(iss_b);
    let stans: Vec<_> = got.iter().map(|g| g.field(11).unwrap()).collect();
    assert_eq!(stans, vec!["999999", "000001", "000002"]);
    for g in got.iter().rev() {
        h.answer(iss_b, g, "00");
    }
    let back = h.recv(acq);
    let mut rrns: Vec<_> = back.iter().map(|g| (g.field(37).unwrap(), g.field(11).unwrap())).collect();
    rrns.sort();
    assert_eq!(
        rrns,
        vec![
            ("RRN000000000".into(), "000001".into()),
            ("RRN000000001".into(), "000002".into()),
            ("RRN000000002".into(), "000003".into())
        ]
    );
}

#[test]
fn idle_links_are_echoed_and_marked_down_after_missed_echoes() {
    let mut h = Harness::new();
    let a1 = h.issuer_up(L_ISS_A1);
    let a2 = h.issuer_up(L_ISS_A2);
    // a2 answers its echoes; a1 does not.
    for _ in 0..3 {
        h.advance(ECHO);
        let echo = h.recv(a2);
        assert_eq!(echo.len(), 1);
        assert_eq!(echo[0].field(70).as_deref(), Some("301"));
        h.answer(a2, &echo[0], "00");
        let _ = h.recv(a1);
    }
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0], (a1, CloseReason::EchoMissed));
    assert_eq!(h.engine.stats().echo_failures, 1);
    // Routing fails over to a2.
    let acq2 = h.up(L_ACQ2);
    h.send(acq2, 1, &purchase(PAN_A, "000001", "87654321"));
    assert_eq!(h.recv(a2).len(), 1);
}

#[test]
fn an_echo_never_answered_on_a_busy_link_does_not_use_up_its_in_flight_count() {
    // The issuer keeps the link busy with echoes of its own (so it is never idle long enough
    // to be closed) but never answers the switch's: that echo's wait ends on its deadline,
    // which once took a request slot the echo never held.
    let mut h = Harness::new();
    let iss = h.issuer_up(L_ISS_A1);
    let mut ping = OwnedMessage::new(Mti::NETWORK_REQUEST);
    ping.set(de::TRANSMISSION_TIME, "1125221500").unwrap().set(de::STAN, "000009").unwrap();
    ping.set(de::NETWORK_CODE, "301").unwrap();
    h.advance(ECHO);
    assert_eq!(h.recv(iss).len(), 1, "the switch's echo, left unanswered");
    for _ in 0..8 {
        h.advance(ECHO / 2);
        h.send(iss, 7, &ping);
        let _ = h.recv(iss);
    }
    assert!(h.closed.is_empty(), "busy: not closed");
    let acq2 = h.up(L_ACQ2);
    for i in 0..4 {
        h.send(acq2, i, &purchase(PAN_A, &format!("00000{i}"), "87654321"));
    }
    assert_eq!(h.recv(iss).len(), 4, "its whole in-flight limit still there");
}

#[test]
fn garbage_closes_that_link_only() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let acq2 = h.up(L_ACQ2);
    h.send_raw(acq2, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].0, acq2);
    assert!(matches!(h.closed[0].1, CloseReason::Framing(_)));
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    let fwd = h.recv(iss).pop().unwrap();
    h.answer(iss, &fwd, "00");
    assert_eq!(h.recv(acq).len(), 1, "the other links carry on");
}

#[test]
fn an_approval_that_cannot_be_delivered_is_reversed() {
    let mut h = Harness::new();
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    h.send(acq2, 5, &purchase(PAN_A, "000042", "87654321"));
    let fwd = h.recv(iss).pop().unwrap();
    h.engine.link_down(acq2, h.now);
    h.answer(iss, &fwd, "00");
    let rev = h.recv(iss);
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0].msg.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(h.engine.requests_pending(), 0);
}

#[test]
fn requests_to_a_dead_link_are_answered_at_their_timeout() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    let _ = h.recv(iss);
    h.engine.link_down(iss, h.now);
    h.advance(TIMEOUT);
    let d = h.recv(acq);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field(39).as_deref(), Some("68"));
    // The reversal waits for a link to the issuer.
    assert_eq!(h.engine.reversals_pending(), 1);
    let iss2 = h.issuer_up(L_ISS_A2);
    h.advance(RETRY);
    let rev = h.recv(iss2);
    assert_eq!(rev.iter().filter(|g| g.msg.mti() == Mti::REVERSAL_ADVICE).count(), 1);
}

#[test]
fn drain_declines_new_requests_and_waits_for_those_in_flight() {
    let mut h = Harness::new();
    let (iss, acq, fwd) = h.forwarded(PAN_A, "000042");
    h.engine.begin_drain(h.now);
    h.pump();
    let off = h.recv(iss);
    assert_eq!(off.len(), 1);
    assert_eq!(off[0].field(70).as_deref(), Some("002"), "dialed links are signed off");
    assert!(!h.engine.is_drained());
    h.send(acq, 0, &purchase(PAN_A, "000043", "12345678"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("91"));
    h.answer(iss, &fwd, "00");
    assert_eq!(
        h.recv(acq).pop().unwrap().field(39).as_deref(),
        Some("00"),
        "in-flight requests still get answers"
    );
    assert!(h.engine.is_drained());
}

#[test]
fn a_drain_that_runs_out_of_time_answers_what_is_left_with_68() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &purchase(PAN_A, "000042", "12345678"));
    let _ = h.recv(iss);
    h.engine.begin_drain(h.now);
    h.engine.expire_requests(h.now);
    h.pump();
    let d = h.recv(acq);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field(39).as_deref(), Some("68"));
    assert!(h.engine.is_drained());
    assert!(h.recv(iss).iter().any(|g| g.msg.mti() == Mti::REVERSAL_ADVICE));
}

#[test]
fn a_peer_that_stops_reading_is_closed_and_only_it() {
    let mut h = Harness::new();
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    // acq2 echoes a lot and never reads: the engine's batch for it grows to the bound.
    let mut echo = OwnedMessage::new(Mti::NETWORK_REQUEST);
    echo.set(de::STAN, "000001")
        .unwrap()
        .set(de::NETWORK_CODE, "301")
        .unwrap()
        .set(FieldIdExt::de(48), vec![b'x'; 999])
        .unwrap();
    let spec_body = echo.to_bytes(corridor_wire::Dialect::Native).unwrap();
    let mut frame = bytes::BytesMut::new();
    corridor_wire::NativeFramer::new(corridor_wire::FRAME_BYTES_MAX)
        .encode(0, 1, &spec_body, &mut frame)
        .unwrap();
    let mut wire = bytes::BytesMut::new();
    for _ in 0..5000 {
        wire.extend_from_slice(&frame);
    }
    let mut buf = wire;
    h.engine.handle_read(acq2, &mut buf, h.now);
    // The test does not pump: acq2's peer "does not read".
    while let Some(corridor_engine::Event::Close { link, reason }) = h.engine.poll_event() {
        h.closed.push((link, reason));
    }
    assert_eq!(h.closed, vec![(acq2, CloseReason::Stalled)]);
    assert!(h.engine.link_status(iss).is_some_and(|s| !s.closing));
}

/// DE numbers by value, for fields without a name in `de`.
struct FieldIdExt;
impl FieldIdExt {
    fn de(n: u8) -> corridor_wire::FieldId {
        corridor_wire::FieldId::new(n).unwrap()
    }
}

#[test]
fn a_request_that_cannot_be_forwarded_gets_96() {
    // Issuer B's link takes bodies of at most 100 bytes; the request, translated to its
    // dialect, is longer: the switch cannot forward it and says so.
    let mut config = config();
    config.links[L_ISS_B].frame_bytes_max = 100;
    let mut h = Harness::with(config);
    let iss_b = h.up(L_ISS_B);
    let acq2 = h.up(L_ACQ2);
    let mut req = purchase("5500000000000004", "000001", "87654321");
    req.set(de::MERCHANT_ID, "MERCHANT0000001").unwrap();
    req.set(FieldIdExt::de(43), "CORRIDOR TEST SHOP       SINGAPORE    SG").unwrap();
    h.send(acq2, 3, &req);
    let d = h.recv(acq2);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].correlation, d[0].field(39).as_deref()), (3, Some("96")));
    assert!(h.recv(iss_b).is_empty(), "nothing half-written reaches the issuer");
    assert_eq!(h.engine.requests_pending(), 0);
}

#[test]
fn requests_for_two_acquiring_institutions_of_one_participant_are_not_duplicates() {
    // A network sends for many acquirers: the same STAN, time and terminal under two DE 32
    // values are two requests, and each keeps its own outcome.
    let mut c = config();
    c.participants[ACQ].acquirer_ids.push(id("12345679"));
    let mut h = Harness::with(c);
    let (iss, acq) = h.both_up();
    for (acquirer, code) in [("12345678", "00"), ("12345679", "05")] {
        h.send(acq, 0, &purchase(PAN_A, "000042", acquirer));
        let fwd = h.recv(iss);
        assert_eq!(fwd.len(), 1, "DE 32 {acquirer} forwarded");
        h.answer(iss, &fwd[0], code);
        assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some(code));
    }
    for (acquirer, code) in [("12345678", "00"), ("12345679", "05")] {
        h.send(acq, 0, &purchase(PAN_A, "000042", acquirer));
        assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some(code), "each repeat gets its own outcome");
    }
    assert!(h.recv_app(iss).is_empty());
}

#[test]
fn a_repeat_of_a_completed_request_is_answered_from_its_outcome_never_forwarded_again() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let req = purchase(PAN_A, "000042", "12345678");
    h.send(acq, 0, &req);
    let fwd = h.recv(iss).pop().unwrap();
    let mut approval = fwd.msg.clone();
    approval.set_mti(Mti::FINANCIAL_RESPONSE);
    approval.set(de::RESPONSE_CODE, "00").unwrap().set(de::AUTH_ID, "A1B2C3").unwrap();
    approval.remove(de::PIN_BLOCK);
    h.send(iss, fwd.correlation, &approval);
    assert_eq!(h.recv(acq).pop().unwrap().field(38).as_deref(), Some("A1B2C3"));
    // At once, a second later, and on another connection of the same participant.
    h.send(acq, 0, &req);
    h.advance(Duration::from_secs(1));
    let acq_b = h.acquirer_up(L_ACQ);
    h.send(acq_b, 0, &req);
    for (link, n) in [(acq, 1), (acq_b, 1)] {
        let answers = h.recv(link);
        assert_eq!(answers.len(), n);
        for a in &answers {
            assert_eq!(
                (a.field(39).as_deref(), a.field(38).as_deref()),
                (Some("00"), Some("A1B2C3")),
                "the same answer"
            );
        }
    }
    assert!(h.recv_app(iss).is_empty(), "the issuer saw it once");
    assert_eq!(h.engine.stats().duplicates_replayed, 2);
    // Past the window, the same key is a new request.
    h.advance(Duration::from_secs(86_401));
    h.send(acq, 0, &req);
    assert_eq!(h.recv_app(iss).len(), 1, "forwarded again after the window");
}

/// The frames of one read are handled as the same frames read one at a time: what the
/// engine reads ahead of the frame it handles (the next one's parse, what its admission
/// reads) serves that next frame only — in a read of requests that pass, one that breaks
/// the dictionary, one that claims another's institution, repeats of one in flight and of
/// one completed, and in reads of answers on a native link and a classic one.
#[test]
fn frames_read_together_are_handled_as_frames_read_one_at_a_time() {
    let run = |together: bool| {
        let mut h = Harness::new();
        let (iss, acq) = h.both_up();
        let iss_b = h.up(L_ISS_B);
        h.send(acq, 0, &purchase(PAN_A, "000099", "12345678"));
        let done = h.recv(iss).pop().unwrap();
        h.answer(iss, &done, "00");
        assert_eq!(h.recv(acq).len(), 1);
        let mut broken = purchase(PAN_A, "000003", "12345678")
            .to_bytes(corridor_wire::Dialect::Iso87Ascii)
            .unwrap()
            .to_vec();
        // DE 4, fixed: the walk goes on past it to DE 11, and the answer is 30.
        let amount = broken.windows(12).position(|w| w == b"000000012500").unwrap();
        broken[amount + 5] = b'X';
        let requests = [
            Ok(purchase(PAN_A, "000001", "12345678")),
            Ok(purchase("5100000000000001", "000002", "12345678")),
            Err(broken),
            Ok(purchase(PAN_A, "000004", "99999999")),
            Ok(purchase(PAN_A, "000001", "12345678")),
            Ok(purchase(PAN_A, "000099", "12345678")),
            Ok(purchase(PAN_A, "000005", "12345678")),
        ];
        let mut reads = vec![bytes::BytesMut::new()];
        for r in &requests {
            if !together {
                reads.push(bytes::BytesMut::new());
            }
            let wire = reads.last_mut().unwrap();
            match r {
                Ok(m) => h.frame(acq, 0, m, wire),
                Err(body) => corridor_wire::LengthDelimited::new(
                    corridor_wire::LengthHeader::Bin2,
                    corridor_wire::FRAME_BYTES_MAX,
                )
                .encode(body, wire)
                .unwrap(),
            }
        }
        for r in reads {
            h.send_raw(acq, &r);
        }
        let declined = h.recv(acq);
        let (to_a, to_b) = (h.recv_app(iss), h.recv_app(iss_b));
        for (link, got) in [(iss, &to_a), (iss_b, &to_b)] {
            let mut wire = bytes::BytesMut::new();
            for g in got {
                let mut m = g.msg.clone();
                m.set_mti(g.msg.mti().response().unwrap());
                m.set(de::RESPONSE_CODE, "00").unwrap().set(de::AUTH_ID, "A1B2C3").unwrap();
                m.remove(de::PIN_BLOCK);
                h.frame(link, g.correlation, &m, &mut wire);
                if !together {
                    h.send_raw(link, &wire.split());
                }
            }
            h.send_raw(link, &wire);
        }
        let answered = h.recv(acq);
        let codes = |g: &[Got]| g.iter().map(|g| (g.field(11), g.field(39))).collect::<Vec<_>>();
        let sent = |g: &[Got]| g.iter().map(|g| (g.correlation, g.msg.clone())).collect::<Vec<_>>();
        (codes(&declined), codes(&answered), sent(&to_a), sent(&to_b), h.engine.stats().clone())
    };
    let together = run(true);
    assert_eq!(together, run(false));
    let (declined, answered, to_a, to_b, _) = together;
    let code = |stan: &str, code: &str| (Some(stan.to_string()), Some(code.to_string()));
    assert_eq!(
        declined,
        [code("000003", "30"), code("000004", "63"), code("000001", "94"), code("000099", "00")],
        "the broken one, the spoofed one, the one in flight, the completed one"
    );
    assert_eq!((to_a.len(), to_b.len()), (2, 1));
    assert_eq!(answered, [code("000001", "00"), code("000005", "00"), code("000002", "00")]);
}

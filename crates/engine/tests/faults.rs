//! The faults found from outside, each reproduced in memory with a manual clock: a peer that
//! stops reading, an answer too big for its originator, a burst past the in-flight limit, an
//! unreadable amount, peers that never sign on or never finish a frame, an issuer that goes
//! silent.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod harness;

use std::time::Duration;

use corridor_engine::{AtLimit, CloseReason, LinkSpec};
use corridor_wire::{de, Dialect, FieldId, Mti, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};
use harness::*;

const PAN_A: &str = "4761739001010010";

fn f(n: u8) -> FieldId {
    FieldId::new(n).unwrap()
}

/// Answers every request `link`'s peer has, approving with a 999-character DE 48.
fn approve_big(h: &mut Harness, link: corridor_engine::LinkId) -> usize {
    let got = h.recv_app(link);
    for g in &got {
        let mut m = g.msg.clone();
        m.set_mti(g.msg.mti().response().unwrap());
        m.set(de::RESPONSE_CODE, "00").unwrap();
        m.remove(de::PIN_BLOCK);
        m.set(f(48), vec![b'x'; 999]).unwrap();
        h.send(link, g.correlation, &m);
    }
    got.len()
}

fn reversals_at(h: &mut Harness, link: corridor_engine::LinkId) -> Vec<Got> {
    h.recv_app(link).into_iter().filter(|g| g.msg.mti() == Mti::REVERSAL_ADVICE).collect()
}

#[test]
fn defect_1_approvals_in_a_stalled_originators_batch_are_reversed_when_it_is_closed() {
    let mut c = config();
    c.links[L_ACQ2].inflight_max = 64;
    c.links[L_ISS_A1].inflight_max = 64;
    let mut h = Harness::with(c);
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    h.stalled.insert(acq2);
    let mut approved = 0;
    let mut stan = 0;
    // The acquirer keeps sending and never reads; each approval carries 1 KB.
    while h.closed.is_empty() && stan < 20_000 {
        for _ in 0..32 {
            stan += 1;
            h.send(acq2, stan, &purchase(PAN_A, &format!("{stan:06}"), "87654321"));
        }
        approved += approve_big(&mut h, iss);
    }
    assert_eq!(h.closed, vec![(acq2, CloseReason::Stalled)], "the stalled acquirer's link is closed");
    // Every approval relayed into its batch was lost with it: each one is reversed.
    let reversed = reversals_at(&mut h, iss);
    assert!(approved > 1000, "enough to pass the batch bound: {approved}");
    assert_eq!(reversed.len(), approved, "every approval the acquirer never read is reversed");
    assert_eq!(h.engine.stats().approvals_reversed as usize, approved);
    let de90: std::collections::HashSet<_> = reversed.iter().map(|g| g.field(90).unwrap()).collect();
    assert_eq!(de90.len(), approved, "one reversal per approval, each naming its original");
}

#[test]
fn defect_1_only_approvals_not_yet_written_to_the_socket_are_reversed() {
    let mut h = Harness::new();
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    h.stalled.insert(acq2);
    for i in 1..=3u64 {
        h.send(acq2, i, &purchase(PAN_A, &format!("{i:06}"), "87654321"));
    }
    let fwd = h.recv(iss);
    h.answer(iss, &fwd[0], "00");
    h.answer(iss, &fwd[1], "05");
    h.answer(iss, &fwd[2], "00");
    // The writer takes the batch and gets the first answer out, then the connection fails.
    let batch = h.engine.take_output(acq2).expect("three answers");
    let first = batch.len() / 3;
    h.engine.handle_written(acq2, first);
    assert_eq!(h.engine.link_status(acq2).unwrap().undelivered, 1, "the second approval is not out yet");
    h.engine.link_down(acq2, h.now);
    h.pump();
    let reversed = reversals_at(&mut h, iss);
    assert_eq!(
        reversed.len(),
        1,
        "the written approval stands, the unwritten one is reversed; the 05 needs none"
    );
    assert_eq!(&reversed[0].field(90).unwrap()[4..10], &fwd[2].field(11).unwrap()[..]);
}

#[test]
fn defect_2_an_answer_too_big_for_the_originator_is_answered_96_and_reversed() {
    let mut c = config();
    c.links[L_ACQ].frame_bytes_max = 400;
    let mut h = Harness::with(c);
    let (iss, acq) = h.both_up();
    for i in 1..=3u64 {
        h.send(acq, 0, &purchase(PAN_A, &format!("{i:06}"), "12345678"));
    }
    assert_eq!(approve_big(&mut h, iss), 3);
    let answers = h.recv(acq);
    assert_eq!(answers.len(), 3, "every request is answered");
    for a in &answers {
        assert_eq!(a.field(39).as_deref(), Some("96"));
        assert!(a.field(11).is_some() && a.field(37).is_some(), "matchable");
    }
    assert_eq!(reversals_at(&mut h, iss).len(), 3, "and each approval is reversed");
    assert_eq!(h.engine.stats().unrelayable, 3);
}

#[test]
fn defect_3_a_burst_past_the_originators_limit_is_paced_not_declined() {
    let mut c = config();
    c.links[L_ISS_A1].inflight_max = 256;
    let mut h = Harness::with(c);
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    // 3,000 requests pipelined in one write; acq2 takes 4 in flight.
    let mut wire = bytes::BytesMut::new();
    for i in 1..=3000u64 {
        let body = purchase(PAN_A, &format!("{i:06}"), "87654321").to_bytes(Dialect::Native).unwrap();
        NativeFramer::new(FRAME_BYTES_MAX).encode(0, i, &body, &mut wire).unwrap();
    }
    h.send_raw(acq2, &wire);
    assert!(h.paused.contains(&acq2), "the reader is paused once the held requests reach their bound");
    assert!(h.unread_bytes(acq2) > 0, "the rest stays with the reader (the kernel, on a socket)");
    let mut codes = std::collections::HashMap::<String, usize>::new();
    let mut rounds = 0;
    while codes.values().sum::<usize>() < 3000 && rounds < 5000 {
        rounds += 1;
        let fwd = h.recv(iss);
        assert!(fwd.len() <= 4, "never more than the originator's limit in flight");
        for g in &fwd {
            h.answer(iss, g, "00");
        }
        for a in h.recv(acq2) {
            *codes.entry(a.field(39).unwrap()).or_default() += 1;
        }
    }
    assert_eq!(codes.get("00"), Some(&3000), "3,000 approvals, no declines: {codes:?}");
    assert_eq!(codes.len(), 1);
    let s = h.engine.stats();
    assert_eq!((s.requests_in, s.forwarded, s.inflight_limit_hits), (3000, 3000, 0));
    assert!(h.paused.is_empty() && h.unread_bytes(acq2) == 0);
}

#[test]
fn defect_3_a_link_that_is_both_sides_keeps_its_responses_flowing_while_its_requests_wait() {
    // One participant acquires and issues on one link (a network peering with the switch):
    // its own requests go to issuer B and wait there, and the switch routes other
    // acquirers' requests to it. Its responses must get through while its requests wait.
    let mut c = config();
    c.participants[ISSUER_A].acquirer_ids = vec![id("55555555")];
    c.participants[ISSUER_A].roles.acquirer = true;
    let mut h = Harness::with(c);
    let peer = h.issuer_up(L_ISS_A1);
    let iss_b = h.up(L_ISS_B);
    let acq2 = h.up(L_ACQ2);
    // The peer fills its 4 slots toward issuer B and sends 2 more, which are held.
    for i in 1..=6u64 {
        let mut r = purchase("5500000000000004", &format!("{i:06}"), "55555555");
        r.set(de::RRN, format!("PEER{i:08}")).unwrap();
        h.send(peer, 100 + i, &r);
    }
    assert_eq!(h.recv(iss_b).len(), 4);
    assert_eq!(h.engine.link_status(peer).unwrap().held, 2);
    // acq2's request is routed to the peer; the peer answers it: relayed at once.
    h.send(acq2, 7, &purchase(PAN_A, "000777", "87654321"));
    let to_peer = h.recv(peer);
    assert_eq!(to_peer.len(), 1);
    h.answer(peer, &to_peer[0], "00");
    let back = h.recv(acq2);
    assert_eq!((back.len(), back[0].field(39).as_deref()), (1, Some("00")));
    assert_eq!(h.engine.link_status(peer).unwrap().held, 2, "its own requests still wait");
}

#[test]
fn defect_3_a_link_may_choose_to_decline_at_its_limit() {
    let mut c = config();
    c.links[L_ACQ2].at_limit = AtLimit::Decline;
    c.links[L_ISS_A1].inflight_max = 64;
    let mut h = Harness::with(c);
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    for i in 1..=6u64 {
        h.send(acq2, i, &purchase(PAN_A, &format!("{i:06}"), "87654321"));
    }
    assert_eq!(h.recv(iss).len(), 4);
    let d = h.recv(acq2);
    assert_eq!(d.iter().filter(|g| g.field(39).as_deref() == Some("91")).count(), 2);
}

#[test]
fn defect_4_a_bad_amount_is_answered_30_with_everything_the_sender_matches_by() {
    let mut h = Harness::new();
    let _iss = h.issuer_up(L_ISS_A1);
    let acq = h.acquirer_up(L_ACQ);
    let mut req = purchase(PAN_A, "000042", "12345678");
    req.set(de::AMOUNT, "000000012500").unwrap();
    let body = req.to_bytes(Dialect::Iso87Ascii).unwrap();
    let mut bad = body.to_vec();
    let at = bad.windows(12).position(|w| w == b"000000012500").unwrap();
    bad[at..at + 12].copy_from_slice(b"12AB56789012");
    let mut wire = (bad.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(&bad);
    h.send_raw(acq, &wire);
    let d = h.recv(acq);
    assert_eq!(d.len(), 1);
    let a = &d[0];
    assert_eq!(a.msg.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(a.field(39).as_deref(), Some("30"));
    for (n, want) in
        [(11, "000042"), (7, "1125221530"), (32, "12345678"), (37, "533022000042"), (41, "TERM0001")]
    {
        assert_eq!(a.field(n).as_deref(), Some(want), "DE {n} echoed");
    }
    assert!(a.field(4).is_none(), "the unreadable amount is left out");
    assert!(a.msg.get(de::PIN_BLOCK).is_none());
}

#[test]
fn defect_4_a_request_whose_stan_cannot_be_read_on_a_classic_link_is_dropped() {
    let mut h = Harness::new();
    let acq = h.acquirer_up(L_ACQ);
    let body = purchase(PAN_A, "000042", "12345678").to_bytes(Dialect::Iso87Ascii).unwrap();
    let mut bad = body.to_vec();
    // DE 3 has a variable field (DE 2) before it; break DE 2's length prefix instead.
    let at = bad.windows(18).position(|w| w == b"164761739001010010").unwrap();
    bad[at] = b'X';
    let mut wire = (bad.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(&bad);
    h.send_raw(acq, &wire);
    assert!(h.recv(acq).is_empty(), "no answer it could not match");
    assert!(h.closed.is_empty(), "and the link stays up");
    assert_eq!(h.engine.stats().format_errors_dropped, 1);
}

fn listening_with_sign_on() -> Harness {
    let mut c = config();
    c.links[L_ACQ2].sign_on_required = true;
    Harness::with(c)
}

fn echo_frame(stan: &str) -> Vec<u8> {
    let mut echo = OwnedMessage::new(Mti::NETWORK_REQUEST);
    echo.set(de::STAN, stan.as_bytes().to_vec()).unwrap().set(de::NETWORK_CODE, "301").unwrap();
    let mut w = bytes::BytesMut::new();
    NativeFramer::new(FRAME_BYTES_MAX)
        .encode(0, 1, &echo.to_bytes(Dialect::Native).unwrap(), &mut w)
        .unwrap();
    w.to_vec()
}

#[test]
fn defect_5_a_peer_that_never_signs_on_is_closed_at_the_deadline_echoes_or_not() {
    let mut h = listening_with_sign_on();
    let quiet = h.up(L_ACQ2);
    let chatty = h.up(L_ACQ2);
    let zero = h.up(L_ACQ2);
    let signed = h.up(L_ACQ2);
    let mut on = OwnedMessage::new(Mti::NETWORK_REQUEST);
    on.set(de::STAN, "000001").unwrap().set(de::NETWORK_CODE, "001").unwrap();
    h.send(signed, 1, &on);
    for s in 0..9 {
        h.advance(Duration::from_secs(1));
        h.send_raw(chatty, &echo_frame(&format!("{s:06}")));
        // A zero-length native frame each second.
        h.send_raw(zero, &[0x85, 0x83, 1, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }
    assert!(h.closed.is_empty());
    h.advance(Duration::from_secs(1));
    let mut closed: Vec<_> = h.closed.clone();
    closed.sort_by_key(|c| c.0);
    assert_eq!(
        closed,
        vec![(quiet, CloseReason::NoSignOn), (chatty, CloseReason::NoSignOn), (zero, CloseReason::NoSignOn)]
    );
    assert!(h.engine.link_status(signed).is_some_and(|s| !s.closing), "a signed-on link stays");
    assert_eq!(h.engine.stats().sign_on_timeouts, 3);
}

#[test]
fn defect_5_a_frame_left_unfinished_closes_its_link_at_the_frame_deadline() {
    let mut h = Harness::new();
    let acq2 = h.up(L_ACQ2);
    let other = h.up(L_ACQ2);
    // A native header announcing 256 bytes, then a trickle that never completes it.
    h.send_raw(acq2, &[0x85, 0x83, 1, 0, 0, 20, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    for _ in 0..4 {
        h.advance(Duration::from_secs(1));
        h.send_raw(acq2, &[0x02]);
    }
    assert!(h.closed.is_empty());
    h.advance(FRAME_TIMEOUT);
    assert_eq!(h.closed, vec![(acq2, CloseReason::FrameTimeout)]);
    // Whole frames on the other link never trip it, however slowly they come.
    for s in 0..3 {
        h.send_raw(other, &echo_frame(&format!("{s:06}")));
        h.advance(FRAME_TIMEOUT * 2);
    }
    assert_eq!(h.closed.len(), 1);
}

#[test]
fn defect_7_an_issuer_that_stops_answering_is_taken_out_of_routing_after_timeouts_in_a_row() {
    let mut h = Harness::new();
    let a1 = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    // a1 reads but never answers: three requests time out one after another.
    for i in 1..=3u64 {
        h.send(acq2, i, &purchase(PAN_A, &format!("{i:06}"), "87654321"));
        h.advance(Duration::from_secs(1));
    }
    assert_eq!(h.recv(a1).len(), 3);
    h.advance(TIMEOUT - Duration::from_secs(2));
    assert!(h.closed.is_empty(), "two timeouts in a row are not enough");
    h.advance(Duration::from_secs(1));
    let a2 = h.issuer_up(L_ISS_A2);
    assert!(h.closed.contains(&(a1, CloseReason::Unresponsive)), "{:?}", h.closed);
    assert_eq!(h.engine.stats().unresponsive_links, 1);
    // From then on everything goes to a2 at once.
    let _ = h.recv(acq2);
    for i in 10..14u64 {
        h.send(acq2, i, &purchase(PAN_A, &format!("{i:06}"), "87654321"));
        let fwd: Vec<_> =
            h.recv_app(a2).into_iter().filter(|g| g.msg.mti() == Mti::FINANCIAL_REQUEST).collect();
        assert_eq!(fwd.len(), 1, "request {i} goes to the link that answers");
        h.answer(a2, &fwd[0], "00");
    }
    let codes: Vec<_> = h.recv(acq2).iter().map(|g| g.field(39).unwrap()).collect();
    assert_eq!(codes, vec!["00"; 4]);
}

#[test]
fn defect_8_durations_past_the_clock_never_panic() {
    let mut c = config();
    let s: &mut LinkSpec = &mut c.links[L_ISS_A1];
    s.echo_interval = Duration::from_millis(u64::MAX);
    s.echo_missed_max = u32::MAX;
    c.links[L_ACQ2].sign_on_timeout = Duration::MAX;
    c.links[L_ACQ2].sign_on_required = true;
    c.settings.late_window = Duration::MAX;
    let mut h = Harness::with(c);
    let iss = h.issuer_up(L_ISS_A1);
    let _ = h.up(L_ACQ2);
    h.advance(Duration::from_secs(3600));
    assert!(h.engine.link_status(iss).is_some());
}

#[test]
fn defect_5_the_frame_deadline_keeps_one_timer_per_link_however_many_reads_end_mid_frame() {
    // A busy pipelining peer: nearly every read ends inside a frame. A timer per read would
    // pile up (and once made the switch 5x slower); there is one per link.
    let mut h = Harness::new();
    let acq2 = h.up(L_ACQ2);
    let frame = echo_frame("000001");
    let (head, tail) = frame.split_at(7);
    h.send_raw(acq2, head);
    // 20,000 reads a millisecond apart: 20 s of frames, each finished well within its own
    // deadline, none of them whole in one read.
    for _ in 0..20_000 {
        let mut chunk = tail.to_vec();
        chunk.extend_from_slice(head);
        h.now += Duration::from_millis(1);
        h.send_raw(acq2, &chunk);
        if h.engine.poll_timeout().is_some_and(|t| t <= h.now) {
            h.advance(Duration::ZERO);
        }
    }
    assert!(h.engine.timers_queued() < 100, "{} timers", h.engine.timers_queued());
    assert!(h.closed.is_empty(), "a peer that finishes every frame in time is never closed: {:?}", h.closed);
    // And the deadline still holds for the partial frame left at the end.
    h.advance(FRAME_TIMEOUT);
    assert_eq!(h.closed, vec![(acq2, CloseReason::FrameTimeout)]);
}

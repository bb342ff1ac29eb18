//! What operators see and change while the engine runs: its metrics (latency histograms,
//! answers by code and source, per corridor), a reloaded configuration (limits in place,
//! retired links drained then closed), and their link actions.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod harness;

use std::time::Duration;

use corridor_engine::{metrics::Source, CloseReason, LinkAction};
use corridor_wire::Mti;
use harness::*;

const PAN_A: &str = "4761739001010010";

fn answers(h: &Harness, participant: usize, code: &[u8; 2], source: Source) -> u64 {
    let d = &h.engine.metrics().destinations[participant];
    d.answers.codes.iter().find(|(c, _)| c == code).map_or(0, |(_, n)| n[source as usize])
}

#[test]
fn answers_are_measured_by_destination_corridor_code_and_who_made_them() {
    let mut h = Harness::new();
    let (iss, acq, fwd) = h.forwarded(PAN_A, "000001");
    h.now += Duration::from_millis(3);
    h.answer(iss, &fwd, "05");
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("05"));

    let m = h.engine.metrics();
    let d = &m.destinations[ISSUER_A];
    assert_eq!((d.forwarded, d.latency.count, d.destination_latency.count), (1, 1, 1));
    assert_eq!(d.latency.buckets[8], 1, "3 ms lies in (2.5 ms, 5 ms]");
    assert_eq!(d.latency.sum_us, 3_000);
    assert_eq!(answers(&h, ISSUER_A, b"05", Source::Destination), 1);
    assert_eq!(m.corridors.get(&(ACQ as u32, ISSUER_A as u32)).map(|h| h.count), Some(1));
    assert_eq!(m.requests_in[L_ACQ][2], 1, "one financial request in on acq-1");

    // A timeout is the switch's 68, after the route's timeout, with no destination time.
    h.send(acq, 0, &purchase(PAN_A, "000002", "12345678"));
    assert_eq!(h.recv(iss).len(), 1);
    h.advance(TIMEOUT);
    let d = &h.engine.metrics().destinations[ISSUER_A];
    assert_eq!((d.timeouts, d.latency.count, d.destination_latency.count), (1, 2, 1));
    assert_eq!(answers(&h, ISSUER_A, b"68", Source::Switch), 1);
    assert!(
        d.latency.quantile(1.0).unwrap() >= Duration::from_secs(2),
        "the timeout's 5 s is in the histogram"
    );

    // No route: the switch's 92, counted where no destination was chosen.
    h.send(acq, 0, &purchase("9999999999999995", "000003", "12345678"));
    assert_eq!(h.recv(acq).iter().filter(|g| g.msg.mti() == Mti::FINANCIAL_RESPONSE).count(), 2);
    let none = h.engine.metrics().unrouted().unwrap();
    assert_eq!(none.answers.codes, vec![(*b"92", [0, 1])]);
    assert_eq!(h.engine.metrics().requests_in[L_ACQ][2], 3);
}

#[test]
fn with_metrics_off_the_counters_go_on_and_nothing_else_is_recorded() {
    let mut c = config();
    c.settings.metrics = false;
    let mut h = Harness::with(c);
    let (iss, _acq, fwd) = h.forwarded(PAN_A, "000001");
    h.answer(iss, &fwd, "00");
    assert_eq!(h.engine.stats().relayed, 1);
    let m = h.engine.metrics();
    assert!(m
        .destinations
        .iter()
        .all(|d| d.latency.count == 0 && d.answers.total() == 0 && d.forwarded == 0));
    assert!(m.corridors.is_empty());
}

#[test]
fn a_retired_link_takes_nothing_new_answers_what_it_carries_then_closes() {
    let mut h = Harness::new();
    let (iss, acq, fwd) = h.forwarded(PAN_A, "000001");

    let deadline = h.now + Duration::from_secs(30);
    let now = h.now;
    h.engine.reconfigure(config(), &[L_ISS_A1], deadline, now).unwrap();
    h.pump();
    let signed_off = h.recv(iss);
    assert_eq!(signed_off.len(), 1, "a dialed link is signed off");
    assert_eq!(signed_off[0].field(70).as_deref(), Some("002"));
    assert!(h.engine.link_status(iss).unwrap().closing, "shown as draining");

    // Nothing new goes to it: its participant has no other link up, so 91.
    h.send(acq, 0, &purchase(PAN_A, "000002", "12345678"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("91"));
    assert!(h.recv(iss).is_empty());
    // An operator's sign-on, answered, does not bring a link a reload retires back.
    let now = h.now;
    assert_eq!(h.engine.operator_link(L_ISS_A1, LinkAction::SignOn, now), 1);
    h.pump();
    let sign_on = h.recv(iss).pop().unwrap();
    assert_eq!(sign_on.field(70).as_deref(), Some("001"));
    h.answer(iss, &sign_on, "00");
    h.send(acq, 0, &purchase(PAN_A, "000003", "12345678"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("91"), "still retiring");
    assert!(h.recv(iss).is_empty());
    h.engine.poll_retired(h.now);
    h.pump();
    assert!(h.closed.is_empty(), "still carrying a request: not closed");

    // What it carries is answered, then it closes.
    h.answer(iss, &fwd, "00");
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("00"));
    h.answer(iss, &signed_off[0], "00");
    h.engine.poll_retired(h.now);
    h.pump();
    assert_eq!(h.closed, vec![(iss, CloseReason::Reconfigured)]);
    assert_eq!(h.engine.retiring(), 0);
}

#[test]
fn a_retired_link_past_its_deadline_closes_and_its_requests_end_as_any_closed_links_do() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    h.send(acq, 0, &purchase(PAN_A, "000001", "12345678"));
    assert_eq!(h.recv(iss).len(), 1);
    let deadline = h.now + Duration::from_secs(1);
    let now = h.now;
    h.engine.reconfigure(config(), &[L_ISS_A1], deadline, now).unwrap();
    h.now += Duration::from_secs(1);
    h.engine.poll_retired(h.now);
    h.pump();
    assert_eq!(h.closed, vec![(iss, CloseReason::Reconfigured)]);
    // The request forwarded on it times out: 68 to its originator, a reversal stored.
    h.advance(TIMEOUT);
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("68"));
    assert_eq!(h.engine.reversals_pending(), 1);
}

#[test]
fn limits_apply_to_open_links_at_once_and_held_requests_go_when_there_is_room() {
    let mut c = config();
    c.links[L_ACQ2].inflight_max = 1;
    let mut h = Harness::with(c.clone());
    let iss = h.issuer_up(L_ISS_A1);
    let acq2 = h.up(L_ACQ2);
    h.send(acq2, 1, &purchase(PAN_A, "000001", "87654321"));
    h.send(acq2, 2, &purchase(PAN_A, "000002", "87654321"));
    assert_eq!(h.recv(iss).len(), 1, "the second waits: its originator is at its limit");
    assert_eq!(h.engine.link_status(acq2).unwrap().held, 1);
    c.links[L_ACQ2].inflight_max = 2;
    let (deadline, now) = (h.now, h.now);
    h.engine.reconfigure(c, &[], deadline, now).unwrap();
    h.pump();
    assert_eq!(h.recv(iss).len(), 1, "room at the new limit: the held request goes");
    assert_eq!(h.engine.link_status(acq2).unwrap().held, 0);
}

#[test]
fn a_configuration_that_moves_or_drops_links_is_refused_and_nothing_changes() {
    let mut h = Harness::new();
    let mut c = config();
    c.links.pop();
    let now = h.now;
    let e = h.engine.reconfigure(c, &[], now, now).unwrap_err();
    assert!(e.to_string().contains("never taken out"), "{e}");
    let mut c = config();
    c.links.swap(2, 3);
    assert!(h.engine.reconfigure(c, &[], now, now).unwrap_err().to_string().contains("was \"iss-a-1\""));
    assert_eq!(h.engine.config().links[2].name, "iss-a-1");
    let _ = h.issuer_up(L_ISS_A1);
}

#[test]
fn an_operator_signs_a_link_off_and_on_and_closes_it() {
    let mut h = Harness::new();
    let (iss, acq) = h.both_up();
    let now = h.now;
    assert_eq!(h.engine.operator_link(L_ISS_A1, LinkAction::SignOff, now), 1);
    h.pump();
    assert_eq!(h.recv(iss).pop().unwrap().field(70).as_deref(), Some("002"));
    h.send(acq, 0, &purchase(PAN_A, "000001", "12345678"));
    assert_eq!(h.recv(acq).pop().unwrap().field(39).as_deref(), Some("91"), "signed off: no new requests");
    assert_eq!(h.engine.operator_link(L_ISS_A1, LinkAction::SignOn, now), 1);
    h.pump();
    let s = h.recv(iss).pop().unwrap();
    assert_eq!(s.field(70).as_deref(), Some("001"));
    h.answer(iss, &s, "00");
    h.send(acq, 0, &purchase(PAN_A, "000002", "12345678"));
    assert_eq!(h.recv(iss).len(), 1, "signed on again: routed");
    assert_eq!(h.engine.operator_link(L_ISS_A1, LinkAction::Echo, now), 1);
    assert_eq!(h.engine.operator_link(L_ISS_A2, LinkAction::Echo, now), 0, "no connection");
    h.engine.operator_link(L_ISS_A1, LinkAction::Close, now);
    h.pump();
    assert_eq!(h.closed, vec![(iss, CloseReason::Operator)]);
}

//! The switch over real loopback TCP: the engine and network layer wired as `corridor serve`
//! wires them, acquirers and issuers as separate peers.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is a failed test; threads, not tasks

use std::{net::SocketAddr, time::Duration};

use corridor_tests::{
    peer::{purchase, Behaviour, Conn, Issuer, Wire, WAIT_MAX},
    switch::TestSwitch,
};
use corridor_wire::{de, Dialect, LengthHeader, Mti};

const PAN_A: &str = "4761739001010010";
const ASCII_BIN2: Wire = Wire::classic(LengthHeader::Bin2, Dialect::Iso87Ascii);
const HEX_ASCII4: Wire = Wire::classic(LengthHeader::Ascii4, Dialect::Iso87Hex);

/// Acquirers `acq` (iso87-ascii, bin2, sign-on) and `acq2` (native) listen; issuer A (native,
/// two dialed links) is reached by BIN, issuer B (iso87-hex, ascii4, dialed) by DE 100.
fn config(a1: SocketAddr, a2: SocketAddr, b: SocketAddr, timeout_ms: u64, echo_ms: u64) -> String {
    format!(
        r#"
[switch]
drain_timeout_ms = 2000
reversal_retry_ms = 300
reversal_repeats_max = 3

[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
  [[participant.link]]
  name = "acq-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "bin2"
  dialect = "iso87-ascii"

[[participant]]
id = "acq2"
roles = ["acquirer"]
acquirer_ids = ["87654321"]
  [[participant.link]]
  name = "acq2-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
  sign_on_required = false

[[participant]]
id = "issuer-a"
roles = ["issuer"]
  [[participant.link]]
  name = "iss-a-1"
  mode = "dial"
  address = "{a1}"
  framing = "native"
  dialect = "native"
  echo_interval_ms = {echo_ms}
  echo_missed_max = 2
  reconnect_min_ms = 50
  reconnect_max_ms = 200
  [[participant.link]]
  name = "iss-a-2"
  mode = "dial"
  address = "{a2}"
  framing = "native"
  dialect = "native"
  echo_interval_ms = {echo_ms}
  echo_missed_max = 2
  reconnect_min_ms = 50
  reconnect_max_ms = 200

[[participant]]
id = "issuer-b"
roles = ["issuer"]
  [[participant.link]]
  name = "iss-b-1"
  mode = "dial"
  address = "{b}"
  framing = "ascii4"
  dialect = "iso87-hex"
  reconnect_min_ms = 50
  reconnect_max_ms = 200

[[route]]
pan_prefix = "476173"
destination = "issuer-a"
timeout_ms = {timeout_ms}

[[route]]
receiver_id = "44556677"
destination = "issuer-b"
timeout_ms = {timeout_ms}
"#
    )
}

struct Net {
    a1: Issuer,
    a2: Issuer,
    b: Issuer,
    switch: TestSwitch,
}

fn start(a: Behaviour, b: Behaviour, timeout_ms: u64, echo_ms: u64) -> Net {
    let a1 = Issuer::start(Wire::NATIVE, a);
    let a2 = Issuer::start(Wire::NATIVE, a);
    let b = Issuer::start(HEX_ASCII4, b);
    let switch = TestSwitch::start(&config(a1.addr, a2.addr, b.addr, timeout_ms, echo_ms));
    // Every dialed link signs on before traffic.
    for i in [&a1, &a2] {
        assert!(
            i.wait_for(WAIT_MAX, |s| s.iter().any(|m| m.mti() == Mti::NETWORK_REQUEST)),
            "the switch signs on"
        );
    }
    assert!(b.wait_for(WAIT_MAX, |s| !s.is_empty()));
    switch.wait_signed_on(&["iss-a-1", "iss-a-2"]);
    Net { a1, a2, b, switch }
}

fn acquirer(net: &Net) -> Conn {
    let mut c = Conn::connect(net.switch.addr("acq-1"), ASCII_BIN2);
    c.sign_on();
    c
}

#[test]
fn routes_by_bin_and_by_receiver_across_dialects() {
    let net = start(Behaviour::Approve, Behaviour::Approve, 2000, 30_000);
    let mut acq = acquirer(&net);
    let mut acq2 = Conn::connect(net.switch.addr("acq2-1"), Wire::NATIVE);
    // By BIN, iso87-ascii in, native out.
    acq.send(0, &purchase(PAN_A, "000001", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(r.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    assert_eq!(r.get(de::STAN), Some(&b"000001"[..]));
    assert_eq!(net.a1.seen_mti(200).len() + net.a2.seen_mti(200).len(), 1);
    // By DE 100, native in, iso87-hex out, with a PIN block that crosses as hex text.
    let mut req = purchase("5500000000000004", "000002", "87654321");
    req.set(de::RECEIVER_ID, "44556677").unwrap();
    req.set(de::PIN_BLOCK, vec![0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3]).unwrap();
    acq2.send(77, &req);
    let (c, r) = acq2.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(c, 77, "native correlation restored");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    let at_b = net.b.seen_mti(200);
    assert_eq!(at_b.len(), 1);
    assert_eq!(at_b[0].get(de::PIN_BLOCK), Some(&[0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3][..]));
    assert_eq!(at_b[0].get(de::PAN), Some(&b"5500000000000004"[..]));
}

#[test]
fn sign_on_is_enforced_and_declines_come_from_the_switch() {
    let net = start(Behaviour::Approve, Behaviour::Approve, 2000, 30_000);
    let mut acq = Conn::connect(net.switch.addr("acq-1"), ASCII_BIN2);
    acq.send(0, &purchase(PAN_A, "000001", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"91"[..]), "no sign-on yet");
    acq.sign_on();
    acq.send(0, &purchase("9999990000000000", "000002", "12345678"));
    assert_eq!(acq.recv_app_within(WAIT_MAX).unwrap().1.get(de::RESPONSE_CODE), Some(&b"92"[..]));
    acq.send(0, &purchase(PAN_A, "000003", "87654321"));
    assert_eq!(acq.recv_app_within(WAIT_MAX).unwrap().1.get(de::RESPONSE_CODE), Some(&b"63"[..]));
    assert!(net.a1.seen_mti(200).is_empty() && net.a2.seen_mti(200).is_empty(), "nothing reached the issuer");
}

#[test]
fn timeout_answers_68_and_the_issuer_sees_0420_then_0421() {
    let net = start(Behaviour::SilentAckAfter(2), Behaviour::Approve, 300, 30_000);
    let mut acq = acquirer(&net);
    acq.send(0, &purchase(PAN_A, "000042", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"68"[..]));
    assert_eq!(r.get(de::STAN), Some(&b"000042"[..]));
    let reversed = |s: &[corridor_wire::OwnedMessage]| {
        s.iter().any(|m| m.mti() == Mti::REVERSAL_ADVICE)
            && s.iter().any(|m| m.mti() == Mti::REVERSAL_ADVICE_REPEAT)
    };
    let issuer = if net.a1.seen_mti(200).is_empty() { &net.a2 } else { &net.a1 };
    assert!(issuer.wait_for(WAIT_MAX, reversed), "0420 then 0421 at the issuer: {:?}", issuer.seen());
    let rev = &issuer.seen_mti(420)[0];
    let de90 = String::from_utf8(rev.get(de::ORIGINAL_DATA).unwrap().to_vec()).unwrap();
    assert!(de90.starts_with("0200"), "DE 90 names the original: {de90}");
    // Acknowledged at the second: no third.
    net.switch.wait_quiet();
    assert_eq!(issuer.seen_mti(420).len() + issuer.seen_mti(421).len(), 2);
}

#[test]
fn a_late_approval_is_never_relayed_and_is_reversed() {
    let net = start(Behaviour::LateApproval, Behaviour::Approve, 300, 30_000);
    let mut acq = acquirer(&net);
    acq.send(0, &purchase(PAN_A, "000042", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"68"[..]));
    // The issuer acknowledges the timeout's 0420, then sends its held approval: the switch
    // reverses that approval with a second 0420.
    let issuer = if net.a1.seen_mti(200).is_empty() { &net.a2 } else { &net.a1 };
    assert!(issuer.wait_for(WAIT_MAX, |s| s.iter().filter(|m| m.mti() == Mti::REVERSAL_ADVICE).count() >= 2));
    assert!(acq.recv_app_within(Duration::from_millis(300)).is_none(), "exactly one answer: the 68");
}

#[test]
fn duplicate_in_flight_is_declined_94() {
    let net = start(Behaviour::Silent, Behaviour::Approve, 1000, 30_000);
    let mut acq = acquirer(&net);
    let req = purchase(PAN_A, "000042", "12345678");
    acq.send(0, &req);
    acq.send(0, &req);
    let (_, first) = acq.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(first.get(de::RESPONSE_CODE), Some(&b"94"[..]));
    let (_, second) = acq.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(second.get(de::RESPONSE_CODE), Some(&b"68"[..]));
    assert_eq!(net.a1.seen_mti(200).len() + net.a2.seen_mti(200).len(), 1, "forwarded once");
}

#[test]
fn traffic_fails_over_when_an_issuer_link_dies_and_the_link_comes_back() {
    let net = start(Behaviour::Approve, Behaviour::Approve, 2000, 30_000);
    let mut acq = acquirer(&net);
    net.a1.kill_connections();
    for i in 0..6 {
        acq.send(0, &purchase(PAN_A, &format!("{:06}", 100 + i), "12345678"));
        let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
        assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]), "request {i}");
    }
    // The dialed link reconnects and signs on again.
    assert!(net.a1.wait_for(WAIT_MAX, |s| s.iter().filter(|m| m.mti() == Mti::NETWORK_REQUEST).count() >= 2));
}

#[test]
fn missed_echoes_mark_the_link_down_and_traffic_fails_over() {
    let a1 = Issuer::start(Wire::NATIVE, Behaviour::IgnoreEchoes);
    let a2 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let b = Issuer::start(HEX_ASCII4, Behaviour::Approve);
    let switch = TestSwitch::start(&config(a1.addr, a2.addr, b.addr, 2000, 150));
    // a1 never answers echoes: after two missed it is dropped and redialed.
    assert!(
        a1.wait_for(WAIT_MAX, |s| s.iter().filter(|m| m.get(de::NETWORK_CODE) == Some(&b"001"[..])).count()
            >= 2),
        "the switch gave up on the silent link and redialed it"
    );
    let net = Net { a1, a2, b, switch };
    let mut acq = acquirer(&net);
    for i in 0..4 {
        acq.send(0, &purchase(PAN_A, &format!("{:06}", 200 + i), "12345678"));
        let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
        assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    }
}

#[test]
fn garbage_on_one_link_closes_it_and_the_others_carry_on() {
    let net = start(Behaviour::Approve, Behaviour::Approve, 2000, 30_000);
    let mut acq = acquirer(&net);
    let mut bad = Conn::connect(net.switch.addr("acq2-1"), Wire::NATIVE);
    bad.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(bad.closed_within(WAIT_MAX), "the switch closes the garbled link");
    // A peer that stalls mid-frame holds only its own link.
    let mut stall = Conn::connect(net.switch.addr("acq2-1"), Wire::NATIVE);
    stall.send_raw(&[0x85, 0x83, 0x01, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00]);
    for i in 0..3 {
        acq.send(0, &purchase(PAN_A, &format!("{:06}", 300 + i), "12345678"));
        let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
        assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    }
    drop(stall);
}

#[test]
fn shutdown_drains_requests_in_flight() {
    let net = start(Behaviour::LateApproval, Behaviour::Approve, 5000, 30_000);
    let mut acq = acquirer(&net);
    acq.send(0, &purchase(PAN_A, "000042", "12345678"));
    let issuer =
        if net.a1.wait_for(Duration::from_secs(2), |s| s.iter().any(|m| m.mti() == Mti::FINANCIAL_REQUEST)) {
            &net.a1
        } else {
            &net.a2
        };
    assert!(issuer.wait_for(WAIT_MAX, |s| s.iter().any(|m| m.mti() == Mti::FINANCIAL_REQUEST)));
    let Net { a1, a2, b, switch } = net;
    let stopper = std::thread::spawn(move || switch.stop());
    // The drain signs the dialed links off; the pending request still gets its answer: 68 at
    // the drain deadline (2 s, before the route's 5 s), since this issuer holds its approval
    // until it sees a reversal.
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered before the switch stops");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"68"[..]));
    let report = stopper.join().expect("stopped");
    assert_eq!(report.stats.timeouts, 1);
    let signed_off =
        |s: &[corridor_wire::OwnedMessage]| s.iter().any(|m| m.get(de::NETWORK_CODE) == Some(&b"002"[..]));
    let (one, two) = (a1.wait_for(WAIT_MAX, signed_off), a2.wait_for(WAIT_MAX, signed_off));
    let mtis = |i: &Issuer| {
        i.seen().iter().map(|m| (m.mti(), m.get(de::NETWORK_CODE).map(<[u8]>::to_vec))).collect::<Vec<_>>()
    };
    assert!(one && two, "both dialed links signed off: {one} {two}; {:?} {:?}", mtis(&a1), mtis(&a2));
    drop(b);
}

#[test]
fn a_listening_link_refuses_connections_past_its_limit() {
    let a1 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let a2 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let b = Issuer::start(HEX_ASCII4, Behaviour::Approve);
    let text = config(a1.addr, a2.addr, b.addr, 2000, 30_000).replacen(
        "sign_on_required = false",
        "sign_on_required = false\n  connections_max = 1",
        1,
    );
    let switch = TestSwitch::start(&text);
    let mut first = Conn::connect(switch.addr("acq2-1"), Wire::NATIVE);
    assert!(switch.wait_until(|links, _| links.iter().any(|l| l.name == "acq2-1")), "the first is up");
    let mut second = Conn::connect(switch.addr("acq2-1"), Wire::NATIVE);
    assert!(second.closed_within(WAIT_MAX), "the second connection is refused");
    // The first still works.
    switch.wait_signed_on(&["iss-a-1", "iss-a-2"]);
    first.send(5, &purchase(PAN_A, "000001", "87654321"));
    let (c, r) = first.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!((c, r.get(de::RESPONSE_CODE)), (5, Some(&b"00"[..])));
}

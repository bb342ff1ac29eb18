//! Faults found from outside, reproduced over real loopback sockets with peers that
//! misbehave on purpose: a burst far past the in-flight limit, an acquirer that goes with
//! approvals on their way to it, connections that hold a link's slots without signing on.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code; threads, not tasks

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_tests::{
    peer::{purchase, Behaviour, Conn, Issuer, Wire, WAIT_MAX},
    switch::{tcp_issuer, TestSwitch},
};
use corridor_wire::{de, Dialect, Message, Mti, NativeFramer, FRAME_BYTES_MAX};

const PAN: &str = "4761739001010010";

fn config(issuer: std::net::SocketAddr, acquirer_keys: &str) -> String {
    format!(
        "[[participant]]\nid = \"acq\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\n  \
         [[participant.link]]\n  name = \"acq-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:0\"\n  \
         framing = \"native\"\n  dialect = \"native\"\n{acquirer_keys}\n\n{}",
        tcp_issuer(issuer)
    )
}

/// Until the switch has the issuer's answer to its sign-on (the issuer seeing the request is
/// not enough: requests sent before the answer is in are declined 91).
fn wait_signed_on(switch: &TestSwitch) {
    switch.wait_signed_on(&["iss-1"]);
}

/// Reads native frames from `s` until `n` came or `wait` passed; returns their DE 39s.
fn read_answers(s: &mut TcpStream, n: usize, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut buf = BytesMut::new();
    let mut framer = NativeFramer::new(FRAME_BYTES_MAX);
    let mut codes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while codes.len() < n && Instant::now() < deadline {
        while let Some(f) = framer.decode(&mut buf).unwrap() {
            let m = Message::parse(Dialect::Native, f.into_body()).unwrap();
            if m.mti().class() != 8 {
                codes.push(
                    m.response_code().map(|c| String::from_utf8_lossy(&c.0).into_owned()).unwrap_or_default(),
                );
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(_) => {}
        }
    }
    codes
}

fn frames(n: u64, from: u64) -> Vec<u8> {
    let mut wire = BytesMut::new();
    for i in from..from + n {
        let body =
            purchase(PAN, &format!("{:06}", i % 1_000_000), "12345678").to_bytes(Dialect::Native).unwrap();
        NativeFramer::new(FRAME_BYTES_MAX).encode(0, i, &body, &mut wire).unwrap();
    }
    wire.to_vec()
}

#[test]
fn three_thousand_pipelined_requests_on_one_connection_are_all_approved() {
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(issuer.addr, "  sign_on_required = false"));
    wait_signed_on(&switch);
    let mut s = TcpStream::connect(switch.addr("acq-1")).unwrap();
    s.set_nodelay(true).unwrap();
    let mut writer = s.try_clone().unwrap();
    let wire = frames(3000, 1);
    // One write of all 3,000 (636 KB) from its own thread: the switch must pace it.
    let sender = std::thread::spawn(move || writer.write_all(&wire).unwrap());
    let codes = read_answers(&mut s, 3000, Duration::from_secs(60));
    sender.join().unwrap();
    let approved = codes.iter().filter(|c| *c == "00").count();
    assert_eq!((codes.len(), approved), (3000, 3000), "3,000 approvals, no declines");
    let report = switch.stop();
    assert_eq!(report.stats.declines_for(corridor_wire::ResponseCode::DESTINATION_UNAVAILABLE), 0);
    assert!(report.stats.requests_held > 0, "the burst was held back, not declined");
    assert_eq!(issuer.seen_mti(200).len(), 3000);
}

#[test]
fn approvals_for_an_acquirer_that_went_are_reversed_to_the_issuer() {
    // The issuer approves after 300 ms; the acquirer sends 20 and closes at once.
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::ApproveAfter(Duration::from_millis(300)));
    let switch = TestSwitch::start(&config(issuer.addr, "  sign_on_required = false"));
    wait_signed_on(&switch);
    let mut s = TcpStream::connect(switch.addr("acq-1")).unwrap();
    s.write_all(&frames(20, 1)).unwrap();
    assert!(
        issuer.wait_for(WAIT_MAX, |m| m.iter().filter(|m| m.mti() == Mti::FINANCIAL_REQUEST).count() == 20)
    );
    drop(s);
    assert!(
        issuer.wait_for(WAIT_MAX, |m| m.iter().filter(|m| m.mti() == Mti::REVERSAL_ADVICE).count() == 20),
        "every approval the acquirer never received is reversed: {:?}",
        issuer.seen_mti(420).len()
    );
    let report = switch.stop();
    assert_eq!(report.stats.approvals_reversed, 20);
}

#[test]
fn connections_that_never_sign_on_or_finish_a_frame_free_their_slots() {
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(
        issuer.addr,
        "  connections_max = 4\n  sign_on_timeout_ms = 500\n  frame_timeout_ms = 500",
    ));
    wait_signed_on(&switch);
    let addr = switch.addr("acq-1");
    // Four slowloris peers: one never completes a frame, one sends zero-length frames, one
    // answers nothing and sends nothing, one only echoes.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&[0x85, 0x83, 1, 0, 0, 20]).unwrap();
    let mut zero = TcpStream::connect(addr).unwrap();
    let mut zero_frames = Vec::new();
    for _ in 0..2000 {
        zero_frames.extend_from_slice(&[0x85, 0x83, 1, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }
    zero.write_all(&zero_frames).unwrap();
    let quiet = TcpStream::connect(addr).unwrap();
    let mut echoer = Conn::connect(addr, Wire::NATIVE);
    let mut echo = corridor_wire::OwnedMessage::new(Mti::NETWORK_REQUEST);
    echo.set(de::STAN, "000001").unwrap().set(de::NETWORK_CODE, "301").unwrap();
    echoer.send(1, &echo);
    // A fifth takes the slot of the oldest (the half frame), which is closed at once...
    let mut fifth = Conn::connect(addr, Wire::NATIVE);
    fifth.sign_on();
    half.set_read_timeout(Some(WAIT_MAX)).unwrap();
    assert_eq!(half.read(&mut [0u8; 64]).unwrap_or(0), 0, "the oldest squatter made room");
    // ...and the rest are closed at the sign-on deadline, so the acquirer gets in.
    assert!(echoer.closed_within(WAIT_MAX), "an echoing peer that never signs on is closed");
    let mut acq = Conn::connect(addr, Wire::NATIVE);
    acq.sign_on();
    acq.send(9, &purchase(PAN, "000009", "12345678"));
    let (c, r) = acq.recv_app_within(WAIT_MAX).expect("the legitimate acquirer is served");
    assert_eq!((c, r.get(de::RESPONSE_CODE)), (9, Some(&b"00"[..])));
    drop((half, zero, quiet, fifth));
    let report = switch.stop();
    assert!(report.stats.sign_on_timeouts >= 2, "{:?}", report.stats);
    assert_eq!(report.stats.displaced, 1, "{:?}", report.stats);
}

/// The number of `acq-1`'s connections the switch has, once it is `n`.
fn wait_acquirer_links(switch: &TestSwitch, n: usize) {
    assert!(
        switch.wait_until(
            |links, _| links.iter().filter(|l| l.name == "acq-1" && !l.status.closing).count() == n
        ),
        "acq-1 has {n} connections"
    );
}

/// As it was found: a listen link full of connections that never sign on admitted no one
/// until their deadline (here a minute away), so a partner reconnecting after a failover
/// waited. A new connection now displaces the oldest that has not signed on or holds a
/// stalled partial frame — never a healthy one.
#[test]
fn a_connection_at_the_limit_displaces_the_oldest_squatter_and_never_a_healthy_peer() {
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(
        issuer.addr,
        "  connections_max = 3
  sign_on_timeout_ms = 60000
  frame_timeout_ms = 60000",
    ));
    wait_signed_on(&switch);
    let addr = switch.addr("acq-1");
    let mut healthy = Conn::connect(addr, Wire::NATIVE);
    healthy.sign_on();
    // Two squatters, in this order: one says nothing, one leaves half a frame.
    let mut quiet = TcpStream::connect(addr).unwrap();
    wait_acquirer_links(&switch, 2);
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&[0x85, 0x83, 1, 0, 0, 20]).unwrap();
    wait_acquirer_links(&switch, 3);
    let served = |c: &mut Conn, stan: &str| {
        c.send(7, &purchase(PAN, stan, "12345678"));
        let (k, r) = c.recv_app_within(WAIT_MAX).expect("served");
        assert_eq!((k, r.get(de::RESPONSE_CODE)), (7, Some(&b"00"[..])));
    };
    // The partner reconnecting gets in at once: the oldest squatter makes room.
    let mut partner = Conn::connect(addr, Wire::NATIVE);
    partner.sign_on();
    served(&mut partner, "000001");
    quiet.set_read_timeout(Some(WAIT_MAX)).unwrap();
    assert_eq!(quiet.read(&mut [0u8; 64]).unwrap_or(0), 0, "the quiet squatter, the oldest, was closed");
    // The next one displaces the half frame.
    let mut second = Conn::connect(addr, Wire::NATIVE);
    second.sign_on();
    served(&mut second, "000002");
    half.set_read_timeout(Some(WAIT_MAX)).unwrap();
    assert_eq!(half.read(&mut [0u8; 64]).unwrap_or(0), 0, "the half frame was closed");
    // Three healthy connections: a fourth is refused, and they are all still served.
    let mut fourth = Conn::connect(addr, Wire::NATIVE);
    assert!(fourth.closed_within(WAIT_MAX), "refused: nobody to displace");
    for (c, stan) in [(&mut healthy, "000003"), (&mut partner, "000004"), (&mut second, "000005")] {
        served(c, stan);
    }
    let report = switch.stop();
    assert_eq!(report.stats.displaced, 2, "{:?}", report.stats);
    assert_eq!(report.stats.sign_on_timeouts, 0, "no deadline came: {:?}", report.stats);
}

/// Where no sign-on is asked for, a connection stalled mid-frame for a second is the one
/// displaced; an idle one that finished its frames is not.
#[test]
fn without_sign_on_a_connection_stalled_mid_frame_is_displaced_and_an_idle_one_is_not() {
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(
        issuer.addr,
        "  sign_on_required = false
  connections_max = 2
  frame_timeout_ms = 60000",
    ));
    wait_signed_on(&switch);
    let addr = switch.addr("acq-1");
    let mut idle = Conn::connect(addr, Wire::NATIVE);
    idle.send(7, &purchase(PAN, "000001", "12345678"));
    assert!(idle.recv_app_within(WAIT_MAX).is_some());
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(&[0x85, 0x83, 1, 0, 0, 20]).unwrap();
    wait_acquirer_links(&switch, 2);
    // Before its partial frame is a second old... (a wait, not a timing assertion: the
    // outcome is the same on any machine once the second has passed).
    std::thread::sleep(corridor_engine::limits::PARTIAL_STALLED + Duration::from_millis(200));
    let mut newcomer = Conn::connect(addr, Wire::NATIVE);
    newcomer.send(8, &purchase(PAN, "000002", "12345678"));
    let (_, r) = newcomer.recv_app_within(WAIT_MAX).expect("the newcomer is served");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    stalled.set_read_timeout(Some(WAIT_MAX)).unwrap();
    assert_eq!(stalled.read(&mut [0u8; 64]).unwrap_or(0), 0, "the stalled connection made room");
    idle.send(9, &purchase(PAN, "000003", "12345678"));
    assert!(idle.recv_app_within(WAIT_MAX).is_some(), "the idle one was left alone");
    let report = switch.stop();
    assert_eq!(report.stats.displaced, 1, "{:?}", report.stats);
}

#[test]
fn a_stalled_acquirer_is_closed_and_every_approval_it_did_not_get_is_reversed() {
    // As it was found: an acquirer with a small receive buffer stops reading while the
    // issuer approves with a 999-character DE 48.
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::ApproveLarge);
    let switch = TestSwitch::start(&config(issuer.addr, "  sign_on_required = false"));
    wait_signed_on(&switch);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&switch.addr("acq-1").into()).unwrap();
    let mut acq: TcpStream = sock.into();
    let mut writer = acq.try_clone().unwrap();
    let sent = 6000u64;
    let sender = std::thread::spawn(move || {
        // The switch stops reading once the acquirer is at its limit; this write then waits
        // and ends when the switch closes the link.
        let _ = writer.write_all(&frames(sent, 1));
    });
    // The switch closes the link once its batch for it passes the bound.
    assert!(switch.wait_until(|links, _| links.iter().any(|l| l.name == "acq-1")), "the acquirer is up");
    let closing = switch.wait_until(|links, _| !links.iter().any(|l| l.name == "acq-1" && !l.status.closing));
    assert!(closing, "the stalled acquirer's link is closed");
    // The acquirer reads what reached it before the close.
    let received = read_answers(&mut acq, usize::MAX, Duration::from_secs(10));
    sender.join().unwrap();
    assert!(received.iter().all(|c| c == "00"));
    // The link goes once its close has lingered; what it had not delivered is reversed then.
    assert!(switch.wait_until(|links, _| !links.iter().any(|l| l.name == "acq-1")), "the link is gone");
    switch.wait_quiet();
    let approved = issuer.seen_mti(200).len();
    let reversed = issuer.seen_mti(420).len();
    assert!(
        reversed > 1000,
        "approvals were stuck in the switch: {reversed} reversed, {approved} approved, {} received; {:?}",
        received.len(),
        switch.handle().report_blocking().map(|r| r.stats)
    );
    assert_eq!(
        approved,
        received.len() + reversed,
        "every approval either reached the acquirer or was reversed ({approved} approved, {} received, {reversed} reversed)",
        received.len()
    );
    let report = switch.stop();
    assert_eq!(report.stats.approvals_reversed as usize, reversed);
}

#[test]
fn an_approval_too_big_for_the_acquirers_link_is_answered_96_and_reversed() {
    // The acquirer's link takes bodies of at most 400 bytes; the issuer approves with a
    // 999-character DE 48.
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::ApproveLarge);
    let switch =
        TestSwitch::start(&config(issuer.addr, "  sign_on_required = false\n  frame_bytes_max = 400"));
    wait_signed_on(&switch);
    let mut s = TcpStream::connect(switch.addr("acq-1")).unwrap();
    s.write_all(&frames(10, 1)).unwrap();
    let codes = read_answers(&mut s, 10, WAIT_MAX);
    assert_eq!(codes, vec!["96"; 10], "10 approved, 10 answered (96)");
    assert!(
        issuer.wait_for(WAIT_MAX, |m| m.iter().filter(|m| m.mti() == Mti::REVERSAL_ADVICE).count() == 10),
        "and 10 reversed"
    );
    let report = switch.stop();
    assert_eq!(report.stats.unrelayable, 10);
}

#[test]
fn an_issuer_that_stops_answering_is_out_of_routing_after_three_timeouts_not_echoes() {
    // Two links to the issuer; one goes silent (it reads and answers nothing). Echoes are
    // 30 s apart: only the timeouts in a row can take it out of routing in time. It redials
    // after 5 s, so the rounds below see it gone.
    let silent = Issuer::start(Wire::NATIVE, Behaviour::Silent);
    let good = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let link = |name: &str, addr: std::net::SocketAddr| {
        format!(
            "  [[participant.link]]\n  name = \"{name}\"\n  mode = \"dial\"\n  address = \"{addr}\"\n  \
             framing = \"native\"\n  dialect = \"native\"\n  reconnect_min_ms = 5000\n  reconnect_max_ms = 5000\n"
        )
    };
    let text = format!(
        "[[participant]]\nid = \"acq\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\n  \
         [[participant.link]]\n  name = \"acq-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:0\"\n  \
         framing = \"native\"\n  dialect = \"native\"\n  sign_on_required = false\n\n\
         [[participant]]\nid = \"iss\"\nroles = [\"issuer\"]\n{}{}\n\
         [[route]]\ndefault = true\ndestination = \"iss\"\ntimeout_ms = 300\n",
        link("iss-silent", silent.addr),
        link("iss-good", good.addr)
    );
    let switch = TestSwitch::start(&text);
    switch.wait_signed_on(&["iss-silent", "iss-good"]);
    let mut s = TcpStream::connect(switch.addr("acq-1")).unwrap();
    let mut rounds = Vec::new();
    for round in 0..4u64 {
        // Ten at once: least-outstanding routing spreads them over both links.
        s.write_all(&frames(10, 1 + round * 10)).unwrap();
        let mut codes = read_answers(&mut s, 10, WAIT_MAX);
        codes.sort();
        rounds.push(codes);
    }
    let timeouts: Vec<usize> = rounds.iter().map(|r| r.iter().filter(|c| *c == "68").count()).collect();
    assert!(timeouts[0] > 0 && timeouts[0] <= 5, "the first round meets the silent link: {rounds:?}");
    assert_eq!(&timeouts[1..], &[0, 0, 0], "then it is out of routing: {rounds:?}");
    assert!(rounds.iter().all(|r| r.len() == 10), "every request answered: {rounds:?}");
    let report = switch.stop();
    assert_eq!(report.stats.unresponsive_links, 1, "{:?}", report.stats);
}

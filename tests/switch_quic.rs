//! QUIC links end to end: a partner over QUIC reaches an issuer over TCP and back, on several
//! lanes; certificates are checked as on TLS links; a spoofed DE 32 is declined; a stalled
//! lane delays no other; and an issuer whose QUIC connection drops mid-flight leaves its
//! requests answered by the timeout rule.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::time::Duration;

use corridor_tests::{
    peer::{purchase, Behaviour, Conn, Issuer, Wire},
    quic::{connect, server, Lane},
    switch::{tcp_issuer, TestSwitch},
    tls::CertDir,
};
use corridor_wire::{de, Mti, OwnedMessage};

const WAIT: Duration = Duration::from_secs(5);

fn sign_on(stan: &str) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
    m.set(de::TRANSMISSION_TIME, "1126021500")
        .and_then(|m| m.set(de::STAN, stan.to_owned()))
        .and_then(|m| m.set(de::NETWORK_CODE, "001"))
        .unwrap();
    m
}

fn partner_config(certs: &CertDir, issuer: std::net::SocketAddr) -> String {
    format!(
        r#"
[[participant]]
id = "partner"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
tls_subject_cn = "partner"
  [[participant.link]]
  name = "partner-quic"
  mode = "listen"
  transport = "quic"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
  lanes = 4
{tls}
[[participant]]
id = "other"
roles = ["acquirer"]
acquirer_ids = ["87654321"]
tls_subject_cn = "other"
  [[participant.link]]
  name = "other-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"

{iss}"#,
        tls = certs.tls_table(),
        iss = tcp_issuer(issuer),
    )
}

/// Signs a lane on and waits until a purchase on it is approved (the issuer link comes up
/// just after the switch starts). Returns the next free STAN.
async fn ready(lane: &mut Lane, mut stan: u64) -> u64 {
    lane.send(stan, &sign_on(&format!("{stan:06}"))).await.unwrap();
    let (_, r) = lane.recv(WAIT).await.unwrap().expect("sign-on answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    for _ in 0..100 {
        stan += 1;
        lane.send(stan, &purchase("4761739001010010", &format!("{stan:06}"), "12345678")).await.unwrap();
        let (corr, r) = lane.recv(WAIT).await.unwrap().expect("answered");
        assert_eq!(corr, stan, "the answer comes back on the lane, with its correlation");
        if r.get(de::RESPONSE_CODE) == Some(&b"00"[..]) {
            return stan + 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never approved");
}

#[tokio::test]
async fn a_partner_over_quic_reaches_an_issuer_over_tcp_on_every_lane() {
    let certs = CertDir::new("quic-ok");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&partner_config(&certs, issuer.addr));
    let me = certs.ca.issue("partner", 30).unwrap();
    let conn = connect(switch.addr("partner-quic"), &certs.ca.cert_pem(), Some(&me)).await.unwrap();
    assert_eq!(
        conn.handshake_data()
            .unwrap()
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap()
            .protocol
            .as_deref(),
        Some(&b"corridor/1"[..])
    );
    let mut stan = 1;
    let mut lanes = Vec::new();
    for _ in 0..3 {
        let mut lane = Lane::open(&conn).await.unwrap();
        stan = ready(&mut lane, stan).await;
        lanes.push(lane);
    }
    // Interleaved across the lanes: each answer on the lane its request took.
    for round in 0..5 {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let corr = 1000 + round * 10 + i as u64;
            lane.send(corr, &purchase("4761739001010010", &format!("{stan:06}"), "12345678")).await.unwrap();
            stan += 1;
            let (c, r) = lane.recv(WAIT).await.unwrap().expect("answered");
            assert_eq!(
                (c, r.mti(), r.get(de::RESPONSE_CODE)),
                (corr, Mti::FINANCIAL_RESPONSE, Some(&b"00"[..]))
            );
        }
    }
    assert!(issuer.seen_mti(200).len() >= 15);
    conn.close(0u32.into(), b"done");
    switch.stop();
}

#[tokio::test]
async fn quic_refuses_every_other_certificate_and_spoofed_ids() {
    let certs = CertDir::new("quic-refused");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&partner_config(&certs, issuer.addr));
    let addr = switch.addr("partner-quic");
    let ca = certs.ca.cert_pem();

    // No certificate, another CA's, an expired one: the handshake fails. (In TLS 1.3 the
    // client may finish its side first; the server's alert then closes the connection.)
    let refused = |client: Option<corridor_config::certs::Issued>| {
        let ca = ca.clone();
        async move {
            match connect(addr, &ca, client.as_ref()).await {
                Err(e) => e,
                Ok(conn) => tokio::time::timeout(WAIT, conn.closed()).await.expect("refused").to_string(),
            }
        }
    };
    let why = refused(None).await;
    // TLS alert 116, certificate_required.
    assert!(why.contains("error 116"), "{why}");
    let foreign = corridor_config::certs::Ca::new("another CA", 30).unwrap().issue("partner", 30).unwrap();
    let why = refused(Some(foreign)).await;
    // TLS alert 48, unknown_ca.
    assert!(why.contains("error 48") && why.contains("UnknownIssuer"), "{why}");
    let expired =
        certs.ca.issue_at("partner", time::OffsetDateTime::now_utc() - time::Duration::days(40), 30).unwrap();
    let why = refused(Some(expired)).await;
    // TLS alert 45, certificate_expired.
    assert!(why.contains("error 45") && why.contains("expired"), "{why}");

    // Another participant's valid certificate: the switch closes the connection.
    let other = certs.ca.issue("other", 30).unwrap();
    let conn = connect(addr, &ca, Some(&other)).await.unwrap();
    let why = tokio::time::timeout(WAIT, conn.closed()).await.expect("closed by the switch");
    assert!(why.to_string().contains("wrong participant"), "{why}");

    // The partner itself, sending another participant's DE 32: declined 63.
    let me = certs.ca.issue("partner", 30).unwrap();
    let conn = connect(addr, &ca, Some(&me)).await.unwrap();
    let mut lane = Lane::open(&conn).await.unwrap();
    let stan = ready(&mut lane, 1).await;
    lane.send(77, &purchase("4761739001010010", &format!("{stan:06}"), "87654321")).await.unwrap();
    let (c, r) = lane.recv(WAIT).await.unwrap().expect("answered");
    assert_eq!((c, r.get(de::RESPONSE_CODE)), (77, Some(&b"63"[..])));
    switch.stop();
}

#[tokio::test]
async fn a_peer_cannot_open_more_lanes_than_the_link_allows() {
    let certs = CertDir::new("quic-lanes");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    // The partner's link accepts 4 lanes a connection.
    let switch = TestSwitch::start(&partner_config(&certs, issuer.addr));
    let me = certs.ca.issue("partner", 30).unwrap();
    let conn = connect(switch.addr("partner-quic"), &certs.ca.cert_pem(), Some(&me)).await.unwrap();
    let mut lanes = Vec::new();
    for stan in 1..=4u64 {
        let mut lane = Lane::open(&conn).await.unwrap();
        lane.send(stan, &sign_on(&format!("{stan:06}"))).await.unwrap();
        lane.recv(WAIT).await.unwrap().expect("signed on");
        lanes.push(lane);
    }
    // A fifth waits for stream credit the switch never gives while four are open.
    let fifth = tokio::time::timeout(Duration::from_millis(500), conn.open_bi()).await;
    assert!(fifth.is_err(), "the fifth lane opened");
    // Closing one lane frees its slot.
    let mut first = lanes.remove(0);
    first.send.finish().unwrap();
    drop(first);
    let again = tokio::time::timeout(WAIT, conn.open_bi()).await;
    assert!(again.is_ok_and(|r| r.is_ok()), "a slot freed by a finished lane is given back");
    switch.stop();
}

#[tokio::test]
async fn a_stalled_lane_delays_no_other() {
    let certs = CertDir::new("quic-stall");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&partner_config(&certs, issuer.addr));
    let me = certs.ca.issue("partner", 30).unwrap();
    let conn = connect(switch.addr("partner-quic"), &certs.ca.cert_pem(), Some(&me)).await.unwrap();
    let mut stalled = Lane::open(&conn).await.unwrap();
    let mut stan = ready(&mut stalled, 1).await;
    let mut live = Lane::open(&conn).await.unwrap();
    stan = ready(&mut live, stan).await;
    // Lane A stalls mid-frame: a header announcing 200 bytes, and only 10 of them.
    let mut partial = Vec::new();
    partial.extend_from_slice(&corridor_wire::NativeHeader::new(0, 200, 9).to_bytes());
    partial.extend_from_slice(&[0x02; 10]);
    stalled.send.write_all(&partial).await.unwrap();
    // Lane B goes on as before, promptly.
    for i in 0..20u64 {
        let started = std::time::Instant::now();
        live.send(500 + i, &purchase("4761739001010010", &format!("{stan:06}"), "12345678")).await.unwrap();
        stan += 1;
        let (c, r) = live.recv(WAIT).await.unwrap().expect("answered");
        assert_eq!((c, r.get(de::RESPONSE_CODE)), (500 + i, Some(&b"00"[..])));
        assert!(started.elapsed() < Duration::from_secs(2), "lane B was held up");
    }
    switch.stop();
}

/// A switch that dials an issuer over QUIC on two lanes (route timeout 400 ms), the issuer's
/// side of that connection, and its two lanes, each signed on.
async fn quic_issuer(name: &str) -> (CertDir, TestSwitch, quinn::Connection, Vec<Lane>) {
    let certs = CertDir::new(name);
    let issuer_cert = certs.ca.issue("iss", 30).unwrap();
    certs.write("iss", &issuer_cert);
    let server = server(&certs.dir.join("iss.pem"), &certs.dir.join("iss.key"), &certs.dir.join("ca.pem"));
    let issuer_addr = server.local_addr().unwrap();
    let config = format!(
        r#"
[switch]
reversal_retry_ms = 200
[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
  [[participant.link]]
  name = "acq-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
[[participant]]
id = "iss"
roles = ["issuer"]
tls_subject_cn = "iss"
  [[participant.link]]
  name = "iss-quic"
  mode = "dial"
  transport = "quic"
  address = "{issuer_addr}"
  framing = "native"
  dialect = "native"
  lanes = 2
  reconnect_min_ms = 50
{tls}[[route]]
pan_prefix = "476173"
destination = "iss"
timeout_ms = 400
"#,
        tls = certs.tls_table(),
    );
    let switch = TestSwitch::start(&config);
    // The issuer side: accept the switch's connection and its two lanes, each signing on.
    let conn =
        tokio::time::timeout(WAIT, async { server.accept().await.unwrap().await.unwrap() }).await.unwrap();
    let mut lanes = Vec::new();
    for _ in 0..2 {
        let mut lane = Lane::accept(&conn).await.unwrap();
        let (c, m) = lane.recv(WAIT).await.unwrap().expect("sign-on");
        assert_eq!((m.mti(), m.get(de::NETWORK_CODE)), (Mti::NETWORK_REQUEST, Some(&b"001"[..])));
        let mut r = m.clone();
        r.set_mti(Mti::NETWORK_RESPONSE);
        r.set(de::RESPONSE_CODE, "00").unwrap();
        lane.send(c, &r).await.unwrap();
        lanes.push(lane);
    }
    // Both lanes signed on as the switch sees it.
    let handle = switch.handle().clone();
    let signed = tokio::time::timeout(WAIT, async {
        loop {
            let links = handle.links().await.unwrap_or_default();
            if links.iter().filter(|l| l.name == "iss-quic" && l.status.signed_on).count() == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    signed.await.expect("both lanes signed on");
    (certs, switch, conn, lanes)
}

#[tokio::test]
async fn a_draining_switch_signs_off_its_quic_lanes_and_closes_the_connection() {
    let (_certs, switch, conn, mut lanes) = quic_issuer("quic-drain").await;
    let stopper = tokio::task::spawn_blocking(move || switch.stop());
    // Each lane is signed off before the connection goes (it is not cut at the drain's start).
    for lane in &mut lanes {
        let (c, m) = lane.recv(WAIT).await.unwrap().expect("a sign-off on every lane");
        assert_eq!((m.mti(), m.get(de::NETWORK_CODE)), (Mti::NETWORK_REQUEST, Some(&b"002"[..])));
        let mut r = m.clone();
        r.set_mti(Mti::NETWORK_RESPONSE);
        r.set(de::RESPONSE_CODE, "00").unwrap();
        let _ = lane.send(c, &r).await;
    }
    let report = stopper.await.unwrap();
    assert_eq!(report.requests_pending, 0);
    // And the connection is closed by the switch, not left to the idle timeout.
    let why = tokio::time::timeout(WAIT, conn.closed()).await.expect("closed");
    assert!(
        matches!(&why, quinn::ConnectionError::ApplicationClosed(c) if c.reason.as_ref() == b"switch stopping"),
        "{why:?}"
    );
}

#[tokio::test]
async fn an_issuer_whose_quic_connection_drops_mid_flight_leaves_requests_answered_68() {
    let (_certs, switch, conn, mut lanes) = quic_issuer("quic-drop").await;
    // An acquirer over TCP sends a purchase; it reaches one of the lanes; the issuer then
    // drops the whole connection without answering.
    let acq_addr = switch.addr("acq-1");
    let acquirer = tokio::task::spawn_blocking(move || {
        let mut a = Conn::connect(acq_addr, Wire::NATIVE);
        a.sign_on();
        a.send(42, &purchase("4761739001010010", "000042", "12345678"));
        a.recv_app_within(WAIT)
    });
    let mut reached = false;
    for _ in 0..50 {
        for lane in &mut lanes {
            if let Ok(Some((_, m))) = lane.recv(Duration::from_millis(20)).await {
                if m.mti() == Mti::FINANCIAL_REQUEST {
                    reached = true;
                }
            }
        }
        if reached {
            break;
        }
    }
    assert!(reached, "the purchase reached the issuer over QUIC");
    conn.close(0u32.into(), b"issuer gone");
    drop(lanes);
    let (c, r) = acquirer.await.unwrap().expect("the acquirer is answered");
    assert_eq!((c, r.mti(), r.get(de::RESPONSE_CODE)), (42, Mti::FINANCIAL_RESPONSE, Some(&b"68"[..])));
    switch.stop();
}

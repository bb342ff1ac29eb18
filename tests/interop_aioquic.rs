//! Interoperability with aioquic (PyPI), a QUIC implementation we did not write: a partner
//! built on it connects to Corridor's QUIC link with ALPN `corridor/1` and a client
//! certificate, signs on and sends a purchase as native frames on one lane, and reads the
//! answers, which come from an issuer behind the switch over TCP.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::process::Command;

use bytes::BytesMut;
use corridor_tests::{
    peer::{purchase, Behaviour, Issuer, Wire},
    python::{python, workspace_file},
    switch::{tcp_issuer, TestSwitch},
    tls::CertDir,
};
use corridor_wire::{de, Dialect, Message, Mti, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};

fn frame_hex(correlation: u64, m: &OwnedMessage) -> String {
    let body = m.to_bytes(Dialect::Native).unwrap();
    let mut out = BytesMut::new();
    NativeFramer::new(FRAME_BYTES_MAX).encode(0, correlation, &body, &mut out).unwrap();
    out.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(hex: &str) -> (u64, OwnedMessage) {
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let mut buf = BytesMut::from(&bytes[..]);
    let f = NativeFramer::new(FRAME_BYTES_MAX).decode(&mut buf).unwrap().expect("a whole frame");
    let m = Message::parse(Dialect::Native, f.body().to_vec()).unwrap();
    (f.correlation(), OwnedMessage::from(&m))
}

#[test]
fn an_aioquic_partner_signs_on_and_is_answered_on_its_lane() {
    let certs = CertDir::new("aioquic");
    let partner = certs.ca.issue("partner", 30).unwrap();
    certs.write("partner", &partner);
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let config = format!(
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
{tls}{iss}"#,
        tls = certs.tls_table(),
        iss = tcp_issuer(issuer.addr),
    );
    let switch = TestSwitch::start(&config);
    // The switch dials the issuer as it starts: wait until that link is signed on.
    switch.wait_signed_on(&["iss-1"]);
    let addr = switch.addr("partner-quic");
    let mut sign_on = OwnedMessage::new(Mti::NETWORK_REQUEST);
    sign_on
        .set(de::TRANSMISSION_TIME, "1126021500")
        .and_then(|m| m.set(de::STAN, "000001"))
        .and_then(|m| m.set(de::NETWORK_CODE, "001"))
        .unwrap();
    let out = Command::new(python())
        .arg(workspace_file("tests/interop/aioquic_partner.py"))
        .args(["127.0.0.1", &addr.port().to_string()])
        .arg(certs.dir.join("ca.pem"))
        .arg(certs.dir.join("partner.pem"))
        .arg(certs.dir.join("partner.key"))
        .arg(frame_hex(7, &sign_on))
        .arg(frame_hex(8, &purchase("4761739001010010", "000002", "12345678")))
        .output()
        .expect("python runs");
    assert!(out.status.success(), "aioquic partner: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (c1, r1) = decode(&lines[0]);
    assert_eq!((c1, r1.mti(), r1.get(de::RESPONSE_CODE)), (7, Mti::NETWORK_RESPONSE, Some(&b"00"[..])));
    let (c2, r2) = decode(&lines[1]);
    assert_eq!((c2, r2.mti(), r2.get(de::RESPONSE_CODE)), (8, Mti::FINANCIAL_RESPONSE, Some(&b"00"[..])));
    assert_eq!(issuer.seen_mti(200).len(), 1);
    switch.stop();
}

//! Mutual TLS on TCP links: the switch accepts a participant's own certificate only, refuses
//! at the handshake every other (none, another CA's, an expired one, another participant's),
//! and a participant authenticated by its certificate may only send as itself.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::time::Duration;

use corridor_tests::{
    peer::{purchase, Behaviour, Issuer, Wire},
    switch::{tcp_issuer, TestSwitch},
    tls::{client_config, CertDir, TlsConn},
};
use corridor_wire::{de, Mti, OwnedMessage};

fn sign_on() -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
    m.set(de::TRANSMISSION_TIME, "1126021500")
        .and_then(|m| m.set(de::STAN, "000001"))
        .and_then(|m| m.set(de::NETWORK_CODE, "001"))
        .unwrap();
    m
}

/// Participant `acq` on a TLS listening link (identity: CN "acq"); `iss` behind plain TCP.
fn setup(certs: &CertDir) -> (TestSwitch, Issuer) {
    setup_with(certs, Behaviour::Approve)
}

/// [`setup`] with an issuer that answers by `behaviour`.
fn setup_with(certs: &CertDir, behaviour: Behaviour) -> (TestSwitch, Issuer) {
    let issuer = Issuer::start(Wire::NATIVE, behaviour);
    let config = format!(
        r#"
[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
tls_subject_cn = "acq"
  [[participant.link]]
  name = "acq-tls"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
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
        iss = tcp_issuer(issuer.addr),
    );
    (TestSwitch::start(&config), issuer)
}

/// Whether a connection presenting `client` gets its sign-on answered.
fn signs_on(
    switch: &TestSwitch,
    ca_pem: &str,
    client: Option<&corridor_config::certs::Issued>,
) -> Result<(), String> {
    let mut c = TlsConn::connect(switch.addr("acq-tls"), client_config(ca_pem, client));
    if !c.send(1, &sign_on()) {
        return Err("the handshake failed on send".into());
    }
    match c.recv_within(Duration::from_secs(3))? {
        Some((_, m)) if m.mti() == Mti::NETWORK_RESPONSE => Ok(()),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

#[test]
fn the_participants_own_certificate_is_accepted_and_carries_traffic() {
    let certs = CertDir::new("ok");
    let (switch, issuer) = setup(&certs);
    let acq = certs.ca.issue("acq", 30).unwrap();
    let mut c = TlsConn::connect(switch.addr("acq-tls"), client_config(&certs.ca.cert_pem(), Some(&acq)));
    assert!(c.send(1, &sign_on()));
    let (_, r) = c.recv_within(Duration::from_secs(5)).unwrap().expect("sign-on answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    // One request with nothing after it: its answer must not wait in the TLS session's
    // buffer for a next write (the writer flushes after every batch).
    switch.wait_signed_on(&["iss-1"]);
    assert!(c.send(2, &purchase("4761739001010010", "000002", "12345678")));
    let (corr, r) = c.recv_within(Duration::from_secs(5)).unwrap().expect("purchase answered");
    assert_eq!((corr, r.mti(), r.get(de::RESPONSE_CODE)), (2, Mti::FINANCIAL_RESPONSE, Some(&b"00"[..])));
    assert_eq!(issuer.seen_mti(200).len(), 1, "it reached the issuer");
    switch.stop();
}

#[test]
fn every_other_certificate_is_refused_at_the_handshake() {
    let certs = CertDir::new("refused");
    let (switch, _issuer) = setup(&certs);
    let ca = certs.ca.cert_pem();

    let none = signs_on(&switch, &ca, None);
    assert!(none.as_ref().unwrap_err().contains("CertificateRequired"), "no client certificate: {none:?}");

    let stranger_ca = corridor_config::certs::Ca::new("another CA", 30).unwrap();
    let foreign = stranger_ca.issue("acq", 30).unwrap();
    let r = signs_on(&switch, &ca, Some(&foreign));
    assert!(r.as_ref().unwrap_err().contains("UnknownCA"), "a certificate from another CA: {r:?}");

    let past = time::OffsetDateTime::now_utc() - time::Duration::days(40);
    let expired = certs.ca.issue_at("acq", past, 30).unwrap();
    let r = signs_on(&switch, &ca, Some(&expired));
    assert!(r.as_ref().unwrap_err().contains("CertificateExpired"), "an expired certificate: {r:?}");

    // Valid, from the right CA, but another participant's: refused after the handshake.
    let other = certs.ca.issue("other", 30).unwrap();
    let r = signs_on(&switch, &ca, Some(&other));
    // The handshake itself succeeds (the chain is valid); the switch then closes at once,
    // before anything is read.
    assert!(r.as_ref().unwrap_err().contains("closed"), "another participant's certificate: {r:?}");

    // And the right one still works after all that.
    let acq = certs.ca.issue("acq", 30).unwrap();
    signs_on(&switch, &ca, Some(&acq)).unwrap();
    switch.stop();
}

#[test]
fn an_authenticated_participant_cannot_speak_as_another() {
    let certs = CertDir::new("spoof");
    let (switch, issuer) = setup(&certs);
    let acq = certs.ca.issue("acq", 30).unwrap();
    let mut c = TlsConn::connect(switch.addr("acq-tls"), client_config(&certs.ca.cert_pem(), Some(&acq)));
    assert!(c.send(1, &sign_on()));
    c.recv_within(Duration::from_secs(5)).unwrap().expect("signed on");
    // DE 32 of participant "other".
    assert!(c.send(2, &purchase("4761739001010010", "000002", "87654321")));
    let (_, r) = c.recv_within(Duration::from_secs(5)).unwrap().expect("answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"63"[..]), "security violation");
    assert!(issuer.seen_mti(200).is_empty(), "nothing reached the issuer");
    switch.stop();
}

#[test]
fn a_revoked_certificate_is_refused_where_a_revocation_list_is_configured() {
    let certs = CertDir::new("crl");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let revoked = certs.ca.issue("acq", 30).unwrap();
    let good = certs.ca.issue("acq", 30).unwrap();
    std::fs::write(certs.dir.join("revoked.pem"), certs.ca.revocation_list(&[revoked.serial]).unwrap())
        .unwrap();
    let config = format!(
        r#"
[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
tls_subject_cn = "acq"
  [[participant.link]]
  name = "acq-tls"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
{tls}    crl = ["{crl}"]
{iss}"#,
        tls = certs.tls_table(),
        crl = certs.path("revoked.pem"),
        iss = tcp_issuer(issuer.addr),
    );
    let switch = TestSwitch::start(&config);
    let ca = certs.ca.cert_pem();
    let r = signs_on(&switch, &ca, Some(&revoked));
    assert!(r.as_ref().unwrap_err().contains("CertificateRevoked"), "a revoked certificate: {r:?}");
    signs_on(&switch, &ca, Some(&good)).unwrap();
    switch.stop();
}

#[test]
fn answers_left_in_the_tls_session_when_the_socket_was_full_still_go_out() {
    // The acquirer sends 600 purchases and reads nothing for a second while the issuer
    // approves each with a 999-character DE 48: 660 KB of answers, more than the socket's
    // buffers hold, so TLS records wait in the session while the socket is full. Nothing
    // else will be written on the link: the flush after each batch is what guarantees they
    // leave. (With tokio-rustls 0.26 the last records usually leave with the last write, so
    // this guards the path rather than reproducing a stall every time.)
    let certs = CertDir::new("flush");
    let (switch, _issuer) = setup_with(&certs, Behaviour::ApproveLarge);
    let acq = certs.ca.issue("acq", 30).unwrap();
    let mut c = TlsConn::connect(switch.addr("acq-tls"), client_config(&certs.ca.cert_pem(), Some(&acq)));
    assert!(c.send(1, &sign_on()));
    assert!(c.recv_within(Duration::from_secs(5)).unwrap().is_some(), "signed on");
    switch.wait_signed_on(&["iss-1"]);
    let n = 600u64;
    for stan in 2..2 + n {
        assert!(c.send(stan, &purchase("4761739001010010", &format!("{stan:06}"), "12345678")));
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut answered = 0;
    while answered < n {
        match c.recv_within(Duration::from_secs(5)).unwrap() {
            Some((_, r)) if r.mti() == Mti::FINANCIAL_RESPONSE => answered += 1,
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(answered, n, "every answer arrives, the last ones included");
    switch.stop();
}

#[test]
fn a_reload_with_a_renewed_certificate_serves_it_to_new_connections_and_drains_the_old_ones() {
    let certs = CertDir::new("renew");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let config = format!(
        "[[participant]]\nid = \"acq\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\ntls_subject_cn = \"acq\"\n  \
         [[participant.link]]\n  name = \"acq-tls\"\n  mode = \"listen\"\n  address = \"127.0.0.1:0\"\n  framing = \"native\"\n  \
         dialect = \"native\"\n{}\n{}",
        certs.tls_table(),
        tcp_issuer(issuer.addr)
    );
    let current = corridor_config::reload::Current::of(&corridor_config::parse(&config).unwrap());
    let switch = TestSwitch::start(&config);
    switch.wait_signed_on(&["iss-1"]);
    let acq = certs.ca.issue("acq", 30).unwrap();
    let client = client_config(&certs.ca.cert_pem(), Some(&acq));
    let mut old = TlsConn::connect(switch.addr("acq-tls"), client.clone());
    assert!(old.send(1, &sign_on()));
    assert!(old.recv_within(Duration::from_secs(5)).unwrap().is_some());
    let before = old.server_certificate().expect("the switch presented a certificate");

    // The switch's certificate renewed in place (same paths, a new key and certificate).
    certs.write("switch", &certs.ca.issue("corridor-switch", 30).unwrap());
    let r = corridor_config::reload::rebase(&current, corridor_config::parse(&config).unwrap()).unwrap();
    assert!(
        r.changes.iter().any(|c| c.contains("acq-tls: transport, TLS files or peer identity changed")),
        "{:?}",
        r.changes
    );
    assert_eq!(r.reconfigure.plan[0], corridor_net::LinkPlan::Restart);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The open connection is retired: it carries nothing, so it closes at once (none left
    // draining).
    let draining = rt.block_on(switch.handle().reconfigure(r.reconfigure)).unwrap().unwrap();
    assert_eq!(draining, 0);

    // New connections get the new certificate; the old one, carrying nothing, is closed.
    let mut new = TlsConn::connect(switch.addr("acq-tls"), client);
    assert!(new.send(1, &sign_on()));
    assert!(new.recv_within(Duration::from_secs(5)).unwrap().is_some());
    let after = new.server_certificate().unwrap();
    assert_ne!(before, after, "the renewed certificate is served");
    assert_eq!(old.recv_within(Duration::from_secs(5)), Err("closed by the switch".into()));
    assert!(new.send(2, &purchase("4761739001010010", "000002", "12345678")));
    let (_, m) = new.recv_within(Duration::from_secs(5)).unwrap().expect("answered on the new connection");
    assert_eq!(m.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    switch.stop();
}

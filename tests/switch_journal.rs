//! The journal over real sockets and real files: answers go out once their records are
//! synced, the state directory holds no card data, and a restart continues the same log.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use corridor_journal::entry::Entry;
use corridor_net::journal::Segments;
use corridor_tests::{
    peer::{purchase, Behaviour, Conn, Issuer, Wire, WAIT_MAX},
    switch::{tcp_issuer, TestSwitch},
};
use corridor_wire::{de, Dialect, Mti};

const PAN: &str = "4761739001010010";

fn config(state: &std::path::Path, issuer: std::net::SocketAddr) -> String {
    format!(
        "[[participant]]\nid = \"acq\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\n  \
         [[participant.link]]\n  name = \"acq-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:0\"\n  \
         framing = \"bin2\"\n  dialect = \"iso87-ascii\"\n  sign_on_required = false\n\n{}\n\
         [journal]\ndir = \"{}\"\nkey_file = \"{}\"\ngroup_wait_us = 100\n",
        tcp_issuer(issuer),
        state.join("journal").display(),
        state.join("pan.key").display()
    )
}

/// Until the switch has the issuer link's sign-on answer (requests before it are declined 91).
fn signed_on(h: &corridor_net::Handle) {
    let deadline = std::time::Instant::now() + WAIT_MAX;
    while !h.links_blocking().is_some_and(|l| l.iter().any(|l| l.name == "iss-1" && l.status.signed_on)) {
        assert!(std::time::Instant::now() < deadline, "the issuer link signed on");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A fresh state directory with a PAN key.
fn state_dir(name: &str) -> std::path::PathBuf {
    let state = std::env::temp_dir().join(format!("corridor-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("pan.key"), "5a".repeat(32)).unwrap();
    state
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn answers_wait_for_the_journal_which_holds_no_card_data_and_survives_a_restart() {
    let state = state_dir("e2e");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let wire = Wire::classic(corridor_wire::LengthHeader::Bin2, Dialect::Iso87Ascii);
    for (round, stans) in [(0, 1..=20u32), (1, 21..=30)] {
        let switch = TestSwitch::start(&config(&state, issuer.addr));
        switch.wait_signed_on(&["iss-1"]);
        let mut acq = Conn::connect(switch.addr("acq-1"), wire);
        for stan in stans {
            let mut req = purchase(PAN, &format!("{stan:06}"), "12345678");
            req.set(de::TRACK2, format!("{PAN}=29121011234567890")).unwrap();
            acq.send(0, &req);
            let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
            assert_eq!(
                (r.mti(), r.get(de::RESPONSE_CODE)),
                (Mti::FINANCIAL_RESPONSE, Some(&b"00"[..])),
                "round {round}"
            );
        }
        switch.stop();
    }
    // One log across both runs: 30 transactions, two records each, in sequence.
    let segs = Segments::read(&state.join("journal")).unwrap();
    let scan = segs.scan().expect("a clean log");
    // Nothing torn: at most the prepared segment's zeros after the last record.
    let tail = scan.segments.last().and_then(|(_, s)| s.torn);
    assert!(matches!(tail, None | Some(corridor_journal::Torn::Zeros)), "{tail:?}");
    let kinds: Vec<_> =
        scan.segments.iter().flat_map(|(_, s)| s.records.iter()).map(|f| f.record.kind).collect();
    let of = |k| kinds.iter().filter(|&&x| x == k).count();
    use corridor_journal::Kind;
    assert_eq!(
        (of(Kind::RequestForwarded), of(Kind::AnswerSent), of(Kind::RequestAccepted), of(Kind::Forwarded)),
        (30, 30, 0, 0),
        "two records a transaction: accepted and forwarded, answered"
    );
    assert_eq!(of(Kind::ConfigEvent), 2, "each start's configuration, for the audit trail");
    assert!(of(Kind::LinkEvent) >= 4, "links up and down");
    let answered = scan
        .segments
        .iter()
        .flat_map(|(_, s)| s.records.iter())
        .filter(|f| matches!(Entry::decode(f.record.kind, f.record.payload), Ok(Entry::Answered(_))))
        .count();
    assert_eq!(answered, 30);
    // Every byte of the state directory but the key (segments, checkpoints, anything else):
    // no PAN (ASCII or BCD), no track data, no PIN block.
    let mut bytes = Vec::new();
    let mut files = 0;
    let mut dirs = vec![state.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n != "pan.key") {
                bytes.extend_from_slice(&std::fs::read(&p).unwrap());
                files += 1;
            }
        }
    }
    assert!(files >= 1 && bytes.len() > 90 * 17, "read the whole state directory: {files} files");
    for (what, needle) in [
        ("PAN", PAN.as_bytes()),
        ("PAN (BCD)", &[0x47u8, 0x61, 0x73, 0x90, 0x01, 0x01, 0x00, 0x10][..]),
        ("track 2", b"=29121011234567890".as_slice()),
        ("PIN block", &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF][..]),
    ] {
        assert!(!contains(&bytes, needle), "the journal holds the {what}");
    }
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_failed_sync_stops_the_switch_with_nothing_acknowledged_after_it_and_a_restart_recovers() {
    let state = state_dir("eio");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let wire = Wire::classic(corridor_wire::LengthHeader::Bin2, Dialect::Iso87Ascii);
    let text = config(&state, issuer.addr);

    let fault = std::sync::Arc::new(corridor_net::journal::StorageFault::default());
    let (engine, mut net) =
        corridor_ops::startup::into_parts(corridor_config::parse(&text).unwrap()).unwrap();
    net.journal.as_mut().unwrap().fault = Some(std::sync::Arc::clone(&fault));
    let running = corridor_net::Running::start(engine, net).unwrap();
    let addr = running.addr("acq-1").unwrap();
    signed_on(running.handle());
    let mut acq = Conn::connect(addr, wire);
    acq.send(0, &purchase(PAN, "000001", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("the first is answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    // The disk fails on the second sync from now: the second purchase's request is synced,
    // its answer's sync fails.
    fault.eio_in.store(2, std::sync::atomic::Ordering::SeqCst);
    acq.send(0, &purchase(PAN, "000002", "12345678"));
    assert!(
        issuer.wait_for(WAIT_MAX, |s| s.iter().filter(|m| m.mti() == Mti::FINANCIAL_REQUEST).count() == 2),
        "the second reached the issuer (its records were synced), which approves it"
    );
    assert!(
        acq.recv_app_within(std::time::Duration::from_secs(2)).is_none(),
        "its answer never left: its record was not durable"
    );
    let err = running.stop().expect_err("the switch stopped on the failed sync");
    assert!(err.to_string().contains("syncing the journal"), "{err}");

    // A restart on the same journal: the second is reversed, and its repeat answered 68.
    let switch = TestSwitch::start(&text);
    assert!(
        issuer.wait_for(WAIT_MAX, |s| s.iter().any(|m| m.mti() == Mti::REVERSAL_ADVICE)),
        "the approval the acquirer never got is reversed"
    );
    let rev: Vec<_> = issuer.seen_mti(420);
    assert_eq!(rev.len(), 1, "only the second: the first was answered");
    let mut acq = Conn::connect(switch.addr("acq-1"), wire);
    acq.send(0, &purchase(PAN, "000002", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("the repeat is answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"68"[..]));
    assert_eq!(issuer.seen_mti(200).len(), 2, "and not forwarded again");
    switch.stop();
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_full_disk_declines_new_requests_96_while_what_is_in_flight_is_answered_and_then_recovers() {
    let state = state_dir("enospc");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::ApproveAfter(std::time::Duration::from_secs(1)));
    let wire = Wire::classic(corridor_wire::LengthHeader::Bin2, Dialect::Iso87Ascii);
    let text = config(&state, issuer.addr);

    let fault = std::sync::Arc::new(corridor_net::journal::StorageFault::default());
    let (engine, mut net) =
        corridor_ops::startup::into_parts(corridor_config::parse(&text).unwrap()).unwrap();
    net.journal.as_mut().unwrap().fault = Some(std::sync::Arc::clone(&fault));
    let running = corridor_net::Running::start(engine, net).unwrap();
    let addr = running.addr("acq-1").unwrap();
    signed_on(running.handle());
    assert!(state.join("journal").join("reserve").exists(), "the reserve is held");
    let mut acq = Conn::connect(addr, wire);
    acq.send(0, &purchase(PAN, "000001", "12345678"));
    assert!(issuer.wait_for(WAIT_MAX, |s| s.iter().any(|m| m.mti() == Mti::FINANCIAL_REQUEST)));
    // The disk fills (the seam): the second purchase's records meet it.
    fault.no_space.store(true, std::sync::atomic::Ordering::SeqCst);
    acq.send(0, &purchase(PAN, "000002", "12345678"));
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert!(!state.join("journal").join("reserve").exists(), "released when the disk filled");
    acq.send(0, &purchase(PAN, "000003", "12345678"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    fault.no_space.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut codes = std::collections::BTreeMap::new();
    while codes.len() < 3 {
        let (_, r) = acq.recv_app_within(WAIT_MAX).expect("every request answered");
        codes.insert(
            String::from_utf8(r.get(de::STAN).unwrap().to_vec()).unwrap(),
            String::from_utf8(r.get(de::RESPONSE_CODE).unwrap().to_vec()).unwrap(),
        );
    }
    assert_eq!(codes["000003"], "96", "new while the disk is full: declined");
    assert_eq!(codes["000001"], "00", "in flight before: answered");
    assert_eq!(codes["000002"], "00", "accepted as the disk filled: journaled once it could be, answered");
    assert_eq!(issuer.seen_mti(200).len(), 2, "the declined one never left");
    // Space came back: the reserve is taken again, and new requests are approved.
    let deadline = std::time::Instant::now() + WAIT_MAX;
    let mut stan = 10;
    loop {
        stan += 1;
        acq.send(0, &purchase(PAN, &format!("{stan:06}"), "12345678"));
        let (_, r) = acq.recv_app_within(WAIT_MAX).expect("answered");
        if r.get(de::RESPONSE_CODE) == Some(&b"00"[..]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "new requests taken again once there is room");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(state.join("journal").join("reserve").exists(), "the reserve is held again");
    let report = running.stop().expect("a full disk is not fatal");
    assert!(report.stats.storage_declines >= 1);
    let _ = std::fs::remove_dir_all(&state);
}

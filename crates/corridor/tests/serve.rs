//! The real `corridor` binary: `check-config` on the example, and `serve` answering a
//! request end to end, then stopping cleanly on SIGTERM.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is a failed test; a thread waits, not a task

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use corridor_config::fixture::{two_participants, FixtureLink};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/switch.toml");

#[test]
fn check_config_accepts_the_example_and_refuses_a_broken_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_corridor")).args(["check-config", EXAMPLE]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("participants: 3")
            && text.contains("routes: 5")
            && text.contains("qr napas acquirer 970436"),
        "{text}"
    );

    let dir = std::env::temp_dir().join(format!("corridor-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(EXAMPLE)
            .unwrap()
            .replace("destination = \"issuer-th\"", "destination = \"nobody\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_corridor")).arg("check-config").arg(&bad).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no participant with id \"nobody\""));
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    // An issuer that approves everything, on a port of its own.
    let issuer = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_addr = issuer.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = issuer.accept() else { return };
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Bounded: at most 100 reads.
        for _ in 0..100 {
            let Ok(n) = s.read(&mut chunk) else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            // iso87-ascii with 2-byte binary lengths: answer each whole frame.
            while buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                if buf.len() < 2 + len {
                    break;
                }
                let body: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
                let msg =
                    corridor_wire::Message::parse(corridor_wire::Dialect::Iso87Ascii, &body[..]).unwrap();
                let mut resp = corridor_wire::OwnedMessage::from(&msg);
                resp.set_mti(msg.mti().response().unwrap());
                resp.set(corridor_wire::de::RESPONSE_CODE, "00").unwrap();
                let out = resp.to_bytes(corridor_wire::Dialect::Iso87Ascii).unwrap();
                let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                s.write_all(&framed).unwrap();
            }
        }
    });
    let config = two_participants(
        &FixtureLink::classic("127.0.0.1:0", "bin2", "iso87-ascii").with("sign_on_required = false"),
        &FixtureLink::classic(issuer_addr, "bin2", "iso87-ascii"),
    ) + "[[route]]\ndefault = true\ndestination = \"iss\"\n";
    let dir = std::env::temp_dir().join(format!("corridor-serve-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switch.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Learn the bound port and the sign-on from the log.
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut log = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
        if line.contains("listening") {
            addr = line.split("address=").nth(1).and_then(|a| a.split_whitespace().next()).map(str::to_owned);
        }
        let signed = line.contains("sign-on answered");
        log.push(line);
        if signed && addr.is_some() {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no listening line in {log:#?}")
    });
    let mut acq = TcpStream::connect(addr).unwrap();
    acq.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = corridor_wire::OwnedMessage::new(corridor_wire::Mti::FINANCIAL_REQUEST);
    req.set(corridor_wire::de::PAN, "4761739001010010").unwrap();
    req.set(corridor_wire::de::STAN, "000042").unwrap();
    req.set(corridor_wire::de::TRANSMISSION_TIME, "1125221530").unwrap();
    req.set(corridor_wire::de::ACQUIRER_ID, "12345678").unwrap();
    let body = req.to_bytes(corridor_wire::Dialect::Iso87Ascii).unwrap();
    let mut framed = (body.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    acq.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    acq.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
    acq.read_exact(&mut resp).unwrap();
    let resp = corridor_wire::Message::parse(corridor_wire::Dialect::Iso87Ascii, &resp[..]).unwrap();
    assert_eq!(resp.response_code().map(|c| c.to_string()).as_deref(), Some("00"));
    assert_eq!(resp.stan().map(|s| s.value()), Some(42));

    // A peer floods the log's triggers: 2,000 bodies that break the dictionary and 2,000
    // zero-length frames (40 KB). The log stays bounded: one line per link per kind per
    // interval, with a count.
    let mut flood = Vec::new();
    for _ in 0..2000 {
        flood.extend_from_slice(&[0, 6]);
        flood.extend_from_slice(b"0200ZZ");
        flood.extend_from_slice(&[0, 0]);
    }
    acq.write_all(&flood).unwrap();
    // The link carries on: a request after the flood is still answered.
    acq.write_all(&framed).unwrap();
    acq.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
    acq.read_exact(&mut resp).unwrap();
    // Give the log reader a moment to catch up with what was printed.
    std::thread::sleep(Duration::from_millis(300));
    let during: Vec<String> = rx.try_iter().collect();
    assert!(during.len() < 10, "the flood printed {} lines: {during:#?}", during.len());
    log.extend(during);

    // SIGTERM: drain and exit 0.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(&dir).ok();
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the switch did not stop within 10 s of SIGTERM")
    });
    assert!(status.success(), "exit status {status:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:#?}");
    // The log never shows the full card number.
    assert!(!log.iter().chain(rest.iter()).any(|l| l.contains("4761739001010010")));
}

#[test]
fn certs_dev_makes_the_secure_example_valid() {
    // The README's flow: development certificates for the participants of the secure example,
    // written where the example looks for them (relative to the configuration file).
    let dir = std::env::temp_dir().join(format!("corridor-secure-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("secure.toml");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/secure.toml"), &config).unwrap();
    let before =
        Command::new(env!("CARGO_BIN_EXE_corridor")).arg("check-config").arg(&config).output().unwrap();
    assert!(!before.status.success(), "no certificates yet");
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["certs", "dev", "--out"])
        .arg(dir.join("certs"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for id in ["partner-sg", "network-th", "issuer-vn", "switch"] {
        assert!(dir.join("certs").join(format!("{id}.pem")).is_file(), "{id}");
    }
    let after =
        Command::new(env!("CARGO_BIN_EXE_corridor")).arg("check-config").arg(&config).output().unwrap();
    assert!(after.status.success(), "{}", String::from_utf8_lossy(&after.stderr));
    let summary = String::from_utf8(after.stdout).unwrap();
    assert!(
        summary.contains("listen 127.0.0.1:9443 quic") && summary.contains("listen 127.0.0.1:9444 tls"),
        "{summary}"
    );
    let pin = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["certs", "pin"])
        .arg(dir.join("certs/partner-sg.pem"))
        .output()
        .unwrap();
    let pin = String::from_utf8(pin.stdout).unwrap();
    assert_eq!(pin.trim().len(), 64, "{pin}");
    assert!(String::from_utf8(out.stdout).unwrap().contains(pin.trim()), "certs dev prints the same pin");
    let _ = std::fs::remove_dir_all(&dir);
}

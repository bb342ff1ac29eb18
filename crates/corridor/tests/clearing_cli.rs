//! `corridor clearing` and `corridor reconcile` on the journal a real `corridor serve` wrote:
//! QR payments from a Thai wallet to a UnionPay merchant, approved, declined and timed out
//! (the switch reverses those); the day's file lists exactly the approved ones not reversed,
//! with both currencies, totals and net positions; a partner's file with planted breaks is
//! reconciled against it. And a rate file changed under the running switch prices the next
//! payment once `SIGHUP` reloads it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

mod common;

use std::{
    net::TcpStream,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use bytes::BytesMut;
use common::{answer, corridor, free_port, read_frames, send, serve, state, text};
use corridor_config::fixture::rate;
use corridor_wire::{de, Mti, OwnedMessage};

fn config(wallet_port: u16, network: std::net::SocketAddr) -> String {
    let rates = [rate("CNY", "THB", "4.9", 50), rate("CNY", "USD", "0.14", 0)].concat();
    format!(
        r#"
[switch]
market = "CN"

[currency]
settlement = "USD"

{rates}[[participant]]
id = "wallet-th"
roles = ["acquirer"]
acquirer_ids = ["11110001"]
market = "TH"
currency = "THB"
  [[participant.link]]
  name = "wallet-th-1"
  mode = "listen"
  address = "127.0.0.1:{wallet_port}"
  framing = "native"
  dialect = "native"
  sign_on_required = false

[[participant]]
id = "unionpay"
roles = ["network"]
market = "CN"
currency = "CNY"
networks = ["unionpay"]
  [[participant.link]]
  name = "unionpay-1"
  mode = "dial"
  address = "{network}"
  framing = "native"
  dialect = "native"
  reconnect_min_ms = 20
  reconnect_max_ms = 100

[[route]]
qr_network = "unionpay"
destination = "unionpay"
timeout_ms = 400

[journal]
dir = "journal"
key_file = "pan.key"
"#
    )
}

fn code(amount: &str) -> String {
    corridor_qr::encode(&[
        (0, "01"),
        (1, "12"),
        (15, "6250012362500456123456789012345"),
        (52, "5812"),
        (53, "156"),
        (54, amount),
        (58, "CN"),
        (59, "BEIJING DUCK"),
        (60, "BEIJING"),
    ])
    .unwrap()
}

fn payment(stan: u32, amount: &str) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    m.set(de::PROCESSING_CODE, "000000").unwrap();
    m.set(de::TRANSMISSION_TIME, "1201103000").unwrap();
    m.set(de::STAN, format!("{stan:06}")).unwrap();
    m.set(de::ACQUIRER_ID, "11110001").unwrap();
    m.set(de::RRN, format!("5335100{stan:05}")).unwrap();
    m.set(de::QR_PAYLOAD, code(amount).into_bytes()).unwrap();
    m
}

fn today() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    corridor_wire::clock::utc_text(ms)[..10].to_owned()
}

fn rows(csv_text: &str, record: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            headers.iter().zip(rec.unwrap().iter()).map(|(h, v)| (h.to_owned(), v.to_owned())).collect()
        })
        .filter(|m: &std::collections::HashMap<String, String>| m["record"] == record)
        .collect()
}

#[test]
fn the_days_clearing_file_lists_approved_payments_not_reversed_and_reconciles_with_a_planted_break() {
    let dir = state("clearing");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let network = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    // UnionPay approves, declines STAN 4 with 05, and never answers STAN 5 (the switch times
    // it out, answers 68, and reverses it; the reversal is acknowledged).
    let peer = std::thread::spawn(move || {
        common::serve_peer(listener, &stop2, |m, _| {
            let stan = text(m, de::STAN);
            match (m.mti().value(), stan.as_str()) {
                (200, "000004") => Some((Duration::ZERO, answer(m, "05"))),
                (200, "000005") => None,
                (200, _) => {
                    let mut a = answer(m, "00");
                    a.set(de::AUTH_ID, format!("A{}", &stan[1..])).unwrap();
                    Some((Duration::ZERO, a))
                }
                (420 | 421, _) => Some((Duration::ZERO, answer(m, "00"))),
                _ => None,
            }
        });
    });
    let port = free_port();
    std::fs::write(dir.join("corridor.toml"), config(port, network)).unwrap();
    let day_before = today();
    let switch = serve(&dir.join("corridor.toml"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let amounts = ["100.00", "25.50", "3.00", "7.00", "9.00", "12.34"];
    let mut codes = std::collections::BTreeMap::new();
    let mut buf = BytesMut::new();
    for (i, a) in amounts.iter().enumerate() {
        let stan = u32::try_from(i).unwrap() + 1;
        assert!(send(&mut s, u64::from(stan), &payment(stan, a)));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !codes.contains_key(&stan) && std::time::Instant::now() < deadline {
            for (corr, m) in read_frames(&mut s, &mut buf).expect("the switch stays up") {
                codes.insert(u32::try_from(corr).unwrap(), text(&m, de::RESPONSE_CODE));
            }
        }
    }
    // Found from outside: a wallet's reversal naming its payment in DE 90, with the same
    // RRN and DE 32 but without the DE 41 the payment carried, reversed it at the network
    // but clearing still settled it. Payment 7 carries a terminal; its reversal (8) does not.
    let mut with_terminal = payment(7, "1.00");
    with_terminal.set(de::TERMINAL_ID, "TERM0007").unwrap();
    let mut reversal = payment(8, "1.00");
    reversal.set_mti(Mti::REVERSAL_ADVICE);
    reversal.set(de::RRN, "533510000007").unwrap();
    reversal.set(de::ORIGINAL_DATA, "020000000712011030000001111000100000000000").unwrap();
    for (stan, m) in [(7u32, &with_terminal), (8, &reversal)] {
        assert!(send(&mut s, u64::from(stan), m));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !codes.contains_key(&stan) && std::time::Instant::now() < deadline {
            for (corr, m) in read_frames(&mut s, &mut buf).expect("the switch stays up") {
                codes.insert(u32::try_from(corr).unwrap(), text(&m, de::RESPONSE_CODE));
            }
        }
    }
    let got: Vec<&str> = codes.values().map(String::as_str).collect();
    assert_eq!(got, ["00", "00", "00", "05", "68", "00", "00", "00"]);
    // Let the reversal of STAN 5 be acknowledged, then stop the switch: the journal is
    // complete on disk.
    std::thread::sleep(Duration::from_millis(600));
    assert!(switch.term().success());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    peer.join().unwrap();

    let cfg = dir.join("corridor.toml");
    let date = today();
    let mut csv_text = String::new();
    for d in if date == day_before { vec![date.clone()] } else { vec![day_before.clone(), date.clone()] } {
        let (ok, out) = corridor(&["clearing", "--config", cfg.to_str().unwrap(), "--date", &d]);
        assert!(ok, "{out}");
        if csv_text.is_empty() {
            csv_text = out;
        } else {
            csv_text.extend(out.lines().skip(1).map(|l| format!("{l}\n")));
        }
    }
    let tx = rows(&csv_text, "transaction");
    let rrns: Vec<&str> = tx.iter().map(|r| r["rrn"].as_str()).collect();
    assert_eq!(
        rrns,
        ["533510000001", "533510000002", "533510000003", "533510000006"],
        "approved, not declined or reversed"
    );
    let first = &tx[0];
    assert_eq!(first["originator"], "wallet-th");
    assert_eq!(first["destination"], "unionpay");
    assert_eq!(first["flow"], "inbound");
    assert_eq!(first["amount"], "10000");
    assert_eq!(first["currency"], "CNY");
    // 10,000 fen × 4.9245 = 49,245 satang; × 0.14 = 1,400 cents.
    assert_eq!(
        (
            first["billing_amount"].as_str(),
            first["billing_currency"].as_str(),
            first["billing_rate"].as_str()
        ),
        ("49245", "THB", "4.9245")
    );
    assert_eq!(
        (
            first["settlement_amount"].as_str(),
            first["settlement_currency"].as_str(),
            first["settlement_rate"].as_str()
        ),
        ("1400", "USD", "0.14")
    );
    assert_eq!(
        (first["stan"].as_str(), first["transmission_time"].as_str(), first["acquirer_id"].as_str()),
        ("000001", "1201103000", "11110001")
    );
    assert_eq!(first["auth_code"], "A00001");
    assert!(first["answered_at"].starts_with(&day_before[..4]));
    let totals = rows(&csv_text, "total");
    if date == day_before {
        assert_eq!(totals.len(), 1);
        // 100.00 + 25.50 + 3.00 + 12.34 CNY.
        assert_eq!(
            (totals[0]["currency"].as_str(), totals[0]["count"].as_str(), totals[0]["amount"].as_str()),
            ("CNY", "4", "14084")
        );
        let positions = rows(&csv_text, "position");
        let pos: Vec<(&str, &str, &str)> = positions
            .iter()
            .map(|r| (r["participant"].as_str(), r["counterparty"].as_str(), r["net"].as_str()))
            .collect();
        // Settlement: 1,400 + 357 + 42 + 173 = 1,972 cents (25.50 × 0.14 = 3.57; 3.00 → 0.42;
        // 12.34 × 0.14 = 1.7276 → 1.73).
        assert_eq!(pos, [("unionpay", "wallet-th", "1972"), ("wallet-th", "unionpay", "-1972")]);
    }
    // One participant's JSON file: the same transactions.
    let (ok, json) = corridor(&[
        "clearing",
        "--config",
        cfg.to_str().unwrap(),
        "--date",
        &date,
        "--participant",
        "unionpay",
        "--format",
        "json",
    ]);
    assert!(ok, "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["participant"], "unionpay");
    if date == day_before {
        assert_eq!(doc["transactions"].as_array().unwrap().len(), 4);
        assert_eq!(doc["positions"].as_array().unwrap().len(), 1, "only unionpay's position");
    }
    let (ok, out) = corridor(&["clearing", "--config", cfg.to_str().unwrap(), "--date", "2026-13-01"]);
    assert!(!ok && out.contains("YYYY-MM-DD"), "{out}");

    // The partner's file: the same, but one amount differs, one of ours is missing, and it
    // lists a reversal of a payment it does not have.
    let ours = dir.join("ours.csv");
    std::fs::write(&ours, &csv_text).unwrap();
    let theirs_text = csv_text
        .lines()
        .filter(|l| !l.contains("533510000003"))
        .map(|l| if l.contains("533510000002") { l.replacen(",2550,", ",2551,", 1) } else { l.to_owned() })
        .chain(std::iter::once({
            // A reversal line: the columns of a transaction, `mti` 0420.
            let mut cols = vec![String::new(); 29];
            for (i, v) in [
                (0, "transaction"),
                (1, date.as_str()),
                (4, "wallet-th"),
                (5, "unionpay"),
                (7, "0420"),
                (8, "533510099999"),
                (9, "000099"),
                (10, "1201103000"),
                (11, "11110001"),
                (16, "500"),
                (17, "CNY"),
            ] {
                cols[i] = v.to_owned();
            }
            cols.join(",")
        }))
        .collect::<Vec<_>>()
        .join("\n");
    let theirs = dir.join("theirs.csv");
    std::fs::write(&theirs, theirs_text).unwrap();
    let (ok, out) = corridor(&["reconcile", ours.to_str().unwrap(), theirs.to_str().unwrap()]);
    assert!(!ok, "breaks exit non-zero: {out}");
    assert!(out.contains("amount-mismatch") && out.contains("533510000002"), "{out}");
    assert!(out.contains("missing-theirs") && out.contains("533510000003"), "{out}");
    assert!(out.contains("reversal-only") && out.contains("533510099999"), "{out}");
    assert!(out.contains("3 breaks"), "{out}");
    assert!(out.contains("total matched") && out.contains("       2  11234 CNY"), "{out}");
    // Found from outside: the break's detail read `amount Some(25000) VND`.
    assert!(!out.contains("Some(") && !out.contains("None"), "{out}");
    let (ok, out) = corridor(&["reconcile", ours.to_str().unwrap(), ours.to_str().unwrap()]);
    assert!(ok, "a file reconciles with itself: {out}");

    // An empty day is a file with its header row (it was an empty file).
    let (ok, out) = corridor(&["clearing", "--config", cfg.to_str().unwrap(), "--date", "2001-01-01"]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("record,business_date,"), "{out}");
    assert_eq!(rows(&out, "transaction").len(), 0);

    // A reader that stops reading (`| head`) is no error: nothing on stderr, exit 0. The
    // pipe's reading end is closed before the clearing is written.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["clearing", "--config", cfg.to_str().unwrap(), "--date", &date, "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{:?} {err}", out.status);
}

#[test]
fn a_rate_file_reloaded_by_sighup_prices_the_next_payment() {
    let dir = state("rates-reload");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let network = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let peer = std::thread::spawn(move || {
        common::serve_peer(listener, &stop2, |m, _| {
            seen2.lock().unwrap().push((text(m, de::RATE_BILLING), text(m, de::AMOUNT_BILLING)));
            Some((Duration::ZERO, answer(m, "00")))
        });
    });
    let port = free_port();
    // The CNY -> THB quote comes from a rate file; the inline one is removed.
    let rates = |r: &str| rate("CNY", "THB", r, 50);
    let text_cfg = config(port, network);
    let start = text_cfg.find("[[rate]]\nquote = \"CNY-THB-1\"").unwrap();
    let end = text_cfg[start..].find("[[rate]]\nquote = \"CNY-USD-1\"").unwrap() + start;
    let cfg_text = format!(
        "{}{}",
        text_cfg[..start]
            .replace("settlement = \"USD\"", "settlement = \"USD\"\nrate_files = [\"rates.toml\"]"),
        &text_cfg[end..]
    );
    std::fs::write(dir.join("rates.toml"), rates("4.9")).unwrap();
    std::fs::write(dir.join("corridor.toml"), cfg_text).unwrap();
    let switch = serve(&dir.join("corridor.toml"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = BytesMut::new();
    let mut pay = |stan: u32| -> String {
        assert!(send(&mut s, u64::from(stan), &payment(stan, "100.00")));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Some((_, m)) =
                read_frames(&mut s, &mut buf).expect("the switch stays up").into_iter().next()
            {
                return text(&m, de::RESPONSE_CODE);
            }
        }
        panic!("no answer to {stan}");
    };
    assert_eq!(pay(1), "00");
    std::fs::write(dir.join("rates.toml"), rates("5.0")).unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &switch.child.id().to_string()]).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !switch.logged("reload applied") {
        assert!(std::time::Instant::now() < deadline, "the reload was applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(switch.logged("rate quote CNY-THB-1: CNY -> THB at 4.9"), "the change is logged");
    assert_eq!(pay(2), "00");
    let got = seen.lock().unwrap().iter().filter(|(r, _)| !r.is_empty()).cloned().collect::<Vec<_>>();
    // 4.9 × 1.005 = 4.9245, then 5.0 × 1.005 = 5.025: 100.00 CNY is 492.45, then 502.50 THB.
    assert_eq!(
        got,
        [
            ("40049245".to_owned(), "000000049245".to_owned()),
            ("30005025".to_owned(), "000000050250".to_owned())
        ]
    );
    drop(switch);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    peer.join().unwrap();
}

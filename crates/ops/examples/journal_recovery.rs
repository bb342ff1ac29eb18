//! How long a switch takes to start on a long journal, and how much disk a million
//! transactions take.
//!
//! Writes `--transactions N` purchases (accepted, forwarded, answered; one in ten thousand
//! left open as a crash would leave it; one in a hundred reversed by the switch and
//! acknowledged) through the journal's own appender and writer into a state directory, with
//! checkpoints and retention as a running switch makes them, then times what `corridor
//! serve` does before it accepts traffic: `Loaded::into_parts` (recovery: the newest
//! checkpoint and the segments after it; then the engine resumes what is owed).
//!
//! ```text
//! cargo run --release -p corridor-ops --example journal_recovery -- \
//!     --transactions 10000000 --dir /var/tmp/corridor-recovery [--cold]
//! ```
//!
//! `--cold` empties the page cache before each start (root only), as after a reboot.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // a measuring tool

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use corridor_journal::{
    entry::{Accepted, Answered, Entry, Forwarded, Key, ReversalQueued},
    request::{seal, PanKey},
    Appender, GroupCommit,
};
use corridor_wire::{de, Dialect, Message, Mti, OwnedMessage};

/// The switch: the shared two-participant fixture (its acquirer on ISO 8583 ASCII), a
/// route for BIN 4 and a journal.
fn config() -> String {
    corridor_config::fixture::two_participants(
        &corridor_config::fixture::FixtureLink::classic("127.0.0.1:0", "bin2", "iso87-ascii"),
        &corridor_config::fixture::FixtureLink::native("127.0.0.1:9"),
    ) + "[[route]]\npan_prefix = \"4\"\ndestination = \"iss\"\n\n[journal]\ndir = \"journal\"\nkey_file = \"pan.key\"\n"
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn purchase(i: u64) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    m.set(de::PAN, format!("47617390{:08}", i % 100_000_000).into_bytes()).unwrap();
    m.set(de::PROCESSING_CODE, "000000").unwrap();
    m.set(de::AMOUNT, "000000012500").unwrap();
    m.set(de::TRANSMISSION_TIME, "1125221530").unwrap();
    m.set(de::STAN, format!("{:06}", i % 1_000_000).into_bytes()).unwrap();
    m.set(de::ACQUIRER_ID, "12345678").unwrap();
    m.set(de::RRN, format!("{:012}", i).into_bytes()).unwrap();
    m.set(de::TERMINAL_ID, format!("T{:07}", i / 1_000_000).into_bytes()).unwrap();
    m.set(de::CURRENCY, "702").unwrap();
    m
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |r| r.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}

fn main() {
    let n: u64 = arg("--transactions").map_or(1_000_000, |s| s.parse().unwrap());
    let state = PathBuf::from(
        arg("--dir").unwrap_or_else(|| std::env::temp_dir().join("corridor-recovery").display().to_string()),
    );
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("pan.key"), "5a".repeat(32)).unwrap();
    std::fs::write(state.join("switch.toml"), config()).unwrap();
    let dir = state.join("journal");
    let key = PanKey::new(1, &[0x5A; 32]).unwrap();
    let policy = GroupCommit::default();
    let mut appender = Appender::new(policy, 1, None);
    let mut writer = corridor_net::journal::Writer::open(&dir, None).unwrap();
    let day = Duration::from_secs(86_400);
    let (mut written, mut payload, mut sealed, mut segments) = (0u64, Vec::new(), Vec::new(), 0u32);
    let mut checkpoint_time = Duration::ZERO;
    let t = Instant::now();
    let started = Instant::now();
    let put = |a: &mut Appender, e: &Entry, payload: &mut Vec<u8>| {
        payload.clear();
        e.encode(payload);
        a.append(e.kind(), payload, t)
    };
    for i in 0..n {
        let req = purchase(i);
        let bytes = req.to_bytes(Dialect::Native).unwrap();
        let msg = Message::parse(Dialect::Native, bytes).unwrap();
        sealed.clear();
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_be_bytes());
        seal(&msg, &key, nonce, &mut Vec::new(), &mut sealed).unwrap();
        let stan = u32::try_from(i % 1_000_000).unwrap();
        let terminal: [u8; 8] = format!("T{:07}", i / 1_000_000).into_bytes().try_into().unwrap();
        let key = Key {
            participant: "acq".into(),
            class: 2,
            stan,
            time: 1_125_221_530,
            terminal,
            acquirer: corridor_journal::entry::institution_code(b"12345678"),
            forwarder: 0,
        };
        let accepted = Entry::Accepted(Accepted {
            key: key.clone(),
            link: "acq-1".into(),
            correlation: 0,
            request: sealed.clone(),
            at_unix_ms: 0,
        });
        let seq = put(&mut appender, &accepted, &mut payload);
        let sent_stan: [u8; 6] = format!("{:06}", i % 1_000_000).into_bytes().try_into().unwrap();
        let forwarded =
            Forwarded { request: seq, destination: "iss".into(), link: "iss-1".into(), key: i, sent_stan };
        put(&mut appender, &Entry::Forwarded(forwarded), &mut payload);
        if i % 10_000 != 9_999 {
            let code = if i % 100 == 42 { *b"68" } else { *b"00" };
            let answered = Answered {
                request: seq,
                code,
                auth: Some(*b"AUTH01"),
                switch_made: code == *b"68",
                at_unix_ms: 0,
            };
            put(&mut appender, &Entry::Answered(answered), &mut payload);
            if code == *b"68" {
                let id = appender.next_seq();
                let q = ReversalQueued {
                    id,
                    destination: "iss".into(),
                    reversal: sealed.clone(),
                    queued_unix_ms: corridor_net::journal::unix_ms(),
                    original: Some(key.clone()),
                    advice: None,
                };
                put(&mut appender, &Entry::ReversalQueued(q), &mut payload);
                put(&mut appender, &Entry::ReversalSent { id, attempt: 0 }, &mut payload);
                put(&mut appender, &Entry::ReversalAcked { id }, &mut payload);
            }
        }
        // Batches of the group-commit bound (a busy switch's), not one per transaction.
        if appender.buffered() < policy.records_max && i + 1 < n {
            continue;
        }
        while let Some(b) = appender.poll_batch(t, corridor_net::journal::unix_ms()) {
            written += b.bytes.len() as u64;
            let new_segment = b.new_segment.is_some();
            writer.write(&b).unwrap();
            appender.handle_synced(b.last_seq);
            if new_segment {
                segments += 1;
                if segments % 4 == 0 {
                    // As the switch does, every four segments (here inline, there beside it).
                    let c = Instant::now();
                    corridor_net::journal::checkpoint(&dir, day, Duration::ZERO).unwrap();
                    checkpoint_time += c.elapsed();
                }
            }
        }
    }
    let fill = started.elapsed();
    let per_million = written as f64 / (n as f64 / 1e6) / (1 << 20) as f64;
    println!(
        "wrote {n} transactions ({} records, {:.0} MiB of records: {per_million:.0} MiB per million) in {:.1} s; \
         {} segments, checkpoints took {:.1} s in all",
        appender.next_seq() - 1,
        written as f64 / (1 << 20) as f64,
        fill.as_secs_f64(),
        segments + 1,
        checkpoint_time.as_secs_f64()
    );
    println!(
        "state directory now: {:.0} MiB (retention 0: covered segments removed); newest checkpoint {:.0} MiB",
        dir_bytes(&dir) as f64 / (1 << 20) as f64,
        corridor_net::journal::checkpoints(&dir).unwrap().last().map_or(0.0, |s| std::fs::metadata(
            dir.join(format!("checkpoint-{s:020}.ckp"))
        )
        .map_or(0, |m| m.len())
            as f64
            / (1 << 20) as f64)
    );
    drop(writer);
    // What `corridor serve` does before it takes traffic, timed three times (the page
    // cache warm after the first, as on a restart right after a crash).
    let t0 = Instant::now();
    let ck = corridor_net::journal::load_checkpoint(&dir).unwrap();
    let t1 = t0.elapsed();
    let r = corridor_net::journal::recover(&dir).unwrap();
    println!(
        "of which: the checkpoint read {:.2} s; recovery (checkpoint + {} records after it) {:.2} s; {} outcomes",
        t1.as_secs_f64(),
        r.records,
        t0.elapsed().as_secs_f64() - t1.as_secs_f64(),
        ck.outcomes.len()
    );
    let cold = std::env::args().any(|a| a == "--cold");
    for round in 0..3 {
        if cold {
            // Needs root: the page cache emptied, as after a machine restart.
            let _ = std::process::Command::new("sync").status();
            std::fs::write("/proc/sys/vm/drop_caches", "3\n").expect("--cold needs root");
        }
        let loaded = corridor_config::load(&state.join("switch.toml")).unwrap();
        let t0 = Instant::now();
        let (engine, _net) = corridor_ops::startup::into_parts(loaded).unwrap();
        let took = t0.elapsed();
        println!(
            "start {round}: {:.2} s to recover and resume ({} outcomes in the duplicate window, {} reversals owed)",
            took.as_secs_f64(),
            engine.outcomes_remembered(),
            engine.reversals_pending()
        );
    }
}

//! `corridor journal verify|inspect|tail|truncate` on a log written through the real file
//! layer: clean, with a torn tail, and with a corrupt record inside.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use std::{path::Path, process::Command, time::Instant};

use corridor_journal::{
    entry::{Accepted, Answered, Entry},
    Appender, GroupCommit,
};
use corridor_net::journal::Writer;

fn corridor(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corridor")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn write_log(dir: &Path, records: u64) {
    let policy = GroupCommit { records_max: 10, ..GroupCommit::default() };
    let mut a = Appender::new(policy, 1, None);
    let mut w = Writer::open(dir, None).unwrap();
    let t = Instant::now();
    for i in 0..records {
        // Requests and their answers, one after the other; an odd count leaves one open.
        let entry = if i % 2 == 0 {
            Entry::Accepted(Accepted {
                key: corridor_journal::entry::Key {
                    stan: u32::try_from(i).unwrap(),
                    time: 1_125_221_530,
                    ..corridor_journal::entry::key("acq", 2, 0)
                },
                link: "acq-1".into(),
                correlation: 0,
                request: vec![0; 40],
                at_unix_ms: 0,
            })
        } else {
            Entry::Answered(Answered {
                request: i,
                code: *b"00",
                auth: None,
                switch_made: false,
                at_unix_ms: 0,
            })
        };
        let mut payload = Vec::new();
        entry.encode(&mut payload);
        a.append(entry.kind(), &payload, t);
        if let Some(b) = a.poll_batch(t + GroupCommit::default().wait, 0) {
            w.write(&b).unwrap();
            a.handle_synced(b.last_seq);
        }
    }
}

#[test]
fn the_journal_commands_verify_list_and_cut_a_log() {
    let dir = std::env::temp_dir().join(format!("corridor-journal-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_log(&dir, 50);
    let d = dir.to_str().unwrap();
    let (ok, out, _) = corridor(&["journal", "verify", d]);
    assert!(ok && out.contains("50 records, next sequence 51") && out.contains("clean"), "{out}");
    assert!(out.contains("0 accepted and never forwarded") && out.contains("25 answered outcomes"), "{out}");
    let (ok, out, _) = corridor(&["journal", "inspect", d]);
    assert!(ok);
    assert_eq!(out.lines().count(), 51, "a header and every record:\n{out}");
    assert!(out.contains("RequestAccepted") && out.contains("AnswerSent"));
    let (_, out, _) = corridor(&["journal", "tail", d, "-n", "3"]);
    let seqs: Vec<&str> = out.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(seqs, ["48", "49", "50"]);

    // A torn tail is reported, not an error. (The segment's file may go on past its
    // records in zeros: written around the page cache, to its last block's end.)
    let (_, read) = corridor_net::journal::read_state(&dir).unwrap();
    let (segs, _, _, _, end) = read.unwrap();
    let (last, bytes) = segs.files.last().unwrap();
    let end = end.unwrap_or(bytes.len());
    std::fs::write(segs.path(*last), &bytes[..end - 7]).unwrap();
    let (ok, out, _) = corridor(&["journal", "verify", d]);
    assert!(ok && out.contains("49 records") && out.contains("torn tail"), "{out}");

    // A corrupt record inside the log: exit 1, segment and offset named.
    let (first, bytes) = &segs.files[0];
    let mut bad = bytes.clone();
    bad[60] ^= 0x80;
    std::fs::write(segs.path(*first), &bad).unwrap();
    let (ok, _, err) = corridor(&["journal", "verify", d]);
    assert!(!ok, "corruption fails the check");
    assert!(err.contains(&format!("{first:020}.seg, offset 32")), "{err}");
    // Cutting there is deliberate.
    let (ok, _, err) =
        corridor(&["journal", "truncate", d, "--segment", &first.to_string(), "--offset", "32"]);
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, _, err) =
        corridor(&["journal", "truncate", d, "--segment", &first.to_string(), "--offset", "32", "--yes"]);
    assert!(ok, "{err}");
    let (ok, out, _) = corridor(&["journal", "verify", d]);
    assert!(ok && out.contains("0 records") && out.contains("clean"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Interoperability with pyiso8583 4.x, an ISO 8583 implementation we did not write.
//!
//! Random messages encoded by pyiso8583 (`default` and `default_ascii` specs) decode here to
//! the same fields, and random messages encoded here decode there to the same fields, for
//! `iso87-ascii` and `iso87-hex`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use corridor_tests::python::{python, workspace_file};
use corridor_wire::{owned::generate, Dialect, Message, OwnedMessage};
use serde_json::{json, Value};

/// Messages per dialect and direction.
const MESSAGES: usize = 300;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Our view of a message in the JSON shape both sides print.
fn fields_json(m: &OwnedMessage) -> BTreeMap<String, String> {
    m.iter()
        .map(|(id, v)| {
            let s = if id.spec().ty.is_binary() {
                hex(v)
            } else {
                String::from_utf8(v.to_vec()).expect("text is ASCII")
            };
            (id.get().to_string(), s)
        })
        .collect()
}

fn peer() -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(workspace_file("tests/interop/pyiso8583_peer.py"));
    cmd
}

#[test]
fn messages_encoded_by_pyiso8583_decode_here_to_the_same_fields() {
    let out = peer().args(["gen", &MESSAGES.to_string(), "8583"]).output().expect("python runs");
    assert!(out.status.success(), "pyiso8583 peer failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut seen = BTreeMap::new();
    for line in String::from_utf8(out.stdout).expect("utf-8").lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        let dialect: Dialect = v["dialect"].as_str().unwrap().parse().unwrap();
        let bytes: Vec<u8> = {
            let h = v["hex"].as_str().unwrap();
            (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
        };
        let m = Message::parse(dialect, &bytes[..]).unwrap_or_else(|e| panic!("{dialect}: {e}\n{line}"));
        let ours = OwnedMessage::from(&m);
        assert_eq!(ours.mti().to_string(), v["mti"].as_str().unwrap());
        let theirs: BTreeMap<String, String> = serde_json::from_value(v["fields"].clone()).unwrap();
        assert_eq!(fields_json(&ours), theirs, "{dialect}: {line}");
        // And our encoder gives back pyiso8583's exact bytes.
        assert_eq!(hex(&ours.to_bytes(dialect).unwrap()), v["hex"].as_str().unwrap(), "{dialect}");
        *seen.entry(dialect.name()).or_insert(0) += 1;
    }
    assert_eq!(seen.get("iso87-ascii"), Some(&MESSAGES));
    assert_eq!(seen.get("iso87-hex"), Some(&MESSAGES));
}

#[test]
fn messages_encoded_here_decode_in_pyiso8583_to_the_same_fields() {
    let mut child = peer()
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // A fixed xorshift sequence: the same messages every run.
    let mut state = 0x8583_2026_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut checked = 0;
    for dialect in [Dialect::Iso87Ascii, Dialect::Iso87Hex] {
        for _ in 0..MESSAGES {
            // Each field present with probability 1/4 (two random masks ANDed), as on the
            // other side.
            let mut word = || u128::from(next()) << 64 | u128::from(next());
            let mask = word() & word();
            let seed: Vec<u8> = (0..1024).map(|_| next() as u8).collect();
            let m = generate::message((next() % 10_000) as u16, mask, &seed);
            let Ok(bytes) = m.to_bytes(dialect) else { continue };
            writeln!(stdin, "{}", json!({"dialect": dialect.name(), "hex": hex(&bytes)})).unwrap();
            stdin.flush().unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).expect("pyiso8583 answers");
            let theirs: Value = serde_json::from_str(&line).expect("json line");
            assert!(
                theirs.get("error").is_none(),
                "{dialect}: pyiso8583 refused {}: {}",
                hex(&bytes),
                theirs["error"]
            );
            assert_eq!(theirs["mti"].as_str().unwrap(), m.mti().to_string());
            let fields: BTreeMap<String, String> = serde_json::from_value(theirs["fields"].clone()).unwrap();
            assert_eq!(fields, fields_json(&m), "{dialect}: {}", hex(&bytes));
            checked += 1;
        }
    }
    drop(stdin);
    assert!(child.wait().expect("python exits").success());
    assert!(checked >= MESSAGES, "most generated messages fit a frame ({checked} checked)");
}

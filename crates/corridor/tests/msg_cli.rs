//! `corridor msg` as an operator runs it: the real binary, stdin in, stdout and exit code out.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod common;

use std::{path::PathBuf, process::Output};

use serde_json::Value;

fn corridor(args: &[&str], stdin: &[u8]) -> Output {
    common::corridor_with_stdin(args, stdin)
}

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto-spec/vectors").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("json")
}

fn vector(dialect: &str, name: &str) -> Value {
    vectors(&format!("{dialect}.json"))["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .expect("vector exists")
}

#[test]
fn decode_then_encode_gives_back_every_golden_vector() {
    for dialect in ["native", "iso87-ascii", "iso87-hex"] {
        for v in vectors(&format!("{dialect}.json"))["vectors"].as_array().expect("vectors") {
            let hex = v["hex"].as_str().expect("hex");
            let out = corridor(&["msg", "decode", "--dialect", dialect, "--reveal"], hex.as_bytes());
            assert!(
                out.status.success(),
                "{dialect}/{}: {}",
                v["name"],
                String::from_utf8_lossy(&out.stderr)
            );
            let json: Value = serde_json::from_slice(&out.stdout).expect("decode prints JSON");
            assert_eq!(json, v["expect"], "{dialect}/{}", v["name"]);
            let out = corridor(&["msg", "encode", "--dialect", dialect], &out.stdout);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hex, "{dialect}/{}", v["name"]);
        }
    }
}

#[test]
fn decode_masks_card_data_by_default() {
    let v = vector("iso87-ascii", "purchase_0200");
    let out = corridor(&["msg", "decode", "--dialect", "iso87-ascii"], v["hex"].as_str().unwrap().as_bytes());
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("4761739001010010"), "the full PAN never prints: {stdout}");
    assert!(!stdout.contains("0123456789ABCDEF"), "the PIN block never prints");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["fields"]["2"], "476173******0010");
    assert_eq!(json["fields"]["35"].as_str().unwrap().chars().filter(|&c| c != '*').count(), 0);
    assert_eq!(json["fields"]["11"], "000042");
    assert!(String::from_utf8_lossy(&out.stderr).contains("masked"));
}

#[test]
fn raw_file_input_and_framing() {
    let v = vector("native", "sign_on_0800");
    let json = serde_json::to_vec(
        &serde_json::json!({"mti": "0800", "fields": v["expect"]["fields"], "correlation": 77}),
    )
    .unwrap();
    let out = corridor(&["msg", "encode", "--dialect", "native", "--framing", "native"], &json);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hex = String::from_utf8(out.stdout).unwrap();
    let raw: Vec<u8> =
        (0..hex.trim().len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    assert_eq!(&raw[..2], &[0x85, 0x83], "a native frame starts with its magic");
    let dir = std::env::temp_dir().join(format!("corridor-msg-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("frame.bin");
    std::fs::write(&file, &raw).unwrap();
    let out = corridor(
        &["msg", "decode", "--dialect", "native", "--framing", "native", "--file", file.to_str().unwrap()],
        b"",
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(back["correlation"], 77);
    assert_eq!(back["fields"], v["expect"]["fields"]);

    let out = corridor(&["msg", "encode", "--dialect", "iso87-ascii", "--framing", "ascii4"], &json);
    assert!(!out.status.success(), "correlation only goes with native framing");
}

#[test]
fn bad_input_fails_with_one_precise_line() {
    for v in vectors("negative.json")["vectors"].as_array().unwrap() {
        if v["layer"] != "message" {
            continue;
        }
        let dialect = v["dialect"].as_str().unwrap();
        let out = corridor(&["msg", "decode", "--dialect", dialect], v["hex"].as_str().unwrap().as_bytes());
        assert!(!out.status.success(), "{}", v["name"]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{}: {stderr}", v["name"]);
        assert!(stderr.contains("offset"), "{}: names the offset: {stderr}", v["name"]);
        if let Some(field) = v["field"].as_u64() {
            assert!(stderr.contains(&format!("field {field}")), "{}: names the field: {stderr}", v["name"]);
        }
    }
    let cases: &[(&[&str], &[u8], &str)] = &[
        (&["msg", "decode", "--dialect", "native"], b"02zz", "hex digit"),
        (
            &["msg", "encode", "--dialect", "native"],
            b"{\"mti\": \"0200\", \"fields\": {\"2\": \"47617390010100101234\"}}",
            "field 2: expected at most 19",
        ),
        (
            &["msg", "encode", "--dialect", "native"],
            b"{\"mti\": \"0200\", \"fields\": {\"11\": \"00004X\"}}",
            "field 11: expected a digit",
        ),
        (&["msg", "encode", "--dialect", "native"], b"{\"mti\": \"02000\", \"fields\": {}}", "4 digits"),
        (
            &["msg", "encode", "--dialect", "native"],
            b"{\"mti\": \"0200\", \"fields\": {}, \"x\": 1}",
            "unknown key",
        ),
        (
            &["msg", "encode", "--dialect", "native"],
            b"{\"mti\": \"0200\", \"fields\": {\"200\": \"1\"}}",
            "not a field number",
        ),
        (&["msg", "encode", "--dialect", "native"], b"not json", "not JSON"),
        (&["msg", "decode", "--dialect", "nope"], b"", "unknown dialect"),
    ];
    for (args, stdin, want) in cases {
        let out = corridor(args, stdin);
        assert!(!out.status.success(), "{want}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "expected {want:?} in {stderr}");
    }
}

#[test]
fn fields_lists_the_dictionary() {
    let out = corridor(&["msg", "fields"], b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 128);
    assert!(text.lines().any(|l| l.contains("Primary Account Number") && l.contains("..19 (LL)")));
}

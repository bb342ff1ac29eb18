//! `corridor qr` as an operator runs it: the real binary, a payload on stdin, JSON and the
//! exit code out; public payloads from the schemes, and Python's own CRC for what we encode.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod common;

use std::process::{Command, Output};

use serde_json::{json, Value};

fn corridor(args: &[&str], stdin: &str) -> Output {
    common::corridor_with_stdin(args, stdin.as_bytes())
}

fn decoded(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// NAPAS's VietQR transfer code, as a public SDK's README prints it.
const VIETQR: &str = "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA530370454061200005802VN62170813ung ho lu lut6304C15C";

#[test]
fn a_public_vietqr_code_decodes_with_its_network_and_member_bin() {
    let out = corridor(&["qr", "decode"], &format!("{VIETQR}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = decoded(&out);
    assert_eq!(d["valid"], true);
    assert_eq!(d["crc"]["valid"], true);
    assert_eq!(
        d["networks"],
        json!([{"id": "38", "network": "napas", "name": "NAPAS VietQR", "market": "VN", "guid": "A000000727", "acquirer": "970415"}])
    );
    assert_eq!(d["amount"], "120000");
    assert_eq!(d["currency"], "704");
    assert_eq!(d["objects"][2]["objects"][1]["value"], "000697041501130011001932418");
}

#[test]
fn a_wrong_crc_is_a_verdict_with_the_objects_still_shown_and_a_failing_exit() {
    let bad = format!("{}c15d", &VIETQR[..VIETQR.len() - 4]);
    let out = corridor(&["qr", "decode"], &bad);
    assert!(!out.status.success());
    let d = decoded(&out);
    assert_eq!(d["crc"], json!({"written": "c15d", "computed": "C15C", "valid": false}));
    assert_eq!(d["valid"], false);
    assert_eq!(d["networks"][0]["network"], "napas");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ID 63"));
    // The same CRC in lowercase, right: accepted.
    let lower = format!("{}c15c", &VIETQR[..VIETQR.len() - 4]);
    assert!(corridor(&["qr", "decode"], &lower).status.success());
}

#[test]
fn a_malformed_payload_names_the_id_and_the_character_offset() {
    let out = corridor(&["qr", "decode"], "000201010211269900");
    assert!(!out.status.success());
    let d = decoded(&out);
    let e = d["error"].as_str().unwrap();
    assert!(e.contains("ID 26") && e.contains("character 12"), "{e}");
}

/// CRC-16/CCITT-FALSE as Python's standard library computes it (binascii.crc_hqx with an
/// initial 0xFFFF), over the UTF-8 bytes up to and including "6304".
fn python_crc(payload: &str) -> String {
    let covered = &payload[..payload.len() - 4];
    let out = Command::new("python3")
        .args([
            "-c",
            "import binascii,sys; print('%04X' % binascii.crc_hqx(sys.argv[1].encode('utf-8'), 0xFFFF))",
            covered,
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn an_encoded_multi_network_sticker_with_a_chinese_name_decodes_back_and_python_agrees_on_its_crc() {
    let doc = json!({
        "00": "01",
        "01": "12",
        "15": "6250012345678901123456789012345",
        "38": {"00": "A000000727", "01": {"00": "970436", "01": "0123456789"}, "02": "QRPUSH"},
        "52": "5812",
        "53": "704",
        "54": "250000",
        "58": "VN",
        "59": "北京烤鸭",
        "60": "HANOI",
        "62": {"07": "T0001"},
    });
    let out = corridor(&["qr", "encode"], &doc.to_string());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let payload = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // Four characters of name, twelve UTF-8 bytes: the length counts characters.
    assert!(payload.contains("5904北京烤鸭"), "{payload}");
    assert_eq!(&payload[payload.len() - 4..], python_crc(&payload));
    let d = decoded(&corridor(&["qr", "decode"], &payload));
    assert_eq!(d["valid"], true);
    let nets: Vec<(&str, &str)> = d["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["network"].as_str().unwrap(), n["acquirer"].as_str().unwrap()))
        .collect();
    assert_eq!(nets, [("unionpay", "62500123"), ("napas", "970436")]);
    assert_eq!(
        d["merchant"],
        json!({"name": "北京烤鸭", "city": "HANOI", "country": "VN", "mcc": "5812", "postal_code": null, "terminal": "T0001"})
    );
    // ID 63 is computed, never given.
    let with_crc = json!({"00": "01", "63": "ABCD"});
    assert!(!corridor(&["qr", "encode"], &with_crc.to_string()).status.success());
}

#[test]
fn another_registry_file_recognizes_what_it_names_and_a_broken_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("corridor-qr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("networks.toml");
    std::fs::write(&good, "[[network]]\nid = \"examplepay\"\nname = \"Example Pay\"\n[[network.rule]]\nguid = [\"COM.EXAMPLE.PAY\"]\nacquirer = \"01[0..4]\"\n").unwrap();
    let sticker = json!({"00": "01", "26": {"00": "COM.EXAMPLE.PAY", "01": "ABCD1234"}, "52": "5812", "53": "702", "58": "SG", "59": "A", "60": "B"});
    let payload = String::from_utf8(corridor(&["qr", "encode"], &sticker.to_string()).stdout).unwrap();
    let d = decoded(&corridor(&["qr", "decode", "--networks", good.to_str().unwrap()], &payload));
    assert_eq!(d["networks"][0]["network"], "examplepay");
    assert_eq!(d["networks"][0]["acquirer"], "ABCD");
    // With the shipped registry the GUID is unknown: reported, not an error.
    let d = decoded(&corridor(&["qr", "decode"], &payload));
    assert_eq!(d["valid"], true);
    assert_eq!(d["networks"][0]["network"], Value::Null);
    assert_eq!(d["networks"][0]["guid"], "COM.EXAMPLE.PAY");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[network]]\nid = \"broken\"\nname = \"B\"\n[[network.rule]]\nprimitive = [40]\n")
        .unwrap();
    let out = corridor(&["qr", "decode", "--networks", bad.to_str().unwrap()], &payload);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("\"broken\"") && e.contains("02-25"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// EMVCo QRCPS-CPM's example payload.
const CPM_EXAMPLE: &str = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==";

#[test]
fn a_consumer_presented_code_maps_to_an_authorization_with_the_pan_masked() {
    let out = corridor(&["qr", "decode"], CPM_EXAMPLE);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("1234567890123458"), "the PAN is masked: {text}");
    let d = decoded(&out);
    assert_eq!(d["kind"], "consumer-presented");
    let a = &d["applications"][0];
    assert_eq!(a["aid"], "A0000000555555");
    assert_eq!(a["authorization"]["2"], "123456******3458");
    assert_eq!(a["authorization"]["22"], "030");
    assert_eq!(
        a["authorization"]["55"],
        "9F100706010A030000009F2608584FD385FA234BCC9F360200019F37046D58EF13"
    );
    let revealed = decoded(&corridor(&["qr", "decode", "--reveal"], CPM_EXAMPLE));
    assert_eq!(revealed["applications"][1]["authorization"]["2"], "1234567890123458");
    let out = corridor(&["qr", "decode"], "hQVDUFYwMg==");
    assert!(!out.status.success());
    assert!(decoded(&out)["error"].as_str().unwrap().contains("CPV01"));
}

/// A PromptPay bill-payment code as npm's promptparse 1.6.0 writes it (and as Thai banks'
/// apps do): no MCC, merchant name or city, 53 before 58. It is valid for its network.
#[test]
fn a_public_promptpay_bill_payment_code_without_mcc_name_or_city_is_valid() {
    let code = "00020101021230620016A000000677010112011301122334455660211CUSTOMER0010306INV00153037645802TH5406300.0063047D28";
    let out = corridor(&["qr", "decode"], &format!("{code}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = decoded(&out);
    assert_eq!(d["valid"], true, "{d}");
    assert_eq!(d["networks"][0]["network"], "promptpay");
    assert_eq!(d["amount"], "300.00");
}

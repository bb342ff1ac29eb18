//! The golden vectors of `proto-spec/vectors/`: every one decodes to its expected fields,
//! encodes back to its exact bytes, translates into each other dialect's exact bytes, and
//! every negative vector fails with its named error.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

use std::{collections::BTreeMap, fs, path::PathBuf};

use bytes::BytesMut;
use corridor_wire::{
    Dialect, FieldId, LengthDelimited, LengthHeader, Message, Mti, NativeFramer, OwnedMessage,
    FRAME_BYTES_MAX,
};
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto-spec/vectors").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The `expect` object of a vector as an owned message.
fn expected(v: &Value) -> OwnedMessage {
    let mti = v["mti"].as_str().and_then(|s| Mti::from_ascii(s.as_bytes())).expect("mti");
    let mut m = OwnedMessage::new(mti);
    for (k, val) in v["fields"].as_object().expect("fields") {
        let id = k.parse::<u8>().ok().and_then(FieldId::new).expect("field id");
        let s = val.as_str().expect("string value");
        let value = if id.spec().ty.is_binary() { unhex(s) } else { s.as_bytes().to_vec() };
        m.set(id, value).unwrap_or_else(|e| panic!("expect of DE {}: {e}", id.get()));
    }
    m
}

/// Per dialect: each vector's name, bytes and expected message.
type Vectors = BTreeMap<&'static str, Vec<(String, Vec<u8>, OwnedMessage)>>;

fn dialect_vectors() -> Vectors {
    let mut all = BTreeMap::new();
    for d in Dialect::ALL {
        let file = vectors(&format!("{}.json", d.name()));
        assert_eq!(file["dialect"], d.name());
        let list = file["vectors"]
            .as_array()
            .expect("vectors")
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().expect("name").to_owned(),
                    unhex(v["hex"].as_str().expect("hex")),
                    expected(&v["expect"]),
                )
            })
            .collect::<Vec<_>>();
        assert!(list.len() >= 5, "{}: too few vectors", d.name());
        all.insert(d.name(), list);
    }
    all
}

#[test]
fn every_vector_decodes_to_its_fields_and_encodes_to_its_bytes() {
    for (name, list) in dialect_vectors() {
        let dialect: Dialect = name.parse().expect("dialect");
        for (vname, bytes, want) in list {
            let m = Message::parse(dialect, &bytes[..]).unwrap_or_else(|e| panic!("{name}/{vname}: {e}"));
            assert_eq!(OwnedMessage::from(&m), want, "{name}/{vname}: decoded fields");
            let enc = want.to_bytes(dialect).expect("encode");
            assert_eq!(hex(&enc), hex(&bytes), "{name}/{vname}: encoding");
        }
    }
}

#[test]
fn every_vector_translates_to_the_other_dialects_bytes() {
    let all = dialect_vectors();
    for from in Dialect::ALL {
        for to in Dialect::ALL {
            for ((vname, src, _), (_, dst, _)) in all[from.name()].iter().zip(&all[to.name()]) {
                let m = Message::parse(from, &src[..]).expect("valid vector");
                let mut out = BytesMut::new();
                m.translate(to, &mut out);
                assert_eq!(hex(&out), hex(dst), "{vname}: {from} -> {to}");
            }
        }
    }
}

#[test]
fn typed_accessors_read_the_purchase_in_every_dialect() {
    for (name, list) in dialect_vectors() {
        let dialect: Dialect = name.parse().expect("dialect");
        let (_, bytes, _) = list.iter().find(|(n, _, _)| n == "purchase_0200").expect("purchase vector");
        let m = Message::parse(dialect, bytes::Bytes::from(bytes.clone())).expect("valid");
        assert_eq!(m.mti(), Mti::FINANCIAL_REQUEST);
        assert_eq!(m.pan().map(|p| p.to_string()).as_deref(), Some("476173******0010"), "{name}");
        assert_eq!(m.pan().map(|p| p.digits().to_vec()), Some(b"4761739001010010".to_vec()));
        assert_eq!(m.stan().map(|s| s.value()), Some(42));
        assert_eq!(m.transmission_time().map(|t| t.value()), Some(1_125_221_530));
        assert_eq!(m.acquirer_id().map(|i| i.to_string()).as_deref(), Some("12345678"));
        assert_eq!(m.rrn(), Some(&b"533022000042"[..]));
        assert_eq!(m.terminal_id(), Some(&b"TERM0001"[..]));
        assert_eq!(m.response_code(), None);
        assert_eq!(m.receiver_id(), None);
        // A field handed out as Bytes shares the message buffer.
        let rrn = m.field_bytes(corridor_wire::de::RRN).expect("DE 37");
        assert_eq!(&rrn[..], b"533022000042");
        let (_, rev, _) = list.iter().find(|(n, _, _)| n == "reversal_0420").expect("reversal vector");
        let r = Message::parse(dialect, &rev[..]).expect("valid");
        assert_eq!(r.receiver_id().map(|i| i.to_string()).as_deref(), Some("44556677"));
        assert_eq!(r.response_code().map(|c| c.to_string()).as_deref(), Some("68"));
        let (_, echo, _) = list.iter().find(|(n, _, _)| n == "echo_0800").expect("echo vector");
        let e = Message::parse(dialect, &echo[..]).expect("valid");
        assert_eq!(e.network_code(), Some(corridor_wire::NetworkCode::ECHO));
        assert_eq!(e.forwarder_id().map(|i| i.to_string()).as_deref(), Some("9876"));
    }
}

#[test]
fn frame_vectors() {
    let file = vectors("frames.json");
    for v in file["vectors"].as_array().expect("vectors") {
        let name = v["name"].as_str().expect("name");
        let wire = unhex(v["hex"].as_str().expect("hex"));
        let body = unhex(v["body_hex"].as_str().expect("body_hex"));
        let framing = v["framing"].as_str().expect("framing");
        // Fed one byte at a time, the decoder waits, then yields exactly one frame.
        let mut buf = BytesMut::new();
        if framing == "native" {
            let mut frames = Vec::new();
            let mut dec = NativeFramer::new(FRAME_BYTES_MAX);
            for &b in &wire {
                buf.extend_from_slice(&[b]);
                if let Some(f) = dec.decode(&mut buf).unwrap_or_else(|e| panic!("{name}: {e}")) {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 1, "{name}");
            let f = &frames[0];
            assert_eq!(f.body(), &body[..], "{name}");
            assert_eq!(f.correlation(), v["correlation"].as_u64().expect("correlation"), "{name}");
            assert_eq!(u64::from(f.flags()), v["flags"].as_u64().expect("flags"), "{name}");
            if f.header().header_len() == 20 {
                let mut out = BytesMut::new();
                NativeFramer::new(FRAME_BYTES_MAX)
                    .encode(f.flags(), f.correlation(), &body, &mut out)
                    .expect("encode");
                assert_eq!(hex(&out), hex(&wire), "{name}: encoding");
            }
        } else {
            let header: LengthHeader = framing.parse().expect("framing");
            let mut dec = LengthDelimited::new(header, FRAME_BYTES_MAX);
            let mut frames = Vec::new();
            for &b in &wire {
                buf.extend_from_slice(&[b]);
                if let Some(f) = dec.decode(&mut buf).unwrap_or_else(|e| panic!("{name}: {e}")) {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 1, "{name}");
            assert_eq!(&frames[0][..], &body[..], "{name}");
            let mut out = BytesMut::new();
            dec.encode(&body, &mut out).expect("encode");
            assert_eq!(hex(&out), hex(&wire), "{name}: encoding");
        }
        assert!(buf.is_empty(), "{name}: the frame was consumed whole");
    }
}

#[test]
fn negative_vectors_fail_with_their_named_error() {
    let file = vectors("negative.json");
    let list = file["vectors"].as_array().expect("vectors");
    let mut kinds = std::collections::BTreeSet::new();
    for v in list {
        let name = v["name"].as_str().expect("name");
        let bytes = unhex(v["hex"].as_str().expect("hex"));
        let want = v["error"].as_str().expect("error");
        kinds.insert(want.to_owned());
        let err = match v["layer"].as_str().expect("layer") {
            "frame" => {
                let mut buf = BytesMut::from(&bytes[..]);
                let framing = v["framing"].as_str().expect("framing");
                if framing == "native" {
                    let mut dec = NativeFramer::new(FRAME_BYTES_MAX);
                    match dec.decode(&mut buf) {
                        Ok(None) => dec.decode_eof(&mut buf).err(),
                        Ok(Some(_)) => None,
                        Err(e) => Some(e),
                    }
                } else {
                    let mut dec = LengthDelimited::new(framing.parse().expect("framing"), FRAME_BYTES_MAX);
                    match dec.decode(&mut buf) {
                        Ok(None) => dec.decode_eof(&mut buf).err(),
                        Ok(Some(_)) => None,
                        Err(e) => Some(e),
                    }
                }
            }
            "message" => {
                let dialect: Dialect = v["dialect"].as_str().expect("dialect").parse().expect("dialect");
                Message::parse(dialect, &bytes[..]).err()
            }
            other => panic!("{name}: unknown layer {other}"),
        };
        let err = err.unwrap_or_else(|| panic!("{name}: decoded without error"));
        assert_eq!(err.kind(), want, "{name}: {err}");
        if let Some(field) = v.get("field").and_then(Value::as_u64) {
            assert_eq!(err.field().map(u64::from), Some(field), "{name}: {err}");
        }
        // Every error explains itself in a sentence.
        assert!(err.to_string().len() > 10, "{name}");
    }
    for required in [
        "truncated_frame",
        "frame_too_large",
        "missing_field",
        "length_over_max",
        "invalid_character",
        "trailing_bytes",
        "unsupported_version",
    ] {
        assert!(kinds.contains(required), "the negative corpus covers {required}");
    }
}

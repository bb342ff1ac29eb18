//! `corridor qr`: read an EMV QR payload and say what is in it; write one.
//!
//! `decode` reads a payload on stdin — merchant-presented (text starting `0002`) or
//! consumer-presented (base64) — and prints one JSON object; it exits non-zero when the
//! payload is not valid (the JSON still says what was read, and why). `encode` reads a JSON
//! object of IDs to values (a template's value an object again, in order) and prints the
//! payload with its CRC. Card numbers and track data of consumer-presented codes are masked
//! unless `--reveal` is given.

use std::{
    io::{self, Read, Write},
    path::PathBuf,
};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use corridor_qr::{cpm, mpm, DataObject, MpmError, Payload, Registry};
use serde_json::{json, Map, Value};

/// Largest input `qr` reads: four times the longest payload (base64 of a consumer-presented
/// one, with line breaks), which every valid payload fits.
const INPUT_BYTES_MAX: u64 = 4 * corridor_qr::limits::CPM_BYTES_MAX as u64;

#[derive(Subcommand)]
pub(crate) enum QrCommand {
    /// Read a payload on stdin and print what it holds as JSON: its objects, the networks
    /// found with their acquirer ids, the merchant, the amount, the CRC's verdict.
    Decode {
        /// The QR network registry (the format of proto-spec/qr-networks.toml); the shipped
        /// one by default.
        #[arg(long)]
        networks: Option<PathBuf>,
        /// Show card numbers and track data of consumer-presented codes unmasked.
        #[arg(long)]
        reveal: bool,
    },
    /// Read `{"00": "01", "26": {"00": "A000000727", ...}, ...}` on stdin and print the
    /// merchant-presented payload, its CRC (ID 63) appended.
    Encode,
}

fn read_stdin() -> Result<String> {
    let mut buf = Vec::new();
    io::stdin().take(INPUT_BYTES_MAX + 1).read_to_end(&mut buf).context("cannot read input")?;
    if buf.len() as u64 > INPUT_BYTES_MAX {
        bail!("input is larger than {INPUT_BYTES_MAX} bytes");
    }
    let text = String::from_utf8(buf).context("the payload is not UTF-8 text")?;
    // A trailing newline is the shell's, not the payload's.
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

pub(crate) fn run(command: QrCommand) -> Result<()> {
    match command {
        QrCommand::Decode { networks, reveal } => {
            let registry = match networks {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Registry::from_toml(&text).with_context(|| format!("{}", path.display()))?
                }
                None => Registry::builtin().clone(),
            };
            let text = read_stdin()?;
            let (doc, error) =
                if text.starts_with("00") { decode_mpm(&registry, &text) } else { decode_cpm(&text, reveal) };
            writeln!(io::stdout().lock(), "{}", serde_json::to_string_pretty(&doc)?)?;
            match error {
                Some(e) => bail!("not a valid payload: {e}"),
                None => Ok(()),
            }
        }
        QrCommand::Encode => {
            let text = read_stdin()?;
            let doc: Value = serde_json::from_str(&text).context("the input is not JSON")?;
            let Value::Object(map) = doc else { bail!("expected a JSON object of IDs to values") };
            let objects = values(&map, true)?;
            let pairs: Vec<(u8, &str)> = objects.iter().map(|(id, v)| (*id, v.as_str())).collect();
            writeln!(io::stdout().lock(), "{}", mpm::encode(&pairs).map_err(anyhow::Error::msg)?)?;
            Ok(())
        }
    }
}

/// `(id, value)` pairs of a JSON object, templates written with their objects.
fn values(map: &Map<String, Value>, root: bool) -> Result<Vec<(u8, String)>> {
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let id: u8 = match k.as_bytes() {
            [a @ b'0'..=b'9', b @ b'0'..=b'9'] => (a - b'0') * 10 + (b - b'0'),
            _ => bail!("ID {k:?}: two digits"),
        };
        if root && id == 63 {
            bail!("ID 63 is the CRC: it is computed, leave it out");
        }
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Object(inner) => {
                let inner = values(inner, false)?;
                let pairs: Vec<(u8, &str)> = inner.iter().map(|(id, v)| (*id, v.as_str())).collect();
                mpm::nested(&pairs).map_err(anyhow::Error::msg).with_context(|| format!("template {k}"))?
            }
            _ => bail!("ID {k}: a string, or an object for a template"),
        };
        out.push((id, value));
    }
    Ok(out)
}

fn object_json(o: &DataObject<'_>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(format!("{:02}", o.id)));
    m.insert("offset".into(), json!(o.offset));
    m.insert("value".into(), json!(o.value));
    if !o.children.is_empty() {
        m.insert("objects".into(), Value::Array(o.children.iter().map(object_json).collect()));
    }
    Value::Object(m)
}

/// A merchant-presented payload as JSON, and the error that makes it invalid, if any.
fn decode_mpm(registry: &Registry, text: &str) -> (Value, Option<String>) {
    let mut doc = Map::new();
    doc.insert("kind".into(), json!("merchant-presented"));
    // A wrong CRC is a verdict, not the end: the objects are shown as read.
    let mut crc_error = None;
    let fixed = match mpm::parse(text) {
        Err(MpmError::BadCrc { computed, written }) => {
            doc.insert("crc".into(), json!({"written": written, "computed": computed, "valid": false}));
            crc_error = Some(MpmError::BadCrc { computed: computed.clone(), written }.to_string());
            Some(format!("{}{computed}", &text[..text.len() - 4]))
        }
        _ => None,
    };
    let source = fixed.as_deref().unwrap_or(text);
    let parsed = mpm::parse(source);
    let payload: Payload<'_> = match parsed {
        Ok(p) => p,
        Err(e) => {
            doc.insert("error".into(), json!(e.to_string()));
            return (Value::Object(doc), Some(e.to_string()));
        }
    };
    if crc_error.is_none() {
        doc.insert("crc".into(), json!({"written": text[text.len() - 4..], "computed": text[text.len() - 4..].to_ascii_uppercase(), "valid": true}));
    }
    let get = |id| payload.get(id).map(|o| o.value);
    doc.insert("format".into(), json!(payload.format_indicator()));
    doc.insert(
        "initiation".into(),
        json!(payload.initiation().map(|i| if i == "12" { "dynamic" } else { "static" })),
    );
    doc.insert("objects".into(), Value::Array(payload.objects.iter().map(object_json).collect()));
    let networks: Vec<Value> = registry
        .classify(&payload)
        .map(|f| {
            let n = f.network.map(|i| &registry.networks()[i]);
            json!({
                "id": format!("{:02}", f.id),
                "network": n.map(|n| n.id.as_str()),
                "name": n.map(|n| n.name.as_str()),
                "market": n.and_then(|n| n.market.as_deref()),
                "guid": f.guid,
                "acquirer": f.acquirer,
            })
        })
        .collect();
    doc.insert("networks".into(), Value::Array(networks));
    let terminal = payload.get(62).and_then(|o| o.child(7)).map(|c| c.value);
    doc.insert(
        "merchant".into(),
        json!({
            "name": payload.merchant_name(),
            "city": payload.city(),
            "country": payload.country(),
            "mcc": payload.mcc(),
            "postal_code": get(61),
            "terminal": terminal,
        }),
    );
    doc.insert("amount".into(), json!(payload.amount()));
    doc.insert("currency".into(), json!(payload.currency()));
    let error = match registry.decode(source) {
        Err(e) => {
            doc.insert("error".into(), json!(e.to_string()));
            Some(e.to_string())
        }
        Ok(_) => crc_error,
    };
    doc.insert("valid".into(), json!(error.is_none()));
    (Value::Object(doc), error)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// A consumer-presented payload as JSON, with the authorization each application maps to.
fn decode_cpm(text: &str, reveal: bool) -> (Value, Option<String>) {
    let mut doc = Map::new();
    doc.insert("kind".into(), json!("consumer-presented"));
    let cpm = match corridor_qr::decode_cpm(text) {
        Ok(c) => c,
        Err(e) => {
            doc.insert("error".into(), json!(e.to_string()));
            doc.insert("valid".into(), json!(false));
            return (Value::Object(doc), Some(e.to_string()));
        }
    };
    let mut error = None;
    let apps: Vec<Value> = (0..cpm.applications.len())
        .map(|i| match cpm.authorization(i) {
            Ok(a) => json!({
                "aid": a.aid,
                "label": a.label,
                "authorization": {
                    "2": a.pan.as_deref().map(|p| if reveal { p.to_owned() } else { cpm::mask_pan(p) }),
                    "14": a.expiry,
                    "22": a.entry_mode,
                    "23": a.pan_sequence,
                    "35": a.track2.as_deref().map(|t| if reveal { t.to_owned() } else { "*".repeat(t.len()) }),
                    "55": hex(&a.icc),
                },
            }),
            Err(e) => {
                error = Some(e.to_string());
                json!({"error": e.to_string()})
            }
        })
        .collect();
    doc.insert("applications".into(), Value::Array(apps));
    doc.insert("valid".into(), json!(error.is_none()));
    (Value::Object(doc), error)
}

//! `corridor msg`: decode a message to JSON, encode JSON to a message, list the dictionary.
//!
//! The JSON form is `{"mti": "0200", "fields": {"2": "4761739001010010", "52": "0123..."}}`:
//! field numbers as strings, bitmaps omitted (they follow from the fields), text fields as
//! they are, binary fields as uppercase hex. With `--framing native` a `"correlation"` number
//! is added. Card numbers, track data, PIN blocks and other secrets are masked unless
//! `--reveal` is given.

use std::{
    fs,
    io::{self, Read, Write},
    path::PathBuf,
};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use clap::{Args, Subcommand};
use corridor_wire::{
    mask_pan, Dialect, FieldId, LengthDelimited, LengthHeader, Message, Mti, NativeFramer, OwnedMessage,
    Sensitivity, FRAME_BYTES_MAX,
};
use serde_json::{Map, Value};

/// Largest input `msg` reads: a hex dump of the largest frame, with room for line breaks.
const INPUT_BYTES_MAX: u64 = 4 * (FRAME_BYTES_MAX as u64) + 4096;

#[derive(Subcommand)]
pub(crate) enum MsgCommand {
    /// Read one message (hex text on stdin, or raw bytes with --file) and print it as JSON.
    Decode {
        #[command(flatten)]
        format: Format,
        /// Read raw bytes from this file instead of hex text from stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Show card numbers, track data, PIN blocks and secrets unmasked (test data only).
        #[arg(long)]
        reveal: bool,
    },
    /// Read the JSON form on stdin and print the message as hex.
    Encode {
        #[command(flatten)]
        format: Format,
    },
    /// Print the field dictionary.
    Fields,
}

#[derive(Args)]
pub(crate) struct Format {
    /// Body encoding: native, iso87-ascii or iso87-hex.
    #[arg(long)]
    dialect: Dialect,
    /// Frame around the body: none, native, bin2, bin2-incl, bin4 or ascii4.
    #[arg(long, default_value = "none")]
    framing: Framing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Native,
    Length(LengthHeader),
}

impl std::str::FromStr for Framing {
    type Err = corridor_wire::UnknownFraming;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "native" => Ok(Self::Native),
            other => other.parse().map(Self::Length),
        }
    }
}

pub(crate) fn run(cmd: MsgCommand) -> Result<()> {
    let mut stdout = io::stdout().lock();
    match cmd {
        MsgCommand::Decode { format, file, reveal } => {
            let input = match file {
                Some(path) => {
                    read_bounded(fs::File::open(&path).with_context(|| format!("{}", path.display()))?)?
                }
                None => parse_hex(&read_bounded(io::stdin().lock())?)?,
            };
            let json = decode(&format, &input, reveal)?;
            writeln!(stdout, "{json}")?;
        }
        MsgCommand::Encode { format } => {
            let text = read_bounded(io::stdin().lock())?;
            let json: Value = serde_json::from_slice(&text).context("input is not JSON")?;
            let bytes = encode(&format, &json)?;
            writeln!(stdout, "{}", hex(&bytes))?;
        }
        MsgCommand::Fields => {
            for id in (1..=128).filter_map(FieldId::new) {
                let s = id.spec();
                let len = match s.length {
                    corridor_wire::LengthKind::Fixed => format!("{}", s.max),
                    corridor_wire::LengthKind::Ll => format!("..{} (LL)", s.max),
                    corridor_wire::LengthKind::Lll => format!("...{} (LLL)", s.max),
                };
                writeln!(stdout, "{:>3}  {:<4} {:<12} {}", s.id, s.ty.code(), len, s.name)?;
            }
        }
    }
    Ok(())
}

fn read_bounded(r: impl Read) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(INPUT_BYTES_MAX + 1).read_to_end(&mut buf).context("cannot read input")?;
    if buf.len() as u64 > INPUT_BYTES_MAX {
        bail!("input is larger than {INPUT_BYTES_MAX} bytes");
    }
    Ok(buf)
}

/// Hex text to bytes; white space anywhere is ignored.
fn parse_hex(text: &[u8]) -> Result<Vec<u8>> {
    let digits: Vec<(usize, u8)> =
        text.iter().copied().enumerate().filter(|(_, c)| !c.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        bail!("hex input has an odd number of digits ({})", digits.len());
    }
    let nibble = |(at, c): (usize, u8)| -> Result<u8> {
        match (c as char).to_digit(16) {
            // A hex digit is below 16.
            Some(v) => Ok(v as u8),
            None => bail!("hex input: expected a hex digit, found {:?} at offset {at}", c as char),
        }
    };
    digits.chunks_exact(2).map(|p| Ok((nibble(p[0])? << 4) | nibble(p[1])?)).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn decode(format: &Format, input: &[u8], reveal: bool) -> Result<Value> {
    let mut correlation = None;
    let body: Vec<u8> = match format.framing {
        Framing::None => input.to_vec(),
        Framing::Native => {
            let mut buf = BytesMut::from(input);
            let frame = NativeFramer::new(FRAME_BYTES_MAX).decode_eof(&mut buf)?.context("input is empty")?;
            if !buf.is_empty() {
                bail!("{} bytes follow the frame", buf.len());
            }
            correlation = Some(frame.correlation());
            frame.body().to_vec()
        }
        Framing::Length(h) => {
            let mut buf = BytesMut::from(input);
            let body =
                LengthDelimited::new(h, FRAME_BYTES_MAX).decode_eof(&mut buf)?.context("input is empty")?;
            if !buf.is_empty() {
                bail!("{} bytes follow the frame", buf.len());
            }
            body.to_vec()
        }
    };
    let msg = Message::parse(format.dialect, &body[..])?;
    let mut fields = Map::new();
    let mut masked = false;
    for f in msg.fields() {
        let spec = f.spec();
        let value = f.to_vec();
        let shown = match (spec.sensitivity, reveal) {
            (Sensitivity::None, _) | (_, true) if spec.ty.is_binary() => hex(&value),
            (Sensitivity::None, _) | (_, true) => String::from_utf8_lossy(&value).into_owned(),
            (Sensitivity::Pan, false) => {
                masked = true;
                let mut out = vec![0u8; value.len()];
                let n = mask_pan(&value, &mut out);
                String::from_utf8_lossy(&out[..n]).into_owned()
            }
            (_, false) => {
                masked = true;
                "*".repeat(if spec.ty.is_binary() { value.len() * 2 } else { value.len() })
            }
        };
        fields.insert(spec.id.to_string(), Value::String(shown));
    }
    if masked {
        eprintln!("corridor: sensitive fields are masked; --reveal shows them (test data only)");
    }
    let mut out = Map::new();
    out.insert("mti".into(), Value::String(msg.mti().to_string()));
    out.insert("fields".into(), Value::Object(fields));
    if let Some(c) = correlation {
        out.insert("correlation".into(), Value::from(c));
    }
    Ok(Value::Object(out))
}

fn encode(format: &Format, json: &Value) -> Result<Vec<u8>> {
    let obj = json.as_object().context("expected a JSON object with \"mti\" and \"fields\"")?;
    for key in obj.keys() {
        let allowed = matches!(key.as_str(), "mti" | "fields")
            || (key == "correlation" && format.framing == Framing::Native);
        if !allowed {
            bail!("unknown key {key:?}: expected \"mti\" and \"fields\" (and \"correlation\" with --framing native)");
        }
    }
    let mti_text = obj.get("mti").and_then(Value::as_str).context("\"mti\" must be a string of 4 digits")?;
    let mti = Mti::from_ascii(mti_text.as_bytes())
        .with_context(|| format!("\"mti\" must be 4 digits, found {mti_text:?}"))?;
    let mut m = OwnedMessage::new(mti);
    let fields = obj.get("fields").and_then(Value::as_object).context("\"fields\" must be an object")?;
    for (key, value) in fields {
        let id = key
            .parse::<u8>()
            .ok()
            .and_then(FieldId::new)
            .with_context(|| format!("field key {key:?} is not a field number 1-128"))?;
        let text = value.as_str().with_context(|| format!("field {key}: value must be a string"))?;
        let bytes = if id.spec().ty.is_binary() {
            parse_hex(text.as_bytes()).with_context(|| format!("field {key}: binary value must be hex"))?
        } else {
            text.as_bytes().to_vec()
        };
        m.set(id, bytes)?;
    }
    let body = m.to_bytes(format.dialect)?;
    let mut out = BytesMut::new();
    match format.framing {
        Framing::None => out.extend_from_slice(&body),
        Framing::Native => {
            let correlation = match obj.get("correlation") {
                None => 0,
                Some(v) => v.as_u64().context("\"correlation\" must be a number 0-18446744073709551615")?,
            };
            NativeFramer::new(FRAME_BYTES_MAX).encode(0, correlation, &body, &mut out)?;
        }
        Framing::Length(h) => LengthDelimited::new(h, FRAME_BYTES_MAX).encode(&body, &mut out)?,
    }
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_input_tolerates_white_space_and_names_bad_digits() {
        assert_eq!(parse_hex(b"0a 0B\n").unwrap(), vec![0x0A, 0x0B]);
        assert!(parse_hex(b"0a0").unwrap_err().to_string().contains("odd"));
        assert!(parse_hex(b"0g").unwrap_err().to_string().contains("offset 1"));
    }

    #[test]
    fn decode_masks_sensitive_fields_unless_revealed() {
        let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
        m.set(corridor_wire::de::PAN, "4761739001010010").unwrap();
        m.set(corridor_wire::de::PIN_BLOCK, vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]).unwrap();
        m.set(corridor_wire::de::STAN, "000042").unwrap();
        let body = m.to_bytes(Dialect::Native).unwrap();
        let f = Format { dialect: Dialect::Native, framing: Framing::None };
        let masked = decode(&f, &body, false).unwrap();
        assert_eq!(masked["fields"]["2"], "476173******0010");
        assert_eq!(masked["fields"]["52"], "****************");
        assert_eq!(masked["fields"]["11"], "000042");
        let shown = decode(&f, &body, true).unwrap();
        assert_eq!(shown["fields"]["2"], "4761739001010010");
        assert_eq!(shown["fields"]["52"], "0123456789ABCDEF");
    }
}

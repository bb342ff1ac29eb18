//! How one connection frames and encodes: a native frame (20-byte header carrying the
//! correlation id) or a classic length header, and a dialect.

use std::{fmt, str::FromStr};

use bytes::{Bytes, BytesMut};
use corridor_wire::{
    limits::NATIVE_HEADER_BYTES, DecodeError, Dialect, EncodeError, LengthDelimited, LengthHeader,
    NativeFramer, NativeHeader,
};

use crate::limits::FRAME_BYTES_MAX;

/// A connection's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Native frames: the header carries a correlation id.
    Native,
    /// A length header before each classic message; DE 11 (STAN) correlates.
    Length(LengthHeader),
}

impl FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "native" {
            return Ok(Self::Native);
        }
        s.parse::<LengthHeader>()
            .map(Self::Length)
            .map_err(|_| format!("unknown framing `{s}`: expected native, bin2, bin2-incl, bin4 or ascii4"))
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native => f.write_str("native"),
            Self::Length(h) => f.write_str(h.name()),
        }
    }
}

/// Framing and dialect together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    /// How frames are delimited.
    pub framing: Framing,
    /// How bodies are encoded.
    pub dialect: Dialect,
}

impl Wire {
    /// Native frames and bodies.
    pub const NATIVE: Self = Self { framing: Framing::Native, dialect: Dialect::Native };

    /// A wire from its two names.
    ///
    /// # Errors
    ///
    /// An unknown name, or native bodies without native framing (and the reverse).
    pub fn parse(framing: &str, dialect: &str) -> Result<Self, String> {
        let framing: Framing = framing.parse()?;
        let dialect: Dialect = dialect.parse().map_err(|e| format!("{e}"))?;
        match (framing, dialect) {
            (Framing::Native, Dialect::Native)
            | (Framing::Length(_), Dialect::Iso87Ascii | Dialect::Iso87Hex) => Ok(Self { framing, dialect }),
            _ => Err(format!(
                "framing `{framing}` does not carry dialect `{dialect}`: native goes with native, \
                 length headers with iso87-ascii or iso87-hex"
            )),
        }
    }

    /// A decoder for this wire.
    #[must_use]
    pub fn decoder(self) -> Decoder {
        match self.framing {
            Framing::Native => Decoder::Native(NativeFramer::new(FRAME_BYTES_MAX)),
            Framing::Length(h) => Decoder::Length(LengthDelimited::new(h, FRAME_BYTES_MAX)),
        }
    }

    /// Appends one frame to `out`: the header, then what `body` writes (in this wire's
    /// dialect). On error nothing is left behind.
    ///
    /// # Errors
    ///
    /// What `body` returns, or a body larger than [`FRAME_BYTES_MAX`].
    pub fn frame(
        self,
        correlation: u64,
        out: &mut BytesMut,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        let header_len = match self.framing {
            Framing::Native => NATIVE_HEADER_BYTES,
            Framing::Length(h) => h.header_bytes(),
        };
        out.resize(start + header_len, 0);
        let body_start = out.len();
        let result = body(out).and_then(|()| {
            let len = out.len() - body_start;
            if len > FRAME_BYTES_MAX {
                return Err(EncodeError::FrameTooLarge { len, max: FRAME_BYTES_MAX });
            }
            match self.framing {
                Framing::Native => {
                    // len <= FRAME_BYTES_MAX fits u32.
                    let h = NativeHeader::new(0, len as u32, correlation);
                    out[start..body_start].copy_from_slice(&h.to_bytes());
                    Ok(())
                }
                Framing::Length(h) => h.write(len, &mut out[start..body_start]),
            }
        });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.framing, self.dialect)
    }
}

/// Splits a byte stream into frames.
#[derive(Debug)]
pub enum Decoder {
    /// Native frames.
    Native(NativeFramer),
    /// Length-delimited frames.
    Length(LengthDelimited),
}

impl Decoder {
    /// The next whole frame in `buf`: its correlation (the native header id, 0 on classic
    /// framing) and body. `Ok(None)` until a whole frame is buffered.
    ///
    /// # Errors
    ///
    /// A frame that breaks the framing: the connection cannot continue.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<(u64, Bytes)>, DecodeError> {
        match self {
            Self::Native(d) => Ok(d.decode(buf)?.map(|f| (f.correlation(), f.into_body()))),
            Self::Length(d) => Ok(d.decode(buf)?.map(|b| (0, b.freeze()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wires_parse_and_refuse_mismatches() {
        assert_eq!(Wire::parse("native", "native"), Ok(Wire::NATIVE));
        let w = Wire::parse("bin2", "iso87-ascii").unwrap();
        assert_eq!(w.to_string(), "bin2/iso87-ascii");
        assert!(Wire::parse("native", "iso87-ascii").unwrap_err().contains("does not carry"));
        assert!(Wire::parse("bin2", "native").is_err());
        assert!(Wire::parse("bin3", "iso87-ascii").unwrap_err().contains("unknown framing"));
    }

    #[test]
    fn frames_round_trip_with_their_correlation() {
        for w in [Wire::NATIVE, Wire::parse("ascii4", "iso87-hex").unwrap()] {
            let mut out = BytesMut::new();
            w.frame(77, &mut out, |b| {
                b.extend_from_slice(b"body");
                Ok(())
            })
            .unwrap();
            let (corr, body) = w.decoder().decode(&mut out).unwrap().unwrap();
            assert_eq!(&body[..], b"body");
            assert_eq!(corr, if w.framing == Framing::Native { 77 } else { 0 });
            assert!(out.is_empty());
        }
        // A failing body leaves nothing behind.
        let mut out = BytesMut::from(&b"xy"[..]);
        let r = Wire::NATIVE.frame(1, &mut out, |b| {
            b.extend_from_slice(b"partial");
            Err(EncodeError::FrameTooLarge { len: 1, max: 0 })
        });
        assert!(r.is_err());
        assert_eq!(&out[..], b"xy");
    }
}

//! How one connection frames and encodes: a native frame (20-byte header carrying the
//! correlation id) or a classic length header, and a dialect.

use std::fmt;

use bytes::BytesMut;
use corridor_wire::FrameDecoder;
pub use corridor_wire::Framing;
use corridor_wire::{Dialect, EncodeError};

use crate::limits::FRAME_BYTES_MAX;

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
        let framing: Framing = framing.parse().map_err(|e| format!("{e}"))?;
        let dialect: Dialect = dialect.parse().map_err(|e| format!("{e}"))?;
        if !framing.carries(dialect) {
            return Err(format!(
                "framing `{framing}` does not carry dialect `{dialect}`: native goes with native, \
                 length headers with iso87-ascii or iso87-hex"
            ));
        }
        Ok(Self { framing, dialect })
    }

    /// A decoder for this wire.
    #[must_use]
    pub fn decoder(self) -> FrameDecoder {
        self.framing.decoder(FRAME_BYTES_MAX)
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
        self.framing.write(0, correlation, FRAME_BYTES_MAX, out, body)
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.framing, self.dialect)
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

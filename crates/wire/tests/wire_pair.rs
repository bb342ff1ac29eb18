//! A link's wire: framing and dialect together.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod tests {
    use bytes::BytesMut;
    use corridor_wire::{EncodeError, Framing, Wire};

    #[test]
    fn wires_parse_and_refuse_mismatches() {
        assert_eq!(Wire::parse("native", "native"), Ok(Wire::NATIVE));
        let w = Wire::parse("bin2", "iso87-ascii").unwrap();
        assert_eq!(w.to_string(), "bin2/iso87-ascii");
        assert!(Wire::parse("native", "iso87-ascii").unwrap_err().to_string().contains("does not carry"));
        assert!(Wire::parse("bin2", "native").is_err());
        assert!(Wire::parse("bin3", "iso87-ascii").unwrap_err().to_string().contains("unknown framing"));
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

//! Fixtures shared by Corridor's benchmarks.
//!
//! # Layout
//!
//! - `codec.rs` (bench): parsing, encoding, translating and framing a typical 0200.
//! - [`typical_0200`]: the message every codec benchmark uses.

#![forbid(unsafe_code)]

use corridor_wire::{FieldId, Mti, OwnedMessage};

/// A typical purchase request: 20 fields (PAN, amounts, times, track 2, terminal and merchant,
/// PIN block, ICC data), about 210 bytes in `native` and 260 in `iso87-ascii`. The same
/// message as the `purchase_0200` golden vector.
///
/// # Panics
///
/// Never: every value fits the dictionary (the golden-vector tests check the same values).
#[must_use]
pub fn typical_0200() -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    let fields: &[(u8, &[u8])] = &[
        (2, b"4761739001010010"),
        (3, b"000000"),
        (4, b"000000012500"),
        (7, b"1125221530"),
        (11, b"000042"),
        (12, b"221530"),
        (13, b"1125"),
        (14, b"2812"),
        (18, b"5999"),
        (22, b"051"),
        (25, b"00"),
        (32, b"12345678"),
        (35, b"4761739001010010=28122011234567890"),
        (37, b"533022000042"),
        (41, b"TERM0001"),
        (42, b"MERCHANT0000001"),
        (43, b"CORRIDOR TEST SHOP       SINGAPORE    SG"),
        (49, b"702"),
        (52, &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]),
        (
            55,
            &[
                0x9F, 0x26, 0x08, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x08, 0x9F, 0x27, 0x01, 0x80,
                0x9F, 0x10, 0x12, 0x01, 0x10, 0xA0, 0x00, 0x03, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0xFF,
            ],
        ),
    ];
    for &(id, value) in fields {
        let id = FieldId::new(id).unwrap_or_else(|| unreachable!("1-128"));
        if let Err(e) = m.set(id, value) {
            unreachable!("the typical 0200 fits the dictionary: {e}");
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_0200_is_the_golden_purchase() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto-spec/vectors/native.json");
        let vectors = std::fs::read_to_string(path).unwrap();
        let hex: String = typical_0200()
            .to_bytes(corridor_wire::Dialect::Native)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert!(
            vectors.contains(&format!("\"hex\": \"{hex}\"")),
            "benchmarks measure the golden purchase_0200"
        );
    }
}

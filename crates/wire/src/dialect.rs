//! The three dialects and how each one encodes the parts of a message.
//!
//! | part            | `native`                  | `iso87-ascii`        | `iso87-hex`          |
//! |-----------------|---------------------------|----------------------|----------------------|
//! | MTI             | 2 bytes BCD               | 4 ASCII digits       | 4 ASCII digits       |
//! | bitmap          | 8 bytes binary            | 8 bytes binary       | 16 hex characters    |
//! | LL / LLL prefix | 1 / 2 bytes binary (BE)   | 2 / 3 ASCII digits   | 2 / 3 ASCII digits   |
//! | `n` data        | BCD, fixed: left pad `0`, variable: right pad `F` | ASCII | ASCII     |
//! | `b` data        | raw bytes                 | raw bytes            | hex text (prefix counts characters) |
//! | other text      | ASCII                     | ASCII                | ASCII                |
//!
//! Everything here is a small function the parser and the encoders inline; the message
//! walk itself lives in [`crate::message`].

use std::{fmt, str::FromStr};

use bytes::BufMut;

use crate::{
    charset::{hex_value, Charset, DIGITS, HEX_UPPER},
    dictionary::{FieldSpec, FieldType, LengthKind},
    error::EncodeError,
    mti::Mti,
};

/// How a message body is encoded on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Corridor's binary encoding: BCD numerics, binary bitmaps and length prefixes.
    Native,
    /// ISO 8583:1987 with ASCII data and binary bitmaps (pyiso8583's `default` spec).
    Iso87Ascii,
    /// ISO 8583:1987 with ASCII data, hex-text bitmaps and hex-text binary fields
    /// (pyiso8583's `default_ascii` spec).
    Iso87Hex,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Self; 3] = [Self::Native, Self::Iso87Ascii, Self::Iso87Hex];

    /// The name used in configuration and on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Iso87Ascii => "iso87-ascii",
            Self::Iso87Hex => "iso87-hex",
        }
    }

    /// Bytes of the MTI.
    #[inline(always)]
    pub(crate) const fn mti_len(self) -> usize {
        match self {
            Self::Native => 2,
            Self::Iso87Ascii | Self::Iso87Hex => 4,
        }
    }

    /// Bytes of one bitmap.
    #[inline(always)]
    pub(crate) const fn bitmap_len(self) -> usize {
        match self {
            Self::Native | Self::Iso87Ascii => 8,
            Self::Iso87Hex => 16,
        }
    }

    /// Bytes of a length prefix.
    #[inline(always)]
    pub(crate) const fn prefix_len(self, kind: LengthKind) -> usize {
        match (self, kind) {
            (_, LengthKind::Fixed) => 0,
            (Self::Native, LengthKind::Ll) => 1,
            (Self::Native, LengthKind::Lll) => 2,
            (_, k) => k.prefix_digits(),
        }
    }

    /// How many length-prefix units one unit of the dictionary takes: a hex-dialect binary
    /// field counts characters, two per byte.
    #[inline(always)]
    pub(crate) const fn prefix_scale(self, ty: FieldType) -> usize {
        match (self, ty) {
            (Self::Iso87Hex, FieldType::B) => 2,
            _ => 1,
        }
    }

    /// Encoded bytes of a value of `units` units (digits, characters or bytes).
    #[cfg(test)]
    pub(crate) const fn data_len(self, ty: FieldType, units: usize) -> usize {
        match (self, ty) {
            (Self::Native, FieldType::N) => units.div_ceil(2),
            (Self::Iso87Hex, FieldType::B) => units * 2,
            _ => units,
        }
    }

    #[inline(always)]
    pub(crate) fn read_mti(self, b: &[u8]) -> Option<Mti> {
        match self {
            Self::Native => {
                let (hi, lo) = (b[0], b[1]);
                let n = [hi >> 4, hi & 0xF, lo >> 4, lo & 0xF];
                if n.iter().any(|&d| d > 9) {
                    return None;
                }
                Mti::new(
                    u16::from(n[0]) * 1000 + u16::from(n[1]) * 100 + u16::from(n[2]) * 10 + u16::from(n[3]),
                )
            }
            Self::Iso87Ascii | Self::Iso87Hex => Mti::from_ascii(&b[..4]),
        }
    }

    fn write_mti(self, mti: Mti, out: &mut impl BufMut) {
        let a = mti.to_ascii();
        match self {
            Self::Native => {
                out.put_slice(&[((a[0] - b'0') << 4) | (a[1] - b'0'), ((a[2] - b'0') << 4) | (a[3] - b'0')])
            }
            Self::Iso87Ascii | Self::Iso87Hex => out.put_slice(&a),
        }
    }

    /// Writes the MTI and the bitmaps for the value fields in `fields` (DE n is bit 128 - n of
    /// the set; DE 1 and DE 65 are ignored): the secondary bitmap, and DE 1 announcing it,
    /// exactly when a field of DE 66-128 is present.
    pub(crate) fn write_head(self, mti: Mti, fields: u128, out: &mut impl BufMut) {
        let fields = fields & !(1 << 127) & !(1 << 63);
        // Truncation keeps the low word: DE 65-128.
        let low = fields as u64;
        let high = (fields >> 64) as u64 | if low != 0 { 1 << 63 } else { 0 };
        self.write_mti(mti, out);
        self.write_bitmap(high, out);
        if low != 0 {
            self.write_bitmap(low, out);
        }
    }

    /// Reads one bitmap (bit 1 is the most significant bit of the returned word).
    #[inline(always)]
    pub(crate) fn read_bitmap(self, b: &[u8]) -> Option<u64> {
        match self {
            Self::Native | Self::Iso87Ascii => {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[..8]);
                Some(u64::from_be_bytes(w))
            }
            Self::Iso87Hex => {
                let mut v = 0u64;
                for &c in &b[..16] {
                    v = (v << 4) | u64::from(hex_value(c)?);
                }
                Some(v)
            }
        }
    }

    fn write_bitmap(self, bits: u64, out: &mut impl BufMut) {
        match self {
            Self::Native | Self::Iso87Ascii => out.put_u64(bits),
            Self::Iso87Hex => {
                for i in (0..16).rev() {
                    // A nibble indexes the 16-entry table.
                    out.put_u8(HEX_UPPER[((bits >> (i * 4)) & 0xF) as usize]);
                }
            }
        }
    }

    /// Reads a length prefix (`b` holds exactly its bytes), in prefix units.
    #[inline(always)]
    pub(crate) fn read_prefix(self, b: &[u8]) -> Option<usize> {
        match self {
            Self::Native => Some(b.iter().fold(0usize, |v, &x| (v << 8) | usize::from(x))),
            Self::Iso87Ascii | Self::Iso87Hex => {
                b.iter().try_fold(0usize, |v, &x| x.is_ascii_digit().then(|| v * 10 + usize::from(x - b'0')))
            }
        }
    }

    fn write_prefix(self, kind: LengthKind, n: usize, out: &mut impl BufMut) {
        match (self, kind) {
            (_, LengthKind::Fixed) => {}
            // The dictionary caps LL at 99 and LLL at 999 (checked at build time and by
            // `check_value`), so the narrowing casts keep every bit.
            (Self::Native, LengthKind::Ll) => out.put_u8(n as u8),
            (Self::Native, LengthKind::Lll) => out.put_u16(n as u16),
            (_, kind) => {
                let mut digits = [b'0'; 3];
                crate::values::write_decimal(n as u64, &mut digits[..kind.prefix_digits()]);
                out.put_slice(&digits[..kind.prefix_digits()]);
            }
        }
    }

    /// Writes the canonical value (ASCII text, or raw bytes for `b`) of checked encoded data
    /// into `out`, which must hold `units` bytes, and returns `units`.
    pub(crate) fn canonical(self, spec: &FieldSpec, data: &[u8], out: &mut [u8]) -> usize {
        match (self, spec.ty) {
            (Self::Native, FieldType::N) => {
                let units = native_digits(spec, data);
                let out = &mut out[..units];
                // A fixed field of an odd count starts with a pad nibble: its first digit is
                // the low nibble of the first byte. Then two digits a byte, and a variable
                // field of an odd count ends with the high nibble of its last byte (the low
                // one is the `F` pad).
                let (mut k, mut byte) = (0, 0);
                if units % 2 == 1 && spec.is_fixed() {
                    out[0] = b'0' + (data[0] & 0xF);
                    (k, byte) = (1, 1);
                }
                let pairs = (units - k) / 2;
                for (o, &b) in out[k..k + 2 * pairs].chunks_exact_mut(2).zip(&data[byte..byte + pairs]) {
                    o[0] = b'0' + (b >> 4);
                    o[1] = b'0' + (b & 0xF);
                }
                k += 2 * pairs;
                if k < units {
                    out[k] = b'0' + (data[byte + pairs] >> 4);
                }
                units
            }
            (Self::Iso87Hex, FieldType::B) => {
                let units = data.len() / 2;
                for (o, pair) in out[..units].iter_mut().zip(data.chunks_exact(2)) {
                    // `check_data` accepted only hex digits.
                    *o = (hex_value(pair[0]).unwrap_or(0) << 4) | hex_value(pair[1]).unwrap_or(0);
                }
                units
            }
            _ => {
                out[..data.len()].copy_from_slice(data);
                data.len()
            }
        }
    }

    /// Whether the encoded data of fields of type `ty` is already the canonical value.
    #[inline(always)]
    pub(crate) const fn is_canonical(self, ty: FieldType) -> bool {
        !matches!((self, ty), (Self::Native, FieldType::N) | (Self::Iso87Hex, FieldType::B))
    }

    /// Encodes a canonical value (prefix and data). The value must have passed
    /// [`check_value`].
    pub(crate) fn encode_value(self, spec: &FieldSpec, value: &[u8], out: &mut impl BufMut) {
        self.write_prefix(spec.length, value.len() * self.prefix_scale(spec.ty), out);
        match (self, spec.ty) {
            (Self::Native, FieldType::N) => {
                // An odd count of digits gets one pad nibble: 0 in front for fixed fields,
                // F behind for variable ones, so the nibbles always pair up.
                let odd = value.len() % 2 == 1;
                let lead = (odd && spec.is_fixed()).then_some(0u8);
                let trail = (odd && !spec.is_fixed()).then_some(0xFu8);
                let mut nibbles = lead.into_iter().chain(value.iter().map(|d| d - b'0')).chain(trail);
                while let (Some(hi), Some(lo)) = (nibbles.next(), nibbles.next()) {
                    out.put_u8((hi << 4) | lo);
                }
            }
            (Self::Iso87Hex, FieldType::B) => {
                for &b in value {
                    out.put_slice(&[HEX_UPPER[usize::from(b >> 4)], HEX_UPPER[usize::from(b & 0xF)]]);
                }
            }
            _ => out.put_slice(value),
        }
    }
}

/// Digits in checked native BCD data of field `spec`.
#[inline(always)]
pub(crate) fn native_digits(spec: &FieldSpec, data: &[u8]) -> usize {
    if spec.is_fixed() {
        spec.max as usize
    } else {
        let pad = data.last().is_some_and(|b| b & 0xF == 0xF);
        data.len() * 2 - usize::from(pad)
    }
}

/// Checks a canonical value against the dictionary: its length, then its characters.
///
/// # Errors
///
/// [`EncodeError::BadLength`] or [`EncodeError::InvalidCharacter`], naming the field.
pub fn check_value(spec: &FieldSpec, value: &[u8]) -> Result<(), EncodeError> {
    let max = spec.max as usize;
    let fits = if spec.is_fixed() { value.len() == max } else { value.len() <= max };
    if !fits {
        return Err(EncodeError::BadLength { field: spec.id, len: value.len(), max, fixed: spec.is_fixed() });
    }
    let bad = |index: usize, expected: &'static str| EncodeError::InvalidCharacter {
        field: spec.id,
        index,
        found: value[index],
        expected,
    };
    if spec.ty == FieldType::Xn {
        if let Some(&sign) = value.first() {
            if sign != b'C' && sign != b'D' {
                return Err(bad(0, "'C' or 'D' (x+n sign)"));
            }
        }
        return match DIGITS.first_invalid(value.get(1..).unwrap_or_default()) {
            Some(i) => Err(bad(i + 1, DIGITS.name)),
            None => Ok(()),
        };
    }
    let set = Charset::of(spec.ty);
    match set.first_invalid(value) {
        Some(i) => Err(bad(i, set.name)),
        None => Ok(()),
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dialect name that is not one of `native`, `iso87-ascii`, `iso87-hex`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownDialect(pub String);

impl fmt::Display for UnknownDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown dialect {:?}: expected native, iso87-ascii or iso87-hex", self.0)
    }
}

impl std::error::Error for UnknownDialect {}

impl FromStr for Dialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| UnknownDialect(s.to_owned()))
    }
}

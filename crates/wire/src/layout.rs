//! The field dictionary compiled per dialect: for each field, how its length is known and
//! how its bytes are checked, as one small record the parser loads once per field.

use crate::{
    charset::{bcd_bad, range_bad, words_pass, Charset, DIGITS, HEX_DIGITS},
    dialect::Dialect,
    dictionary::{FieldSpec, FieldType, LengthKind, FIELD_TABLE},
    error::DecodeError,
};

/// How a field's bytes are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Binary: anything goes.
    Any,
    /// Native BCD, fixed, even number of digits.
    Bcd,
    /// Native BCD, fixed, odd number of digits: a leading 0 pad nibble.
    BcdLeftPad,
    /// Native BCD, variable: a trailing F pad nibble when the digit count is odd.
    BcdVar,
    /// ASCII digits.
    Digits,
    /// Printable ASCII.
    Printable,
    /// Letters, digits, space.
    AlnumSpace,
    /// Digits, '=', 'D'.
    Track,
    /// Digits, space, specials.
    NumericSpecial,
    /// 'C' or 'D', then digits.
    SignedAmount,
    /// Hex text.
    Hex,
}

/// One field in one dialect.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Encoded bytes of a fixed field.
    pub(crate) fixed: u16,
    /// Bytes of the length prefix; 0 for a fixed field.
    pub(crate) prefix: u8,
    /// Largest value the prefix may declare.
    pub(crate) declared_max: u16,
    /// The prefix counts digits packed two a byte (native variable `n`).
    pub(crate) packed: bool,
    /// The prefix counts hex characters of a binary field (must be even).
    pub(crate) hex_pairs: bool,
    /// How the bytes are checked.
    pub(crate) check: Check,
    /// The field's type (for error messages).
    pub(crate) ty: FieldType,
}

const fn layout(d: Dialect, s: &FieldSpec) -> Layout {
    let native = matches!(d, Dialect::Native);
    let hex = matches!(d, Dialect::Iso87Hex);
    let fixed_len = matches!(s.length, LengthKind::Fixed);
    let check = match s.ty {
        FieldType::N if native && fixed_len && s.max % 2 == 1 => Check::BcdLeftPad,
        FieldType::N if native && fixed_len => Check::Bcd,
        FieldType::N if native => Check::BcdVar,
        FieldType::N => Check::Digits,
        FieldType::Ans => Check::Printable,
        FieldType::An => Check::AlnumSpace,
        FieldType::Z => Check::Track,
        FieldType::Ns => Check::NumericSpecial,
        FieldType::Xn => Check::SignedAmount,
        FieldType::B if hex => Check::Hex,
        FieldType::B => Check::Any,
    };
    let scale = if hex && matches!(s.ty, FieldType::B) { 2 } else { 1 };
    let prefix = match (s.length, native) {
        (LengthKind::Fixed, _) => 0,
        (LengthKind::Ll, true) => 1,
        (LengthKind::Lll, true) => 2,
        (LengthKind::Ll, false) => 2,
        (LengthKind::Lll, false) => 3,
    };
    let fixed = if !fixed_len {
        0
    } else if native && matches!(s.ty, FieldType::N) {
        s.max.div_ceil(2)
    } else {
        s.max * scale
    };
    Layout {
        fixed,
        prefix,
        declared_max: s.max * scale,
        packed: native && matches!(s.ty, FieldType::N),
        hex_pairs: scale == 2,
        check,
        ty: s.ty,
    }
}

const fn table(d: Dialect) -> [Layout; 129] {
    let empty = Layout {
        fixed: 0,
        prefix: 0,
        declared_max: 0,
        packed: false,
        hex_pairs: false,
        check: Check::Any,
        ty: FieldType::B,
    };
    let mut t = [empty; 129];
    let mut i = 1;
    while i < 129 {
        t[i] = layout(d, &FIELD_TABLE[i]);
        i += 1;
    }
    t
}

/// Per dialect (in `Dialect::ALL` order), per field.
pub(crate) const LAYOUT_TABLE: [[Layout; 129]; 3] =
    [table(Dialect::Native), table(Dialect::Iso87Ascii), table(Dialect::Iso87Hex)];

/// The same, as one table in memory.
pub(crate) static LAYOUTS: [[Layout; 129]; 3] = LAYOUT_TABLE;

#[cold]
#[inline(never)]
fn invalid(field: u8, body: &[u8], start: usize, len: usize, check: Check, ty: FieldType) -> DecodeError {
    // Found again byte by byte, only on failure.
    let data = &body[start..start + len];
    let (i, expected) = match check {
        Check::Bcd | Check::BcdLeftPad | Check::BcdVar => {
            (data.iter().position(|&b| b & 0xF > 9 || b >> 4 > 9).unwrap_or(0), "a BCD digit")
        }
        Check::SignedAmount if data.first().is_some_and(|&c| c != b'C' && c != b'D') => {
            (0, "'C' or 'D' (x+n sign)")
        }
        Check::SignedAmount => (DIGITS.first_invalid(&data[1..]).map_or(0, |i| i + 1), DIGITS.name),
        Check::Hex => (HEX_DIGITS.first_invalid(data).unwrap_or(0), HEX_DIGITS.name),
        _ => {
            let set = Charset::of(ty);
            (set.first_invalid(data).unwrap_or(0), set.name)
        }
    };
    let i = i.min(len.saturating_sub(1));
    DecodeError::InvalidCharacter {
        field,
        offset: start + i,
        found: data.get(i).copied().unwrap_or(0),
        expected,
    }
}

/// Checks the `len` encoded bytes of field `field` at `start` of `body`. `declared` is the
/// prefix value of a variable field.
#[inline(always)]
pub(crate) fn check(
    lay: &Layout,
    field: u8,
    body: &[u8],
    start: usize,
    len: usize,
    declared: usize,
) -> Result<(), DecodeError> {
    check_slow(lay, field, body, start, len, declared)
}

#[inline(always)]
fn check_slow(
    lay: &Layout,
    field: u8,
    body: &[u8],
    start: usize,
    len: usize,
    declared: usize,
) -> Result<(), DecodeError> {
    let ty = lay.ty;
    let ok = match lay.check {
        Check::Any => true,
        Check::Bcd => words_pass(body, start, len, 0, bcd_bad),
        Check::BcdLeftPad => {
            if len > 0 && body[start] >> 4 != 0 {
                return Err(DecodeError::InvalidPadding { field, offset: start });
            }
            words_pass(body, start, len, 0, bcd_bad)
        }
        Check::BcdVar => {
            if declared % 2 == 1 {
                let last = body[start + len - 1];
                if last & 0xF != 0xF {
                    return Err(DecodeError::InvalidPadding { field, offset: start + len - 1 });
                }
                last >> 4 <= 9 && words_pass(body, start, len - 1, 0, bcd_bad)
            } else {
                words_pass(body, start, len, 0, bcd_bad)
            }
        }
        Check::Digits => words_pass(body, start, len, b'0', |x| range_bad(x, b'0', b'9')),
        Check::Printable => words_pass(body, start, len, b' ', |x| range_bad(x, 0x20, 0x7E)),
        Check::AlnumSpace => Charset::of(FieldType::An).all_in(&body[start..start + len]),
        Check::Track => !body[start..start + len]
            .iter()
            .fold(false, |bad, &c| bad | !matches!(c, b'0'..=b'9' | b'=' | b'D')),
        Check::NumericSpecial => {
            Charset::of(FieldType::Ns).first_invalid(&body[start..start + len]).is_none()
        }
        Check::SignedAmount => {
            len == 0
                || (matches!(body[start], b'C' | b'D')
                    && words_pass(body, start + 1, len - 1, b'0', |x| range_bad(x, b'0', b'9')))
        }
        Check::Hex => HEX_DIGITS.first_invalid(&body[start..start + len]).is_none(),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(field, body, start, len, lay.check, ty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::FieldId;

    #[test]
    fn decoded_values_fit_the_scratch_space() {
        for id in FieldId::all_values() {
            let s = id.spec();
            if matches!(s.ty, FieldType::N | FieldType::B) {
                assert!(s.max as usize <= crate::limits::DECODED_UNITS_MAX, "{id}");
            }
        }
    }

    #[test]
    fn layouts_agree_with_the_dialect_rules() {
        for (di, d) in Dialect::ALL.into_iter().enumerate() {
            for id in FieldId::all_values() {
                let s = id.spec();
                let l = LAYOUTS[di][usize::from(id.get())];
                assert_eq!(usize::from(l.prefix), d.prefix_len(s.length), "{d} {id}");
                assert_eq!(l.hex_pairs, d.prefix_scale(s.ty) == 2);
                if s.is_fixed() {
                    assert_eq!(usize::from(l.fixed), d.data_len(s.ty, s.max as usize), "{d} {id}");
                } else {
                    assert_eq!(
                        usize::from(l.declared_max),
                        s.max as usize * d.prefix_scale(s.ty),
                        "{d} {id}"
                    );
                }
            }
        }
    }
}

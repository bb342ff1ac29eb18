//! Character classes of the dictionary's field types, as one 256-entry table.
//!
//! Validation is one table load and one AND per byte, so checking a whole message stays
//! within the parse budget.

use crate::dictionary::FieldType;

const DIGIT: u8 = 1 << 0;
const ALPHA: u8 = 1 << 1;
const SPACE: u8 = 1 << 2;
const SPECIAL: u8 = 1 << 3;
const TRACK: u8 = 1 << 4;
const HEX: u8 = 1 << 5;

static CLASS: [u8; 256] = build();

const fn build() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if c.is_ascii_digit() {
            k |= DIGIT | HEX;
        }
        if c.is_ascii_alphabetic() {
            k |= ALPHA;
        }
        if matches!(c, b'A'..=b'F' | b'a'..=b'f') {
            k |= HEX;
        }
        if c == b' ' {
            k |= SPACE;
        }
        if c.is_ascii_punctuation() {
            k |= SPECIAL;
        }
        if c == b'=' || c == b'D' {
            k |= TRACK;
        }
        t[b] = k;
        b += 1;
    }
    t
}

/// The set of characters a text type allows, and how an error describes it.
#[derive(Clone, Copy)]
pub(crate) struct Charset {
    mask: u8,
    pub(crate) name: &'static str,
}

pub(crate) const DIGITS: Charset = Charset { mask: DIGIT, name: "a digit" };
pub(crate) const HEX_DIGITS: Charset = Charset { mask: HEX, name: "a hex digit" };

impl Charset {
    /// The character set of a text type (`x+n` is checked as digits after its sign).
    pub(crate) const fn of(ty: FieldType) -> Self {
        match ty {
            FieldType::N | FieldType::Xn => DIGITS,
            FieldType::An => Charset { mask: DIGIT | ALPHA | SPACE, name: "a letter, digit or space (an)" },
            FieldType::Ans => {
                Charset { mask: DIGIT | ALPHA | SPACE | SPECIAL, name: "printable ASCII (ans)" }
            }
            FieldType::Ns => {
                Charset { mask: DIGIT | SPACE | SPECIAL, name: "a digit, space or special (ns)" }
            }
            FieldType::Z => Charset { mask: DIGIT | TRACK, name: "a digit, '=' or 'D' (z)" },
            FieldType::B => Charset { mask: 0xFF, name: "any byte" },
        }
    }

    /// Index of the first byte outside the set.
    #[inline]
    pub(crate) fn first_invalid(self, bytes: &[u8]) -> Option<usize> {
        if self.mask == 0xFF {
            return None;
        }
        bytes.iter().position(|&b| CLASS[b as usize] & self.mask == 0)
    }
}

/// The value of an ASCII hex digit, if it is one (either case).
#[inline]
pub(crate) const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Uppercase hex digits, by nibble.
pub(crate) const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(Charset::of(FieldType::N).first_invalid(b"0123456789"), None);
        assert_eq!(Charset::of(FieldType::N).first_invalid(b"12a4"), Some(2));
        assert_eq!(Charset::of(FieldType::An).first_invalid(b"AB 12z"), None);
        assert_eq!(Charset::of(FieldType::An).first_invalid(b"AB-1"), Some(2));
        assert_eq!(Charset::of(FieldType::Ans).first_invalid(b"A-b ~!"), None);
        assert_eq!(Charset::of(FieldType::Ans).first_invalid(b"ok\n"), Some(2));
        assert_eq!(Charset::of(FieldType::Ans).first_invalid(&[b'a', 0xC3]), Some(1));
        assert_eq!(Charset::of(FieldType::Z).first_invalid(b"4761=2512D101"), None);
        assert_eq!(Charset::of(FieldType::Z).first_invalid(b"47^1"), Some(2));
        assert_eq!(Charset::of(FieldType::Ns).first_invalid(b"12 -*"), None);
        assert_eq!(Charset::of(FieldType::Ns).first_invalid(b"12a"), Some(2));
        assert_eq!(Charset::of(FieldType::B).first_invalid(&[0, 255]), None);
        assert_eq!(HEX_DIGITS.first_invalid(b"09afAF"), None);
        assert_eq!(HEX_DIGITS.first_invalid(b"0G"), Some(1));
    }
}

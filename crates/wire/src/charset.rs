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

    /// Whether every byte is in the set: one table load per byte and no early exit, so the
    /// loop stays short and branch-free.
    #[inline(always)]
    pub(crate) fn all_in(self, bytes: &[u8]) -> bool {
        !bytes.iter().fold(false, |bad, &b| bad | (CLASS[b as usize] & self.mask == 0))
    }

    /// Index of the first byte outside the set.
    #[inline(always)]
    pub(crate) fn first_invalid(self, bytes: &[u8]) -> Option<usize> {
        // The common sets have range checks with no early exit, which vectorize; only a
        // message that fails looks for the position.
        let all_ok = match self.mask {
            0xFF => return None,
            DIGIT => all_in_range(bytes, b'0', b'9'),
            m if m == DIGIT | ALPHA | SPACE | SPECIAL => all_in_range(bytes, 0x20, 0x7E),
            m if m == DIGIT | ALPHA | SPACE => bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b' '),
            _ => !bytes.iter().fold(false, |bad, &b| bad | (CLASS[b as usize] & self.mask == 0)),
        };
        if all_ok {
            return None;
        }
        bytes.iter().position(|&b| CLASS[b as usize] & self.mask == 0)
    }
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether some byte of `x` is below `n` (n <= 128). Exact: no false positives.
#[inline(always)]
const fn has_less(x: u64, n: u8) -> bool {
    (x.wrapping_sub(ONES * n as u64) & !x & HIGHS) != 0
}

/// Whether some byte of `x` is above `n` (n <= 127). Exact: no false positives.
#[inline(always)]
const fn has_more(x: u64, n: u8) -> bool {
    ((x.wrapping_add(ONES * (127 - n) as u64) | x) & HIGHS) != 0
}

/// Whether every byte lies in `lo..=hi` (both below 128), eight bytes at a time.
#[inline(always)]
pub(crate) fn all_in_range(bytes: &[u8], lo: u8, hi: u8) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_ne_bytes(w);
        if has_less(x, lo) || has_more(x, hi) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| (lo..=hi).contains(&b))
}

#[inline(always)]
fn load(body: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&body[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Whether bytes `start..start + len` of `body` pass a word-at-a-time test: `bad` must
/// return true for a word holding any failing byte, and false for a word of `fill` bytes.
/// Every byte is read as part of a whole word: long runs in steps of eight with one
/// overlapping last word, short runs as one word that reaches into the neighbouring bytes of
/// `body`, those bytes replaced by `fill`.
#[inline(always)]
pub(crate) fn words_pass(body: &[u8], start: usize, len: usize, fill: u8, bad: impl Fn(u64) -> bool) -> bool {
    let end = start + len;
    if len >= 8 {
        let mut i = start;
        while i + 8 <= end {
            if bad(load(body, i)) {
                return false;
            }
            i += 8;
        }
        return i == end || !bad(load(body, end - 8));
    }
    if len == 0 {
        return true;
    }
    let fills = ONES * u64::from(fill);
    if end - len + 8 <= body.len() {
        // The field's bytes are the low `len` bytes of the word that starts with it.
        let keep = (1u64 << (8 * len)) - 1;
        return !bad((load(body, start) & keep) | (fills & !keep));
    }
    if end >= 8 {
        // Near the end of the body: the word that ends with the field, its high bytes.
        let keep = !0u64 << (8 * (8 - len));
        return !bad((load(body, end - 8) & keep) | (fills & !keep));
    }
    let mut w = [fill; 8];
    w[..len].copy_from_slice(&body[start..end]);
    !bad(u64::from_le_bytes(w))
}

/// A word holding a byte with a nibble above 9.
#[inline(always)]
pub(crate) const fn bcd_bad(x: u64) -> bool {
    const LOW: u64 = u64::from_ne_bytes([0x0F; 8]);
    const SIX: u64 = u64::from_ne_bytes([0x06; 8]);
    const SIXTEEN: u64 = u64::from_ne_bytes([0x10; 8]);
    (((x & LOW) + SIX) | (((x >> 4) & LOW) + SIX)) & SIXTEEN != 0
}

/// A word holding a byte outside `lo..=hi` (both below 128).
#[inline(always)]
pub(crate) const fn range_bad(x: u64, lo: u8, hi: u8) -> bool {
    has_less(x, lo) || has_more(x, hi)
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

    #[test]
    fn words_pass_reads_exactly_the_field() {
        // A field of every length at every position in a body of every size, with a bad
        // byte inside or just outside it: only bytes inside count.
        for size in 1..24usize {
            for start in 0..size {
                for len in 0..=size - start {
                    let body = vec![b'5'; size];
                    assert!(words_pass(&body, start, len, b'0', |x| range_bad(x, b'0', b'9')));
                    for bad_at in 0..size {
                        let mut b = body.clone();
                        b[bad_at] = b'x';
                        let inside = bad_at >= start && bad_at < start + len;
                        assert_eq!(
                            words_pass(&b, start, len, b'0', |x| range_bad(x, b'0', b'9')),
                            !inside,
                            "size {size} start {start} len {len} bad {bad_at}"
                        );
                        let mut n = vec![0x12u8; size];
                        n[bad_at] = 0x1A;
                        assert_eq!(words_pass(&n, start, len, 0, bcd_bad), !inside);
                    }
                }
            }
        }
    }

    #[test]
    fn word_at_a_time_checks_agree_with_byte_checks() {
        // Every byte value in every position of a 9-byte slice (one word and a remainder).
        for pos in 0..9 {
            for b in 0..=255u8 {
                let mut v = *b"012345678";
                v[pos] = b;
                assert_eq!(all_in_range(&v, b'0', b'9'), v.iter().all(u8::is_ascii_digit), "{pos} {b}");
                let mut p = *b"ABCDEFGHI";
                p[pos] = b;
                assert_eq!(
                    all_in_range(&p, 0x20, 0x7E),
                    p.iter().all(|c| (0x20..=0x7E).contains(c)),
                    "{pos} {b}"
                );
                let mut n = [0x12u8; 9];
                n[pos] = b;
                assert_eq!(
                    words_pass(&n, 0, 9, 0, bcd_bad),
                    n.iter().all(|c| c & 0xF <= 9 && c >> 4 <= 9),
                    "{pos} {b}"
                );
            }
        }
    }
}

//! Typed values of the fields the switch reads.
//!
//! Each is a small `Copy` value built on the stack from the message's bytes; none allocates.
//! Card numbers never print whole: see [`Pan`].

use std::fmt;

/// DE 11, the system trace audit number. Six digits, so it wraps at 999 999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stan(u32);

impl Stan {
    /// Largest STAN: DE 11 is six digits.
    pub const MAX: u32 = 999_999;

    /// A STAN, if `value` has at most six digits.
    #[must_use]
    pub const fn new(value: u32) -> Option<Self> {
        if value <= Self::MAX {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The number.
    #[must_use]
    pub const fn value(self) -> u32 {
        self.0
    }

    /// The next STAN, wrapping from 999 999 to 000 001 (000 000 is not used as a trace number).
    #[must_use]
    pub const fn next(self) -> Self {
        if self.0 >= Self::MAX {
            Self(1)
        } else {
            Self(self.0 + 1)
        }
    }

    /// The six ASCII digits of DE 11.
    #[must_use]
    pub fn to_ascii(self) -> [u8; 6] {
        let mut out = [b'0'; 6];
        write_decimal(u64::from(self.0), &mut out);
        out
    }
}

impl fmt::Display for Stan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// DE 7, transmission date and time, MMDDhhmmss, held as its ten-digit number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransmissionTime(u64);

impl TransmissionTime {
    /// A transmission time from its ten-digit value (no calendar check: the switch compares,
    /// it does not interpret).
    #[must_use]
    pub const fn new(value: u64) -> Option<Self> {
        if value <= 9_999_999_999 {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The number.
    #[must_use]
    pub const fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TransmissionTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

/// An institution identification code (DE 32, 33, 99, 100): up to eleven digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstitutionId {
    len: u8,
    digits: [u8; 11],
}

impl InstitutionId {
    /// An id from ASCII digits, if there are 1 to 11 of them.
    #[must_use]
    pub fn from_ascii(s: &[u8]) -> Option<Self> {
        if s.is_empty() || s.len() > 11 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = [0u8; 11];
        digits[..s.len()].copy_from_slice(s);
        // At most 11, checked above.
        Some(Self { len: s.len() as u8, digits })
    }

    /// The ASCII digits.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    /// The digits as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Display for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstitutionId({})", self.as_str())
    }
}

/// DE 39, the response code: two characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub [u8; 2]);

impl ResponseCode {
    /// 00 approved.
    pub const APPROVED: Self = Self(*b"00");
    /// 05 do not honour.
    pub const DO_NOT_HONOUR: Self = Self(*b"05");
    /// 30 format error.
    pub const FORMAT_ERROR: Self = Self(*b"30");
    /// 63 security violation (the sender spoke for an institution it is not).
    pub const SECURITY_VIOLATION: Self = Self(*b"63");
    /// 68 response received too late (the switch timed the request out).
    pub const TIMEOUT: Self = Self(*b"68");
    /// 91 issuer or switch inoperative (no link up, or at its in-flight limit).
    pub const DESTINATION_UNAVAILABLE: Self = Self(*b"91");
    /// 92 no route to the destination institution.
    pub const NO_ROUTE: Self = Self(*b"92");
    /// 94 duplicate transmission.
    pub const DUPLICATE: Self = Self(*b"94");
    /// 96 system malfunction.
    pub const SYSTEM_ERROR: Self = Self(*b"96");

    /// Whether this code approves the transaction (00).
    #[must_use]
    pub fn is_approval(self) -> bool {
        self == Self::APPROVED
    }

    /// The two characters as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode({})", self.as_str())
    }
}

/// DE 70, the network management information code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetworkCode(pub u16);

impl NetworkCode {
    /// 001 sign-on.
    pub const SIGN_ON: Self = Self(1);
    /// 002 sign-off.
    pub const SIGN_OFF: Self = Self(2);
    /// 301 echo test.
    pub const ECHO: Self = Self(301);

    /// The three ASCII digits of DE 70.
    #[must_use]
    pub fn to_ascii(self) -> [u8; 3] {
        let mut out = [b'0'; 3];
        write_decimal(u64::from(self.0), &mut out);
        out
    }
}

/// DE 2, a primary account number: 1 to 19 digits, held on the stack.
///
/// `Display` and `Debug` show at most the first six and last four digits; the whole number is
/// reachable only through [`Pan::digits`], for routing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pan {
    len: u8,
    digits: [u8; 19],
}

impl Pan {
    /// A PAN from ASCII digits, if there are 1 to 19 of them.
    #[must_use]
    pub fn from_ascii(s: &[u8]) -> Option<Self> {
        if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = [0u8; 19];
        digits[..s.len()].copy_from_slice(s);
        // At most 19, checked above.
        Some(Self { len: s.len() as u8, digits })
    }

    /// Every digit, as ASCII. For routing only: never log or show this.
    #[must_use]
    pub fn digits(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    /// The number of digits.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a PAN has at least one digit.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 19];
        let n = mask_pan(self.digits(), &mut buf);
        f.write_str(std::str::from_utf8(&buf[..n]).unwrap_or(""))
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({self})")
    }
}

/// Writes `pan` masked into `out` and returns its length: the first six and last four digits
/// stay when at least six digits lie between them (13 digits or more), only the last four
/// stay on shorter numbers, and a number of four digits or fewer is masked whole. Every
/// masked digit becomes `*`.
pub fn mask_pan(pan: &[u8], out: &mut [u8]) -> usize {
    let n = pan.len().min(out.len());
    let (head, tail) = if n >= 13 {
        (6, 4)
    } else if n > 4 {
        (0, 4)
    } else {
        (0, 0)
    };
    for (i, (o, &d)) in out.iter_mut().zip(pan).take(n).enumerate() {
        *o = if i < head || i >= n - tail { d } else { b'*' };
    }
    n
}

/// Writes `value` as zero-padded decimal into `out` (most significant digit first); digits that
/// do not fit are dropped from the left.
pub(crate) fn write_decimal(mut value: u64, out: &mut [u8]) {
    for o in out.iter_mut().rev() {
        // A remainder of 10 fits a u8.
        *o = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stan_wraps_at_six_digits() {
        let last = Stan::new(999_999).expect("six digits");
        assert_eq!(last.next().value(), 1);
        assert_eq!(Stan::new(41).map(Stan::next).map(Stan::value), Some(42));
        assert_eq!(Stan::new(1_000_000), None);
        assert_eq!(&Stan::new(42).map(Stan::to_ascii).expect("valid"), b"000042");
    }

    #[test]
    fn pan_never_prints_whole() {
        let pan = Pan::from_ascii(b"4761739001010010").expect("16 digits");
        assert_eq!(pan.to_string(), "476173******0010");
        assert_eq!(format!("{pan:?}"), "Pan(476173******0010)");
        assert_eq!(pan.digits(), b"4761739001010010");
        assert_eq!(Pan::from_ascii(b"123456789012").map(|p| p.to_string()), Some("********9012".into()));
        assert_eq!(Pan::from_ascii(b"1234").map(|p| p.to_string()), Some("****".into()));
        assert_eq!(Pan::from_ascii(b"12a4"), None);
        assert_eq!(Pan::from_ascii(b""), None);
        assert_eq!(Pan::from_ascii(&[b'1'; 20]), None);
    }

    #[test]
    fn codes() {
        assert_eq!(&NetworkCode::ECHO.to_ascii(), b"301");
        assert_eq!(&NetworkCode::SIGN_ON.to_ascii(), b"001");
        assert!(ResponseCode::APPROVED.is_approval());
        assert_eq!(ResponseCode::NO_ROUTE.to_string(), "92");
        let id = InstitutionId::from_ascii(b"12345678901").expect("11 digits");
        assert_eq!(id.as_str(), "12345678901");
        assert_eq!(InstitutionId::from_ascii(b"123456789012"), None);
    }
}

//! The message type indicator.
//!
//! Four digits: version (0 = 1987), class, function, origin. The switch relies on three rules:
//! a request's function digit is even and its response's is that digit plus one; an origin
//! digit that is odd marks a repeat; the class groups related messages (1 authorization,
//! 2 financial, 4 reversal, 8 network management).

use std::fmt;

/// A message type indicator, held as its four-digit decimal value (0100 is 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mti(u16);

impl Mti {
    /// 0100 authorization request.
    pub const AUTHORIZATION_REQUEST: Self = Self(100);
    /// 0110 authorization response.
    pub const AUTHORIZATION_RESPONSE: Self = Self(110);
    /// 0200 financial request.
    pub const FINANCIAL_REQUEST: Self = Self(200);
    /// 0210 financial response.
    pub const FINANCIAL_RESPONSE: Self = Self(210);
    /// 0420 acquirer reversal advice.
    pub const REVERSAL_ADVICE: Self = Self(420);
    /// 0421 acquirer reversal advice, repeat.
    pub const REVERSAL_ADVICE_REPEAT: Self = Self(421);
    /// 0430 reversal advice response.
    pub const REVERSAL_ADVICE_RESPONSE: Self = Self(430);
    /// 0800 network management request.
    pub const NETWORK_REQUEST: Self = Self(800);
    /// 0810 network management response.
    pub const NETWORK_RESPONSE: Self = Self(810);

    /// An MTI from its decimal value, if it has at most four digits.
    #[must_use]
    pub const fn new(value: u16) -> Option<Self> {
        if value <= 9999 {
            Some(Self(value))
        } else {
            None
        }
    }

    /// An MTI from four ASCII digits.
    #[must_use]
    pub fn from_ascii(digits: &[u8]) -> Option<Self> {
        let [a, b, c, d] = <[u8; 4]>::try_from(digits).ok()?;
        let mut v = 0u16;
        for x in [a, b, c, d] {
            if !x.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(x - b'0');
        }
        Some(Self(v))
    }

    /// The decimal value (0200 is 200).
    #[must_use]
    pub const fn value(self) -> u16 {
        self.0
    }

    /// The four ASCII digits.
    #[must_use]
    pub const fn to_ascii(self) -> [u8; 4] {
        let v = self.0;
        // Each digit is < 10, so the casts cannot truncate.
        [
            b'0' + (v / 1000) as u8,
            b'0' + (v / 100 % 10) as u8,
            b'0' + (v / 10 % 10) as u8,
            b'0' + (v % 10) as u8,
        ]
    }

    /// First digit: the ISO 8583 version (0 = 1987).
    #[must_use]
    pub const fn version(self) -> u8 {
        (self.0 / 1000) as u8
    }

    /// Second digit: the message class (1 authorization, 2 financial, 4 reversal, 8 network).
    #[must_use]
    pub const fn class(self) -> u8 {
        (self.0 / 100 % 10) as u8
    }

    /// Third digit: the function (0 request, 1 request response, 2 advice, 3 advice
    /// response, 4 notification, ...).
    #[must_use]
    pub const fn function(self) -> u8 {
        (self.0 / 10 % 10) as u8
    }

    /// Fourth digit: the origin (0 acquirer, 1 acquirer repeat, 2 issuer, 3 issuer repeat, ...).
    #[must_use]
    pub const fn origin(self) -> u8 {
        (self.0 % 10) as u8
    }

    /// Whether this message asks for an answer: its function digit is even (request, advice,
    /// notification). Responses have an odd function digit.
    #[must_use]
    pub const fn is_request(self) -> bool {
        self.function().is_multiple_of(2)
    }

    /// Whether this is a repeat of an earlier transmission (odd origin digit: 0421, 0201, …).
    #[must_use]
    pub const fn is_repeat(self) -> bool {
        self.origin() % 2 == 1
    }

    /// The response to this request: the function digit plus one, the origin's repeat bit
    /// cleared (0200 → 0210, 0421 → 0430). `None` for a response.
    #[must_use]
    pub const fn response(self) -> Option<Self> {
        if !self.is_request() {
            return None;
        }
        Some(Self(self.0 - self.0 % 10 + 10 + (self.origin() & !1) as u16))
    }

    /// The same message as a repeat (0420 → 0421); a repeat stays as it is.
    #[must_use]
    pub const fn as_repeat(self) -> Self {
        if self.is_repeat() {
            self
        } else {
            Self(self.0 + 1)
        }
    }

    /// The same message without its repeat mark (0421 → 0420).
    #[must_use]
    pub const fn as_original(self) -> Self {
        if self.is_repeat() {
            Self(self.0 - 1)
        } else {
            self
        }
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(Mti::FINANCIAL_REQUEST.response(), Some(Mti::FINANCIAL_RESPONSE));
        assert_eq!(Mti::REVERSAL_ADVICE_REPEAT.response(), Some(Mti::REVERSAL_ADVICE_RESPONSE));
        assert_eq!(Mti::new(201).and_then(Mti::response), Mti::new(210));
        assert_eq!(Mti::new(820).and_then(Mti::response), Mti::new(830));
        assert_eq!(Mti::FINANCIAL_RESPONSE.response(), None);
        assert!(Mti::REVERSAL_ADVICE_REPEAT.is_repeat());
        assert!(!Mti::REVERSAL_ADVICE.is_repeat());
        assert_eq!(Mti::REVERSAL_ADVICE.as_repeat(), Mti::REVERSAL_ADVICE_REPEAT);
        assert_eq!(Mti::REVERSAL_ADVICE_REPEAT.as_original(), Mti::REVERSAL_ADVICE);
        assert_eq!(Mti::NETWORK_REQUEST.class(), 8);
        assert_eq!(
            Mti::new(1234).map(|m| (m.version(), m.class(), m.function(), m.origin())),
            Some((1, 2, 3, 4))
        );
        assert_eq!(Mti::new(10_000), None);
    }

    #[test]
    fn ascii() {
        assert_eq!(Mti::from_ascii(b"0200"), Some(Mti::FINANCIAL_REQUEST));
        assert_eq!(Mti::from_ascii(b"02x0"), None);
        assert_eq!(Mti::from_ascii(b"020"), None);
        assert_eq!(&Mti::REVERSAL_ADVICE.to_ascii(), b"0420");
        assert_eq!(Mti::NETWORK_REQUEST.to_string(), "0800");
    }
}

//! Currencies, conversion rates and their quotes: exact integer arithmetic, no float.
//!
//! - [`Currency`]: ISO 4217 as data (`proto-spec/currencies.csv`, embedded): the numeric code
//!   DE 49/50/51 carry and the minor units an amount is counted in (VND and JPY have none,
//!   KWD three).
//! - [`Rate`]: a conversion rate as DE 9 and DE 10 carry it (N8: the first digit is the
//!   number of decimals, the other seven the digits: `61234567` is 1.234567).
//! - [`convert`]: an amount in minor units of one currency to minor units of another at a
//!   rate. **One rounding rule** everywhere, half up: the exact result, and a remainder of
//!   half a minor unit or more rounds up (amounts are never negative). A rate derived from
//!   another (a markup added, a decimal written with more digits than N8 holds) is rounded
//!   to seven significant digits by the same rule.
//! - [`Quote`] and [`Rates`]: the rate table, per currency pair, each quote with an id, a
//!   validity window and a markup in basis points.

use std::{fmt, sync::OnceLock};

use rustc_hash::FxHashMap;

/// The ISO 4217 table this crate ships.
pub const CURRENCIES_CSV: &str = include_str!("../../../proto-spec/currencies.csv");

/// One currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    /// The alphabetic code, `VND`.
    pub alpha: [u8; 3],
    /// The numeric code, `704`, as DE 49 carries it.
    pub numeric: u16,
    /// The minor units: decimal places of the minor unit (0 to 4).
    pub exponent: u8,
}

impl Currency {
    /// The alphabetic code as text.
    #[must_use]
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.alpha).unwrap_or("???")
    }

    /// The numeric code as DE 49 writes it: three digits.
    #[must_use]
    pub fn numeric_text(&self) -> [u8; 3] {
        let n = self.numeric;
        [b'0' + (n / 100) as u8, b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

fn parse_csv(text: &str) -> Vec<Currency> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.starts_with("alpha,")) {
        let mut f = line.split(',');
        let (Some(a), Some(n), Some(m)) = (f.next(), f.next(), f.next()) else { continue };
        let (Ok(alpha), Ok(numeric), Ok(exponent)) =
            (<[u8; 3]>::try_from(a.as_bytes()), n.parse(), m.parse())
        else {
            continue;
        };
        out.push(Currency { alpha, numeric, exponent });
    }
    out
}

/// Every currency of the shipped table.
#[must_use]
pub fn currencies() -> &'static [Currency] {
    static TABLE: OnceLock<Vec<Currency>> = OnceLock::new();
    TABLE.get_or_init(|| parse_csv(CURRENCIES_CSV))
}

/// The currency with this numeric code (one lookup: admission reads DE 49 per request).
#[must_use]
pub fn by_numeric(n: u16) -> Option<Currency> {
    static INDEX: OnceLock<Vec<u8>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        // Position + 1 in the table by numeric code, 0 for none (fewer than 255 currencies).
        let mut ix = vec![0u8; 1000];
        for (i, c) in currencies().iter().enumerate().take(254) {
            if let Some(slot) = ix.get_mut(usize::from(c.numeric)) {
                *slot = u8::try_from(i + 1).unwrap_or(0);
            }
        }
        ix
    });
    let at = *index.get(usize::from(n))?;
    at.checked_sub(1).and_then(|i| currencies().get(usize::from(i))).copied()
}

/// The currency with this alphabetic (`VND`) or numeric (`704`) code.
#[must_use]
pub fn by_code(code: &str) -> Option<Currency> {
    if let Ok(n) = code.parse::<u16>() {
        return (code.len() == 3).then(|| by_numeric(n)).flatten();
    }
    currencies().iter().find(|c| c.alpha.eq_ignore_ascii_case(code.as_bytes())).copied()
}

/// The largest value of an N8 rate's seven digits.
const RATE_DIGITS_MAX: u32 = 9_999_999;

/// Most decimals an N8 rate has (its first digit).
const RATE_DECIMALS_MAX: u32 = 7;

/// The largest amount DE 4, 5 and 6 carry (12 digits).
pub const AMOUNT_MAX: u64 = 999_999_999_999;

/// A conversion rate: `digits` × 10^−`decimals`, as N8 carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    digits: u32,
    decimals: u8,
}

/// `n / d` rounded half up (`d` > 0).
const fn div_half_up(n: u128, d: u128) -> u128 {
    (n + d / 2) / d
}

impl Rate {
    /// The rate 1 (`00000001`).
    pub const ONE: Self = Self { digits: 1, decimals: 0 };

    /// The value `numerator` × 10^−`scale` rounded, by the one rule, to the most decimals
    /// (up to 7) that keep seven digits; `None` when it is zero at seven decimals or above
    /// 9,999,999.
    fn rounded(numerator: u128, scale: u32) -> Option<Self> {
        for decimals in (0..=RATE_DECIMALS_MAX).rev() {
            let v = if decimals >= scale {
                numerator.checked_mul(10u128.pow(decimals - scale))?
            } else {
                div_half_up(numerator, 10u128.pow(scale - decimals))
            };
            if v <= u128::from(RATE_DIGITS_MAX) {
                if v == 0 {
                    return None;
                }
                // Fewer decimals when the last ones are zeros: one rate, one text.
                let (mut digits, mut decimals) = (v as u32, decimals as u8);
                while decimals > 0 && digits % 10 == 0 {
                    digits /= 10;
                    decimals -= 1;
                }
                return Some(Self { digits, decimals });
            }
        }
        None
    }

    /// A rate written as a decimal (`0.0013700`, `25345.5`), rounded to seven significant
    /// digits by the one rule.
    ///
    /// # Errors
    ///
    /// Not a decimal number, zero, or too large for N8.
    pub fn from_decimal(text: &str) -> Result<Self, RateError> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let not_decimal = || RateError::NotDecimal { text: text.to_owned() };
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
            || int.len() + frac.len() > 30
        {
            return Err(not_decimal());
        }
        let n: u128 = format!("{int}{frac}").parse().map_err(|_| not_decimal())?;
        Self::rounded(n, frac.len() as u32).ok_or_else(|| RateError::OutOfRange { text: text.to_owned() })
    }

    /// The rate as DE 9/10 carry it; `None` for anything but eight digits with a first
    /// digit of at most 7. N8 is defined by value (SPEC §16.5): `70000530` and `60000053`
    /// are one rate, 0.000053, and compare equal — the decimals' trailing zeros are dropped,
    /// as [`Rate::n8`] writes it.
    #[must_use]
    pub fn from_n8(text: &[u8]) -> Option<Self> {
        if text.len() != 8 || !text.iter().all(u8::is_ascii_digit) || text[0] > b'7' {
            return None;
        }
        let (mut digits, mut decimals) =
            (text[1..].iter().fold(0u32, |v, &b| v * 10 + u32::from(b - b'0')), text[0] - b'0');
        while decimals > 0 && digits % 10 == 0 {
            digits /= 10;
            decimals -= 1;
        }
        Some(Self { digits, decimals })
    }

    /// The N8 text: the number of decimals, then seven digits.
    #[must_use]
    pub fn n8(&self) -> [u8; 8] {
        let mut out = [b'0'; 8];
        out[0] = b'0' + self.decimals;
        let mut d = self.digits;
        for o in out[1..].iter_mut().rev() {
            *o = b'0' + (d % 10) as u8;
            d /= 10;
        }
        out
    }

    /// This rate with a markup of `bps` basis points added (× (10,000 + bps) / 10,000),
    /// rounded by the one rule; `None` if it no longer fits N8.
    #[must_use]
    pub fn with_markup(&self, bps: u32) -> Option<Self> {
        Self::rounded(u128::from(self.digits) * u128::from(10_000 + bps), u32::from(self.decimals) + 4)
    }

    /// The rate as a decimal text (for people, logs and clearing files).
    #[must_use]
    pub fn decimal(&self) -> String {
        let d = usize::from(self.decimals);
        let s = format!("{:0>width$}", self.digits, width = d + 1);
        if d == 0 {
            s
        } else {
            format!("{}.{}", &s[..s.len() - d], &s[s.len() - d..])
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decimal())
    }
}

/// `amount` minor units of a currency with `from_exponent` minor units, converted at `rate`
/// to minor units of one with `to_exponent`, rounded half up; `None` above [`AMOUNT_MAX`].
#[must_use]
pub fn convert(amount: u64, from_exponent: u8, to_exponent: u8, rate: Rate) -> Option<u64> {
    // amount × digits × 10^to / 10^(decimals + from), exactly: below 10^12 × 10^7 × 10^4.
    let n = u128::from(amount) * u128::from(rate.digits) * 10u128.pow(u32::from(to_exponent));
    let d = 10u128.pow(u32::from(rate.decimals) + u32::from(from_exponent));
    u64::try_from(div_half_up(n, d)).ok().filter(|&v| v <= AMOUNT_MAX)
}

/// A decimal amount (`12.50`, `120000`) in minor units of a currency with `exponent` minor
/// units; `None` for more decimals than it has, or not a number.
#[must_use]
pub fn minor_units(text: &str, exponent: u8) -> Option<u64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() || frac.len() > usize::from(exponent) || int.len() + usize::from(exponent) > 12 {
        return None;
    }
    let mut v: u64 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    // The decimals not written are zeros.
    let v = v.checked_mul(10u64.pow(u32::from(exponent) - frac.len() as u32))?;
    (v <= AMOUNT_MAX).then_some(v)
}

/// An amount in minor units written as a decimal in its currency (`1250`, USD → `12.50`).
#[must_use]
pub fn decimal_amount(minor: u64, exponent: u8) -> String {
    let e = usize::from(exponent);
    if e == 0 {
        return minor.to_string();
    }
    let s = format!("{minor:0>width$}", width = e + 1);
    format!("{}.{}", &s[..s.len() - e], &s[s.len() - e..])
}

/// One quote of the rate table: `from` → `to` at `rate` (the mid rate: what settlement
/// between networks uses), with `markup_bps` added for the cardholder billing rate (DE 10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Its id, as an originator names it in DE 125 ([`crate::qr`]).
    pub id: Box<str>,
    /// The currency converted from (the transaction's).
    pub from: Currency,
    /// The currency converted to.
    pub to: Currency,
    /// The mid rate.
    pub rate: Rate,
    /// The markup for the billing rate, in basis points (0.01%).
    pub markup_bps: u32,
    /// Valid from this time (inclusive), milliseconds since the Unix epoch.
    pub valid_from_ms: u64,
    /// Valid until this time (exclusive).
    pub valid_to_ms: u64,
}

impl Quote {
    /// Whether it is valid at `unix_ms`.
    #[must_use]
    pub fn valid_at(&self, unix_ms: u64) -> bool {
        (self.valid_from_ms..self.valid_to_ms).contains(&unix_ms)
    }

    /// The cardholder billing rate: the mid rate with the markup.
    #[must_use]
    pub fn billing_rate(&self) -> Rate {
        // Checked to fit when the table was built.
        self.rate.with_markup(self.markup_bps).unwrap_or(self.rate)
    }
}

/// The rate table: quotes by currency pair and by id. Immutable; a reload replaces it.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    quotes: Vec<Quote>,
    by_pair: FxHashMap<(u16, u16), Vec<usize>>,
    by_id: FxHashMap<Box<str>, usize>,
}

/// Why a rate's text is not a rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateError {
    /// Not a decimal number (`0.0013700`).
    NotDecimal {
        /// The text.
        text: String,
    },
    /// Zero, or outside what N8 can carry.
    OutOfRange {
        /// The text.
        text: String,
    },
}

impl std::fmt::Display for RateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotDecimal { text } => write!(f, "rate {text:?}: a decimal number such as 0.0013700"),
            Self::OutOfRange { text } => {
                write!(f, "rate {text:?}: must be above 0.00000005 and below 9999999.5 (N8)")
            }
        }
    }
}

impl std::error::Error for RateError {}

/// Why a table of quotes cannot be used, naming the quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RatesError {
    /// It converts a currency into itself.
    OneCurrency {
        /// The quote's id.
        quote: String,
        /// The currency.
        currency: String,
    },
    /// Its validity window is empty.
    EmptyWindow {
        /// The quote's id.
        quote: String,
    },
    /// Its rate with the markup does not fit N8.
    MarkupOutOfN8 {
        /// The quote's id.
        quote: String,
    },
    /// Two quotes have its id.
    IdTwice {
        /// The quote's id.
        quote: String,
    },
}

impl std::fmt::Display for RatesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OneCurrency { quote, currency } => {
                write!(f, "quote {quote}: from and to are both {currency}")
            }
            Self::EmptyWindow { quote } => write!(f, "quote {quote}: valid_to must be after valid_from"),
            Self::MarkupOutOfN8 { quote } => {
                write!(f, "quote {quote}: the rate with its markup does not fit N8")
            }
            Self::IdTwice { quote } => write!(f, "quote {quote}: the id is used twice"),
        }
    }
}

impl std::error::Error for RatesError {}

impl Rates {
    /// A table of `quotes`.
    ///
    /// # Errors
    ///
    /// Two quotes with one id, a pair of one currency, an empty validity window, or a markup
    /// that takes the rate out of N8.
    pub fn new(quotes: Vec<Quote>) -> Result<Self, RatesError> {
        let mut t = Self::default();
        for (i, q) in quotes.iter().enumerate() {
            let quote = || q.id.to_string();
            if q.from == q.to {
                return Err(RatesError::OneCurrency { quote: quote(), currency: q.from.to_string() });
            }
            if q.valid_to_ms <= q.valid_from_ms {
                return Err(RatesError::EmptyWindow { quote: quote() });
            }
            if q.rate.with_markup(q.markup_bps).is_none() {
                return Err(RatesError::MarkupOutOfN8 { quote: quote() });
            }
            if t.by_id.insert(q.id.clone(), i).is_some() {
                return Err(RatesError::IdTwice { quote: quote() });
            }
            t.by_pair.entry((q.from.numeric, q.to.numeric)).or_default().push(i);
        }
        t.quotes = quotes;
        Ok(t)
    }

    /// Every quote, in the order given.
    #[must_use]
    pub fn quotes(&self) -> &[Quote] {
        &self.quotes
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.quotes.is_empty()
    }

    /// The quote in force for `from` → `to` at `unix_ms`: of those valid then, the one
    /// valid from the latest time (a new quote takes over from the one before).
    #[must_use]
    pub fn current(&self, from: u16, to: u16, unix_ms: u64) -> Option<&Quote> {
        self.by_pair
            .get(&(from, to))?
            .iter()
            .map(|&i| &self.quotes[i])
            .filter(|q| q.valid_at(unix_ms))
            .max_by_key(|q| q.valid_from_ms)
    }

    /// The quote with `id`.
    #[must_use]
    pub fn by_id(&self, id: &str) -> Option<&Quote> {
        self.by_id.get(id).map(|&i| &self.quotes[i])
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cur(code: &str) -> Currency {
        by_code(code).unwrap()
    }

    #[test]
    fn the_table_has_the_exponents_that_matter() {
        assert_eq!(cur("VND").exponent, 0);
        assert_eq!(cur("JPY").exponent, 0);
        assert_eq!(cur("KWD").exponent, 3);
        assert_eq!(cur("USD").exponent, 2);
        assert_eq!(cur("704"), cur("vnd"));
        assert_eq!(&cur("THB").numeric_text(), b"764");
        assert_eq!(&cur("ALL").numeric_text(), b"008");
        assert!(by_code("XXX").is_none() && by_code("04").is_none());
        let mut seen = std::collections::HashSet::new();
        assert!(currencies().len() > 150);
        assert!(currencies().iter().all(|c| seen.insert(c.numeric) && c.exponent <= 4));
    }

    #[test]
    fn rates_read_and_write_n8_and_decimals() {
        let r = Rate::from_decimal("0.0013700").unwrap();
        assert_eq!(&r.n8(), b"50000137");
        assert_eq!(r.decimal(), "0.00137");
        assert_eq!(Rate::from_n8(b"50000137"), Some(r));
        assert_eq!(Rate::from_decimal("25345.5").unwrap().n8(), *b"10253455");
        // More digits than N8 holds: seven significant, rounded half up.
        assert_eq!(Rate::from_decimal("1.23456785").unwrap().decimal(), "1.234568");
        assert_eq!(Rate::from_decimal("1.23456784").unwrap().decimal(), "1.234568");
        assert_eq!(Rate::from_decimal("1.23456749").unwrap().decimal(), "1.234567");
        assert_eq!(Rate::from_decimal("1").unwrap(), Rate::ONE);
        for bad in ["", ".", "0", "0.00000004", "10000000", "1,5", "-1", "1e5"] {
            assert!(Rate::from_decimal(bad).is_err(), "{bad}");
        }
        // By value: the decimals' trailing zeros make no other rate.
        assert_eq!(Rate::from_n8(b"70000530"), Rate::from_n8(b"60000053"));
        assert_eq!(Rate::from_n8(b"70000530").map(|r| r.n8()), Some(*b"60000053"));
        assert_eq!(Rate::from_n8(b"10000010"), Rate::from_n8(b"00000001"));
        assert_ne!(Rate::from_n8(b"70000531"), Rate::from_n8(b"60000053"));
        assert_eq!(Rate::from_n8(b"81234567"), None);
        assert_eq!(Rate::from_n8(b"7123456"), None);
    }

    #[test]
    fn conversion_is_exact_and_rounds_half_up() {
        // 250,000 VND at 0.00137 THB/VND = 342.50 THB exactly: 34,250 satang.
        let r = Rate::from_decimal("0.00137").unwrap();
        assert_eq!(convert(250_000, 0, 2, r), Some(34_250));
        // 1 VND → 0.137 satang: rounds to 0; 4 VND → 0.548 → 1.
        assert_eq!(convert(1, 0, 2, r), Some(0));
        assert_eq!(convert(4, 0, 2, r), Some(1));
        // Exactly half rounds up: 1.5 → 2.
        assert_eq!(convert(3, 2, 2, Rate::from_decimal("0.5").unwrap()), Some(2));
        // Into three minor units (KWD) and none (JPY).
        assert_eq!(convert(10_000, 2, 3, Rate::from_decimal("0.30712").unwrap()), Some(30_712));
        assert_eq!(convert(100, 2, 0, Rate::from_decimal("151.23").unwrap()), Some(151));
        assert_eq!(convert(AMOUNT_MAX, 0, 2, Rate::from_decimal("2").unwrap()), None);
    }

    #[test]
    fn a_markup_raises_the_rate_by_basis_points() {
        let r = Rate::from_decimal("0.00137").unwrap();
        assert_eq!(r.with_markup(0), Some(r));
        // × 1.005 = 0.00137685
        assert_eq!(r.with_markup(50).unwrap().decimal(), "0.0013769");
        assert_eq!(Rate::from_decimal("2").unwrap().with_markup(150).unwrap().decimal(), "2.03");
    }

    #[test]
    fn amounts_in_decimal_text_follow_the_currency() {
        assert_eq!(minor_units("12.50", 2), Some(1250));
        assert_eq!(minor_units("12.5", 2), Some(1250));
        assert_eq!(minor_units("120000", 0), Some(120_000));
        assert_eq!(minor_units("12.5", 0), None);
        assert_eq!(minor_units("1.2345", 3), None);
        assert_eq!(minor_units("", 2), None);
        assert_eq!(minor_units("9999999999.99", 2), Some(999_999_999_999));
        assert_eq!(minor_units("10000000000.00", 2), None, "13 digits");
        assert_eq!(minor_units("1x.00", 2), None);
        assert_eq!(decimal_amount(1250, 2), "12.50");
        assert_eq!(decimal_amount(5, 3), "0.005");
        assert_eq!(decimal_amount(120_000, 0), "120000");
    }

    fn quote(id: &str, from: u64, to: u64) -> Quote {
        Quote {
            id: id.into(),
            from: cur("VND"),
            to: cur("THB"),
            rate: Rate::from_decimal("0.00137").unwrap(),
            markup_bps: 50,
            valid_from_ms: from,
            valid_to_ms: to,
        }
    }

    #[test]
    fn the_quote_in_force_is_the_latest_valid_one() {
        let t = Rates::new(vec![quote("a", 0, 2000), quote("b", 1000, 3000)]).unwrap();
        assert_eq!(t.current(704, 764, 500).unwrap().id.as_ref(), "a");
        assert_eq!(t.current(704, 764, 1500).unwrap().id.as_ref(), "b");
        assert_eq!(t.current(704, 764, 2500).unwrap().id.as_ref(), "b");
        assert!(t.current(704, 764, 3000).is_none());
        assert!(t.current(764, 704, 1500).is_none(), "a pair is one direction");
        assert!(t.by_id("a").is_some_and(|q| !q.valid_at(2000)));
        assert_eq!(
            Rates::new(vec![quote("a", 0, 1), quote("a", 1, 2)]).unwrap_err(),
            RatesError::IdTwice { quote: "a".into() }
        );
        assert_eq!(
            Rates::new(vec![quote("a", 5, 5)]).unwrap_err(),
            RatesError::EmptyWindow { quote: "a".into() }
        );
    }

    proptest! {
        /// The conversion equals the exact rational result rounded half up, computed
        /// independently: floor((2·n + d) / 2d) over big enough integers.
        #[test]
        fn conversion_matches_the_exact_rational_result(
            amount in 0u64..=AMOUNT_MAX,
            digits in 1u32..=RATE_DIGITS_MAX,
            decimals in 0u8..=7,
            from in 0u8..=4,
            to in 0u8..=4,
        ) {
            let rate = Rate { digits, decimals };
            let n = u128::from(amount) * u128::from(digits) * 10u128.pow(u32::from(to));
            let d = 10u128.pow(u32::from(decimals) + u32::from(from));
            let exact = (2 * n + d) / (2 * d);
            let got = convert(amount, from, to, rate);
            if exact <= u128::from(AMOUNT_MAX) {
                prop_assert_eq!(got, Some(exact as u64));
                // Never off by more than half a minor unit: |got·d − n| ≤ d/2.
                let g = u128::from(got.unwrap()) * d;
                prop_assert!(g.abs_diff(n) * 2 <= d);
            } else {
                prop_assert_eq!(got, None);
            }
        }

        /// N8 text and decimal text agree with each other and with the rate.
        #[test]
        fn n8_and_decimal_round_trip(digits in 1u32..=RATE_DIGITS_MAX, decimals in 0u8..=7) {
            let r = Rate::rounded(u128::from(digits), u32::from(decimals)).unwrap();
            prop_assert_eq!(Rate::from_n8(&r.n8()), Some(r));
            prop_assert_eq!(Rate::from_decimal(&r.decimal()), Ok(r));
        }

        /// A markup never lowers a rate, and zero basis points change nothing.
        #[test]
        fn markups_only_raise(digits in 1u32..=999_999, decimals in 0u8..=7, bps in 0u32..=2000) {
            let r = Rate::rounded(u128::from(digits), u32::from(decimals)).unwrap();
            let m = r.with_markup(bps).unwrap();
            let (a, b) = (u128::from(r.digits) * 10u128.pow(7 - u32::from(r.decimals)), u128::from(m.digits) * 10u128.pow(7 - u32::from(m.decimals)));
            prop_assert!(b >= a);
            prop_assert_eq!(r.with_markup(0), Some(r));
        }
    }
}

//! Merchant-presented EMV QR payloads (EMVCo QRCPS-MPM 1.1).
//!
//! A payload is a run of data objects, each an ID (two digits), a length (two digits, the
//! value's length in *characters*: a merchant name in Chinese or Khmer has fewer characters
//! than UTF-8 bytes) and the value. IDs 26–51 (merchant account information), 62
//! (additional data), 64 (merchant information in another language) and 80–99 are
//! templates: their value is objects again, one level deep. The unreserved templates 80–99
//! belong to whoever wrote them, and some hold a plain value (a TrueMoney code's message in
//! 81): one whose value is not a run of objects is kept as a primitive, not refused. ID 00 (payload format
//! indicator, `01` — or `02`, as one national scheme writes it) comes first, ID 63 (the
//! CRC) last, and no ID twice at one level. IDs 52 (merchant category code), 53 (currency),
//! 58 (country), 59 (merchant name) and 60 (city) and at least one merchant account (02–51)
//! must be there. The CRC is CRC-16/CCITT-FALSE over the UTF-8 bytes up to and including
//! `6304`, four hexadecimal digits, compared case-insensitively (lowercase ones occur in the
//! wild) and written uppercase.
//!
//! Every error names the ID and the character offset it concerns; nothing panics on any
//! input (a fuzz target and property tests check it).

use std::fmt;

use crate::{
    crc::{crc16_ccitt_false, hex4},
    limits::{DEPTH_MAX, OBJECTS_MAX, PAYLOAD_CHARS_MAX},
};

/// One data object: its ID, value, where it starts, and (a template) what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataObject<'a> {
    /// The ID, 0–99.
    pub id: u8,
    /// The value, as written.
    pub value: &'a str,
    /// The character offset of its ID in the payload.
    pub offset: usize,
    /// A template's objects (empty for a primitive).
    pub children: Vec<DataObject<'a>>,
}

impl DataObject<'_> {
    /// The child with `id`, in a template.
    #[must_use]
    pub fn child(&self, id: u8) -> Option<&DataObject<'_>> {
        self.children.iter().find(|c| c.id == id)
    }
}

/// A checked payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The objects, in order.
    pub objects: Vec<DataObject<'a>>,
    /// The CRC as it was written (four hex digits, any case).
    pub crc: &'a str,
}

impl<'a> Payload<'a> {
    /// The object with `id`.
    #[must_use]
    pub fn get(&self, id: u8) -> Option<&DataObject<'a>> {
        self.objects.iter().find(|o| o.id == id)
    }

    fn value(&self, id: u8) -> Option<&'a str> {
        self.get(id).map(|o| o.value)
    }

    /// ID 00.
    #[must_use]
    pub fn format_indicator(&self) -> Option<&'a str> {
        self.value(0)
    }

    /// ID 01: `11` static, `12` dynamic (with an amount for one payment).
    #[must_use]
    pub fn initiation(&self) -> Option<&'a str> {
        self.value(1)
    }

    /// The merchant account information objects (IDs 02–51), in order.
    pub fn merchant_accounts(&self) -> impl Iterator<Item = &DataObject<'a>> {
        self.objects.iter().filter(|o| (2..=51).contains(&o.id))
    }

    /// ID 52, the merchant category code.
    #[must_use]
    pub fn mcc(&self) -> Option<&'a str> {
        self.value(52)
    }

    /// ID 53, the transaction currency (ISO 4217 numeric).
    #[must_use]
    pub fn currency(&self) -> Option<&'a str> {
        self.value(53)
    }

    /// ID 54, the transaction amount, when the code carries one.
    #[must_use]
    pub fn amount(&self) -> Option<&'a str> {
        self.value(54)
    }

    /// ID 58, the merchant's country (ISO 3166-1 alpha-2).
    #[must_use]
    pub fn country(&self) -> Option<&'a str> {
        self.value(58)
    }

    /// ID 59, the merchant's name.
    #[must_use]
    pub fn merchant_name(&self) -> Option<&'a str> {
        self.value(59)
    }

    /// ID 60, the merchant's city.
    #[must_use]
    pub fn city(&self) -> Option<&'a str> {
        self.value(60)
    }

    /// Checks the mandatory objects are there (52, 53, 58, 59, 60 and a merchant account),
    /// but for the IDs in `excused`.
    ///
    /// # Errors
    ///
    /// [`MpmError::Missing`] with the first missing ID, or [`MpmError::NoMerchantAccount`].
    pub fn check_mandatory(&self, excused: &[u8]) -> Result<(), MpmError> {
        if let Some(id) = MANDATORY.into_iter().find(|id| !excused.contains(id) && self.get(*id).is_none()) {
            return Err(MpmError::Missing { id });
        }
        if self.merchant_accounts().next().is_none() {
            return Err(MpmError::NoMerchantAccount);
        }
        Ok(())
    }
}

/// Why a payload is not a valid merchant-presented QR code. Offsets count characters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MpmError {
    /// No characters.
    Empty,
    /// Longer than [`PAYLOAD_CHARS_MAX`].
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// Where an ID was due: not two digits.
    NotAnId {
        /// Where.
        offset: usize,
    },
    /// An ID's length is not two digits.
    BadLength {
        /// The ID.
        id: u8,
        /// Where the ID starts.
        offset: usize,
    },
    /// An ID declares more characters than remain.
    Truncated {
        /// The ID.
        id: u8,
        /// Where the ID starts.
        offset: usize,
        /// Characters declared.
        declared: usize,
        /// Characters left.
        left: usize,
    },
    /// An ID appears twice at one level.
    Duplicate {
        /// The ID.
        id: u8,
        /// Where the second starts.
        offset: usize,
    },
    /// More than [`OBJECTS_MAX`] objects at one level.
    TooManyObjects,
    /// ID 00 is not the first object.
    FormatIndicatorNotFirst {
        /// Where the first object starts.
        offset: usize,
    },
    /// ID 00 is neither `01` nor `02`.
    BadFormatIndicator {
        /// What it holds.
        value: String,
    },
    /// ID 63 is not the last object, or is not four characters.
    CrcNotLast {
        /// Where ID 63 starts.
        offset: usize,
    },
    /// A mandatory ID is missing (52, 53, 58, 59, 60, 63).
    Missing {
        /// The ID.
        id: u8,
    },
    /// No merchant account information (IDs 02–51).
    NoMerchantAccount,
    /// The CRC does not match.
    BadCrc {
        /// What the payload's bytes give.
        computed: String,
        /// What ID 63 says.
        written: String,
    },
    /// A template's value is not a run of objects.
    BadTemplate {
        /// The template's ID.
        id: u8,
        /// What is wrong inside it (offsets in the whole payload).
        inner: Box<MpmError>,
    },
}

impl fmt::Display for MpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "an empty payload"),
            Self::TooLong { chars } => write!(f, "{chars} characters: more than {PAYLOAD_CHARS_MAX}"),
            Self::NotAnId { offset } => write!(f, "at character {offset}: expected a two-digit ID"),
            Self::BadLength { id, offset } => {
                write!(f, "ID {id:02} at character {offset}: expected a two-digit length")
            }
            Self::Truncated { id, offset, declared, left } => {
                write!(f, "ID {id:02} at character {offset}: declares {declared} characters, {left} left")
            }
            Self::Duplicate { id, offset } => write!(f, "ID {id:02} at character {offset}: appears twice"),
            Self::TooManyObjects => write!(f, "more than {OBJECTS_MAX} objects at one level"),
            Self::FormatIndicatorNotFirst { offset } => {
                write!(f, "at character {offset}: ID 00 (payload format indicator) must come first")
            }
            Self::BadFormatIndicator { value } => {
                write!(f, "ID 00: payload format indicator {value:?}, expected \"01\" (or \"02\")")
            }
            Self::CrcNotLast { offset } => {
                write!(f, "ID 63 at character {offset}: the CRC must be the last object, four characters")
            }
            Self::Missing { id } => write!(f, "ID {id:02} is mandatory and missing"),
            Self::NoMerchantAccount => write!(f, "no merchant account information (IDs 02-51)"),
            Self::BadCrc { computed, written } => {
                write!(f, "ID 63: CRC {written}, the payload gives {computed}")
            }
            Self::BadTemplate { id, inner } => write!(f, "template ID {id:02}: {inner}"),
        }
    }
}

impl std::error::Error for MpmError {}

/// Whether `id` is a template (its value holds objects).
#[must_use]
pub const fn is_template(id: u8) -> bool {
    matches!(id, 26..=51 | 62 | 64 | 80..=99)
}

/// Whether `id` is an unreserved template (80–99), whose content its writer defines.
const fn is_unreserved(id: u8) -> bool {
    matches!(id, 80..=99)
}

/// Two ASCII digits at the start of `s`, as a number.
fn two_digits(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    match (b.first(), b.get(1)) {
        (Some(a @ b'0'..=b'9'), Some(c @ b'0'..=b'9')) => Some((a - b'0') * 10 + (c - b'0')),
        _ => None,
    }
}

/// The byte length of the first `n` characters of `s`, if it has that many; `ascii` says
/// `s` is ASCII (one byte a character), which most payloads are.
fn chars_bytes(s: &str, n: usize, ascii: bool) -> Option<usize> {
    if ascii {
        return (n <= s.len()).then_some(n);
    }
    if n == 0 {
        return Some(0);
    }
    match s.char_indices().nth(n) {
        Some((at, _)) => Some(at),
        None => (s.chars().count() == n).then_some(s.len()),
    }
}

/// The objects of `s` (one level), `base` its character offset in the payload, `depth` the
/// templates it is inside, `ascii` whether the payload is ASCII.
fn objects(s: &str, base: usize, depth: usize, ascii: bool) -> Result<Vec<DataObject<'_>>, MpmError> {
    // A payload has a dozen or two objects at the root, a template a handful.
    let mut out: Vec<DataObject<'_>> = Vec::with_capacity(if depth == 0 { 24 } else { 6 });
    let (mut rest, mut at) = (s, base);
    while !rest.is_empty() {
        if out.len() >= OBJECTS_MAX {
            return Err(MpmError::TooManyObjects);
        }
        // Built only on the error path: an error made eagerly and dropped costs every object
        // a drop of an enum with owned variants (callgrind: ~600 instructions a payment).
        #[allow(clippy::unnecessary_lazy_evaluations, reason = "dropping an unused MpmError is not free")]
        let id = two_digits(rest).ok_or_else(|| MpmError::NotAnId { offset: at })?;
        #[allow(clippy::unnecessary_lazy_evaluations, reason = "dropping an unused MpmError is not free")]
        let declared =
            rest.get(2..).and_then(two_digits).ok_or_else(|| MpmError::BadLength { id, offset: at })?;
        let declared = usize::from(declared);
        // ID and length are four ASCII characters: four bytes.
        let tail = &rest[4..];
        let Some(len) = chars_bytes(tail, declared, ascii) else {
            return Err(MpmError::Truncated { id, offset: at, declared, left: tail.chars().count() });
        };
        let value = &tail[..len];
        if out.iter().any(|o| o.id == id) {
            return Err(MpmError::Duplicate { id, offset: at });
        }
        let children = if is_template(id) && depth < DEPTH_MAX {
            match objects(value, at + 4, depth + 1, ascii) {
                Ok(children) => children,
                Err(_) if is_unreserved(id) => Vec::new(),
                Err(e) => return Err(MpmError::BadTemplate { id, inner: Box::new(e) }),
            }
        } else {
            Vec::new()
        };
        out.push(DataObject { id, value, offset: at, children });
        rest = &tail[len..];
        at += 4 + declared;
    }
    Ok(out)
}

/// The value of the object `id` in `s`, a run of ID-length-value objects (a template's
/// value, or a sub-template inside one), without building the whole list: `None` when `s`
/// is not a run of objects or has no `id`.
#[must_use]
pub fn find(s: &str, id: u8) -> Option<&str> {
    let ascii = s.is_ascii();
    let mut rest = s;
    for _ in 0..OBJECTS_MAX {
        if rest.is_empty() {
            return None;
        }
        let here = two_digits(rest)?;
        let declared = usize::from(rest.get(2..).and_then(two_digits)?);
        let tail = &rest[4..];
        let len = chars_bytes(tail, declared, ascii)?;
        if here == id {
            return Some(&tail[..len]);
        }
        rest = &tail[len..];
    }
    None
}

/// The mandatory primitives besides ID 00 and the CRC.
const MANDATORY: [u8; 5] = [52, 53, 58, 59, 60];

/// Parses and checks a merchant-presented payload: the structure, the order rules, the CRC
/// and the mandatory objects.
///
/// # Errors
///
/// See [`MpmError`]: the first rule broken, with the ID and character offset.
pub fn decode(text: &str) -> Result<Payload<'_>, MpmError> {
    let payload = parse(text)?;
    payload.check_mandatory(&[])?;
    Ok(payload)
}

/// Parses a payload and checks everything [`decode`] does but the presence of the mandatory
/// objects, which some national schemes leave out (VietQR transfer codes carry no MCC,
/// merchant name or city): [`Payload::check_mandatory`] checks them, excusing what the
/// scheme found in the payload allows ([`crate::Registry::decode`]).
///
/// # Errors
///
/// See [`MpmError`]; never [`MpmError::Missing`] but for ID 63, never
/// [`MpmError::NoMerchantAccount`].
pub fn parse(text: &str) -> Result<Payload<'_>, MpmError> {
    if text.is_empty() {
        return Err(MpmError::Empty);
    }
    let ascii = text.is_ascii();
    let chars = if ascii { text.len() } else { text.chars().count() };
    if chars > PAYLOAD_CHARS_MAX {
        return Err(MpmError::TooLong { chars });
    }
    let objects = objects(text, 0, 0, ascii)?;
    let first = &objects[0];
    if first.id != 0 {
        return Err(MpmError::FormatIndicatorNotFirst { offset: first.offset });
    }
    if !matches!(first.value, "01" | "02") {
        return Err(MpmError::BadFormatIndicator { value: first.value.to_owned() });
    }
    let Some(crc_at) = objects.iter().position(|o| o.id == 63) else {
        return Err(MpmError::Missing { id: 63 });
    };
    let crc = &objects[crc_at];
    if crc_at + 1 != objects.len()
        || crc.value.len() != 4
        || !crc.value.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(MpmError::CrcNotLast { offset: crc.offset });
    }
    // The CRC covers everything before its value: the bytes up to and including "6304".
    let covered = &text.as_bytes()[..text.len() - 4];
    let computed = hex4(crc16_ccitt_false(covered));
    if !computed.eq_ignore_ascii_case(crc.value.as_bytes()) {
        return Err(MpmError::BadCrc {
            computed: String::from_utf8_lossy(&computed).into_owned(),
            written: crc.value.to_owned(),
        });
    }
    let crc = crc.value;
    Ok(Payload { objects, crc })
}

/// Writes a payload from `(id, value)` objects (templates' values written by the caller,
/// e.g. with this function's `nested` output), ending with its CRC (uppercase): for tests,
/// simulators and `corridor qr encode`.
///
/// # Errors
///
/// A value longer than 99 characters, or an ID above 99.
pub fn encode(objects: &[(u8, &str)]) -> Result<String, String> {
    let mut out = nested(objects)?;
    out.push_str("6304");
    let crc = hex4(crc16_ccitt_false(out.as_bytes()));
    out.push_str(std::str::from_utf8(&crc).unwrap_or("0000"));
    Ok(out)
}

/// A template's value from `(id, value)` objects.
///
/// # Errors
///
/// A value longer than 99 characters, or an ID above 99.
pub fn nested(objects: &[(u8, &str)]) -> Result<String, String> {
    let mut out = String::new();
    for (id, value) in objects {
        let n = value.chars().count();
        if *id > 99 || n > 99 {
            return Err(format!("ID {id}: a value of {n} characters (at most 99), an ID of at most 99"));
        }
        out.push_str(&format!("{id:02}{n:02}{value}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let account = nested(&[(0, "A000000727"), (1, "0006970436011000000123"), (2, "QRIBFTTA")]).unwrap();
        encode(&[
            (0, "01"),
            (1, "12"),
            (38, &account),
            (52, "5812"),
            (53, "704"),
            (54, "150000"),
            (58, "VN"),
            (59, "PHO HOA"),
            (60, "HA NOI"),
        ])
        .unwrap()
    }

    #[test]
    fn a_payload_round_trips_with_its_templates_and_crc() {
        let text = sample();
        let p = decode(&text).unwrap();
        assert_eq!(p.format_indicator(), Some("01"));
        assert_eq!((p.currency(), p.amount(), p.country()), (Some("704"), Some("150000"), Some("VN")));
        let acct = p.get(38).unwrap();
        assert_eq!(acct.child(0).map(|c| c.value), Some("A000000727"));
        assert_eq!(acct.child(1).unwrap().offset, p.get(38).unwrap().offset + 4 + 14);
        assert_eq!(p.merchant_accounts().count(), 1);
        assert_eq!(p.crc.len(), 4);
    }

    #[test]
    fn lengths_count_characters_and_the_crc_covers_utf8_bytes() {
        // A merchant name in Chinese: 4 characters, 12 UTF-8 bytes.
        let account = nested(&[(0, "A000000333"), (1, "12345678")]).unwrap();
        let text = encode(&[
            (0, "01"),
            (15, "6201234500000001"),
            (26, &account),
            (52, "5411"),
            (53, "156"),
            (58, "CN"),
            (59, "北京饭店"),
            (60, "北京"),
        ])
        .unwrap();
        assert!(text.contains("5904北京饭店"));
        let p = decode(&text).unwrap();
        assert_eq!(p.merchant_name(), Some("北京饭店"));
        assert_eq!(p.city(), Some("北京"));
    }

    #[test]
    fn a_lowercase_crc_is_accepted_and_a_wrong_one_named() {
        let text = sample();
        let lower = format!("{}{}", &text[..text.len() - 4], text[text.len() - 4..].to_lowercase());
        assert!(decode(&lower).is_ok());
        let mut wrong = text.clone();
        wrong.replace_range(text.len() - 4.., "0000");
        assert!(matches!(decode(&wrong), Err(MpmError::BadCrc { .. })), "{:?}", decode(&wrong));
    }

    #[test]
    fn order_presence_and_shape_are_checked_with_the_place_named() {
        let good = sample();
        // ID 00 not first.
        let e = decode(&encode(&[(1, "12"), (0, "01")]).unwrap()).unwrap_err();
        assert_eq!(e, MpmError::FormatIndicatorNotFirst { offset: 0 });
        // A duplicate, named with its offset.
        let e = decode(&encode(&[(0, "01"), (52, "5812"), (52, "5812")]).unwrap()).unwrap_err();
        assert_eq!(e, MpmError::Duplicate { id: 52, offset: 14 });
        // Missing merchant name.
        let without = good.replace("5907PHO HOA", "");
        let fixed = format!("{}6304", &without[..without.len() - 8]);
        let fixed =
            format!("{fixed}{}", std::str::from_utf8(&hex4(crc16_ccitt_false(fixed.as_bytes()))).unwrap());
        assert_eq!(decode(&fixed).unwrap_err(), MpmError::Missing { id: 59 });
        // Truncated.
        assert!(matches!(decode("000201529"), Err(MpmError::BadLength { id: 52, offset: 6 })));
        assert!(matches!(
            decode("0002015204581"),
            Err(MpmError::Truncated { id: 52, offset: 6, declared: 4, left: 3 })
        ));
        // Not an ID.
        assert_eq!(decode("0002010A"), Err(MpmError::NotAnId { offset: 6 }));
        // A broken template names itself and the place inside.
        let e = decode("00020138050009X").unwrap_err();
        assert!(
            matches!(&e, MpmError::BadTemplate { id: 38, inner } if **inner == MpmError::Truncated { id: 0, offset: 10, declared: 9, left: 1 }),
            "{e:?}"
        );
        assert!(e.to_string().contains("template ID 38"), "{e}");
        // Format indicator 03 is not a version anyone writes.
        assert!(matches!(decode(&encode(&[(0, "03")]).unwrap()), Err(MpmError::BadFormatIndicator { .. })));
        assert_eq!(decode(""), Err(MpmError::Empty));
    }

    /// The example payload EMVCo's QRCPS-MPM specification publishes: templates 29, 31
    /// (UnionPay's), 62 and 91, a language template 64 in Chinese, and its CRC A13A.
    const EMVCO_EXAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";

    #[test]
    fn the_specifications_own_example_decodes() {
        let p = decode(EMVCO_EXAMPLE).unwrap();
        assert_eq!(p.crc, "A13A");
        assert_eq!(
            (p.merchant_name(), p.city(), p.country()),
            (Some("BEST TRANSPORT"), Some("BEIJING"), Some("CN"))
        );
        assert_eq!((p.mcc(), p.currency(), p.amount()), (Some("4111"), Some("156"), Some("23.72")));
        let lang = p.get(64).unwrap();
        assert_eq!(lang.child(1).map(|c| c.value), Some("最佳运输"));
        assert_eq!(lang.child(2).map(|c| c.value), Some("北京"));
        assert_eq!(p.get(29).and_then(|t| t.child(0)).map(|c| c.value), Some("D15600000000"));
        assert_eq!(p.merchant_accounts().map(|a| a.id).collect::<Vec<_>>(), [29, 31]);
        assert_eq!(p.get(62).and_then(|t| t.child(7)).map(|c| c.value), Some("A6008667"));
    }

    /// An unreserved template (80–99) belongs to its writer: a TrueMoney code holds a plain
    /// hex string in 81. A merchant account template (26–51) or 62 must still hold objects.
    #[test]
    fn an_unreserved_template_may_hold_a_plain_value_and_no_other_template_may() {
        let account = nested(&[(0, "A000000677010111"), (3, "140000801111111")]).unwrap();
        let plain = "00480065006C006C006F";
        let text = encode(&[(0, "01"), (29, &account), (53, "764"), (58, "TH"), (81, plain)]).unwrap();
        let p = parse(&text).unwrap();
        let obj = p.get(81).unwrap();
        assert_eq!((obj.value, obj.children.len()), (plain, 0));
        let nested_ok = nested(&[(0, "ABC")]).unwrap();
        let text = encode(&[(0, "01"), (29, &account), (81, &nested_ok)]).unwrap();
        assert_eq!(parse(&text).unwrap().get(81).unwrap().child(0).map(|c| c.value), Some("ABC"));
        for id in [26, 62] {
            let text = encode(&[(0, "01"), (29, &account), (id, plain)]).unwrap();
            assert!(matches!(parse(&text), Err(MpmError::BadTemplate { id: i, .. }) if i == id), "{id}");
        }
    }

    #[test]
    fn a_format_indicator_of_02_is_accepted() {
        let account = nested(&[(0, "A000000727"), (1, "0006970436")]).unwrap();
        let text =
            encode(&[(0, "02"), (38, &account), (52, "5812"), (53, "704"), (58, "VN"), (59, "X"), (60, "Y")])
                .unwrap();
        assert_eq!(decode(&text).unwrap().format_indicator(), Some("02"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_an_error_or_a_payload_never_a_panic(s in ".{0,600}") {
            let _ = decode(&s);
        }

        #[test]
        fn encoded_payloads_decode_to_what_was_encoded(
            name in "[A-Za-z0-9 \\u{4e00}-\\u{4e20}\\u{1780}-\\u{17a0}]{1,25}",
            city in "[A-Za-z ]{1,15}",
            amount in proptest::option::of("[0-9]{1,8}(\\.[0-9]{2})?"),
        ) {
            let account = nested(&[(0, "A000000677010111"), (1, "0066812345678")]).unwrap();
            let mut objs: Vec<(u8, &str)> = vec![(0, "01"), (1, "11"), (29, &account), (52, "5999"), (53, "764")];
            if let Some(a) = &amount { objs.push((54, a)); }
            objs.extend([(58, "TH"), (59, name.as_str()), (60, city.as_str())]);
            let text = encode(&objs).unwrap();
            let p = decode(&text).unwrap();
            proptest::prop_assert_eq!(p.merchant_name(), Some(name.as_str()));
            proptest::prop_assert_eq!(p.city(), Some(city.as_str()));
            proptest::prop_assert_eq!(p.amount(), amount.as_deref());
            proptest::prop_assert_eq!(p.get(29).and_then(|t| t.child(0)).map(|c| c.value), Some("A000000677010111"));
        }
    }
}

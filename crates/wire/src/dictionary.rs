//! The field dictionary: ISO 8583:1987 data elements 1-128 as data.
//!
//! The table is generated at build time from `proto-spec/fields.toml`, the one place the
//! dictionary is written down; nothing here repeats it.

use std::fmt;

use crate::limits::FIELD_ID_MAX;

/// The content type of a data element, as ISO 8583 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldType {
    /// `n`: digits only. BCD in the native dialect, ASCII digits in the classic ones.
    N,
    /// `an`: letters, digits and space.
    An,
    /// `ans`: any printable ASCII character.
    Ans,
    /// `ns`: digits, space and printable special characters.
    Ns,
    /// `z`: the track 2 and 3 code set: digits, `=` and `D`.
    Z,
    /// `x+n`: `C` (credit) or `D` (debit) followed by digits.
    Xn,
    /// `b`: binary. Raw bytes, or uppercase hex text in the `iso87-hex` dialect.
    B,
}

impl FieldType {
    /// The ISO 8583 abbreviation (`n`, `an`, `ans`, `ns`, `z`, `x+n`, `b`).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::N => "n",
            Self::An => "an",
            Self::Ans => "ans",
            Self::Ns => "ns",
            Self::Z => "z",
            Self::Xn => "x+n",
            Self::B => "b",
        }
    }

    /// Whether values of this type are binary (shown as hex) rather than text.
    #[must_use]
    pub const fn is_binary(self) -> bool {
        matches!(self, Self::B)
    }
}

/// How a data element's length is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LengthKind {
    /// Always exactly `max` units.
    Fixed,
    /// LLVAR: a prefix of two digits (one byte in the native dialect), then up to `max` units.
    Ll,
    /// LLLVAR: a prefix of three digits (two bytes in the native dialect), then up to `max` units.
    Lll,
}

impl LengthKind {
    /// Number of ASCII digits of the length prefix in the classic dialects.
    #[must_use]
    pub const fn prefix_digits(self) -> usize {
        match self {
            Self::Fixed => 0,
            Self::Ll => 2,
            Self::Lll => 3,
        }
    }
}

/// How a data element must be treated wherever it could be shown (logs, metrics, screens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Sensitivity {
    /// Nothing secret.
    None,
    /// A primary account number: at most its first 6 and last 4 digits may be shown.
    Pan,
    /// Magnetic stripe track data: never shown.
    Track,
    /// A PIN block: never shown.
    Pin,
    /// Other secret material (for example ICC cryptograms): never shown.
    Secret,
}

/// One entry of the field dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Data element number, 1-128.
    pub id: u8,
    /// The name ISO 8583:1987 gives it.
    pub name: &'static str,
    /// Content type.
    pub ty: FieldType,
    /// Fixed, LLVAR or LLLVAR.
    pub length: LengthKind,
    /// The fixed length, or the maximum length of a variable field: characters for text
    /// types, bytes for `b`.
    pub max: u16,
    /// How the value must be masked when shown.
    pub sensitivity: Sensitivity,
    /// A remark on the field's content (empty when there is none).
    pub note: &'static str,
}

impl FieldSpec {
    const UNDEFINED: Self = Self {
        id: 0,
        name: "",
        ty: FieldType::B,
        length: LengthKind::Fixed,
        max: 0,
        sensitivity: Sensitivity::None,
        note: "",
    };

    /// Whether the field has a fixed length.
    #[must_use]
    pub const fn is_fixed(&self) -> bool {
        matches!(self.length, LengthKind::Fixed)
    }
}

include!(concat!(env!("OUT_DIR"), "/fields.rs"));

/// A data element number, 1-128. DE 1 (secondary bitmap) and DE 65 (tertiary bitmap
/// indicator) are bitmaps and never carry a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldId(u8);

impl FieldId {
    /// The data element `n`, if `n` is 1-128.
    #[must_use]
    pub const fn new(n: u8) -> Option<Self> {
        if n >= 1 && n <= FIELD_ID_MAX {
            Some(Self(n))
        } else {
            None
        }
    }

    /// The number.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Its dictionary entry.
    #[must_use]
    pub fn spec(self) -> &'static FieldSpec {
        &FIELDS[self.0 as usize]
    }

    /// Whether this data element is a bitmap (DE 1, DE 65) rather than a value.
    #[must_use]
    pub const fn is_bitmap(self) -> bool {
        self.0 == 1 || self.0 == 65
    }

    /// Every data element that can carry a value: DE 2-128 but DE 65.
    pub fn all_values() -> impl Iterator<Item = FieldId> {
        (2..=FIELD_ID_MAX).map(FieldId).filter(|id| !id.is_bitmap())
    }
}

impl fmt::Display for FieldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DE {}", self.0)
    }
}

/// The dictionary entry of data element `id` (1-128).
#[must_use]
pub fn spec(id: FieldId) -> &'static FieldSpec {
    id.spec()
}

/// Data elements the switch reads, by name.
pub mod de {
    use super::FieldId;

    /// DE 1, the secondary bitmap.
    pub const SECONDARY_BITMAP: FieldId = FieldId(1);
    /// DE 65, the tertiary bitmap indicator.
    pub const TERTIARY_BITMAP: FieldId = FieldId(65);
    /// DE 2, primary account number.
    pub const PAN: FieldId = FieldId(2);
    /// DE 3, processing code.
    pub const PROCESSING_CODE: FieldId = FieldId(3);
    /// DE 4, transaction amount.
    pub const AMOUNT: FieldId = FieldId(4);
    /// DE 5, settlement amount.
    pub const AMOUNT_SETTLEMENT: FieldId = FieldId(5);
    /// DE 6, cardholder billing amount.
    pub const AMOUNT_BILLING: FieldId = FieldId(6);
    /// DE 7, transmission date and time (MMDDhhmmss).
    pub const TRANSMISSION_TIME: FieldId = FieldId(7);
    /// DE 9, settlement conversion rate (N8).
    pub const RATE_SETTLEMENT: FieldId = FieldId(9);
    /// DE 10, cardholder billing conversion rate (N8).
    pub const RATE_BILLING: FieldId = FieldId(10);
    /// DE 11, system trace audit number.
    pub const STAN: FieldId = FieldId(11);
    /// DE 12, local transaction time.
    pub const LOCAL_TIME: FieldId = FieldId(12);
    /// DE 13, local transaction date.
    pub const LOCAL_DATE: FieldId = FieldId(13);
    /// DE 14, card expiry date (YYMM).
    pub const EXPIRY: FieldId = FieldId(14);
    /// DE 18, merchant type (MCC).
    pub const MERCHANT_TYPE: FieldId = FieldId(18);
    /// DE 22, point-of-service entry mode.
    pub const POS_ENTRY_MODE: FieldId = FieldId(22);
    /// DE 25, point-of-service condition code.
    pub const POS_CONDITION: FieldId = FieldId(25);
    /// DE 32, acquiring institution id.
    pub const ACQUIRER_ID: FieldId = FieldId(32);
    /// DE 33, forwarding institution id.
    pub const FORWARDER_ID: FieldId = FieldId(33);
    /// DE 35, track 2 data.
    pub const TRACK2: FieldId = FieldId(35);
    /// DE 37, retrieval reference number.
    pub const RRN: FieldId = FieldId(37);
    /// DE 38, authorization id response.
    pub const AUTH_ID: FieldId = FieldId(38);
    /// DE 39, response code.
    pub const RESPONSE_CODE: FieldId = FieldId(39);
    /// DE 41, card acceptor terminal id.
    pub const TERMINAL_ID: FieldId = FieldId(41);
    /// DE 42, card acceptor id code.
    pub const MERCHANT_ID: FieldId = FieldId(42);
    /// DE 43, card acceptor name and location.
    pub const MERCHANT_NAME: FieldId = FieldId(43);
    /// DE 49, transaction currency code.
    pub const CURRENCY: FieldId = FieldId(49);
    /// DE 50, settlement currency code.
    pub const CURRENCY_SETTLEMENT: FieldId = FieldId(50);
    /// DE 51, cardholder billing currency code.
    pub const CURRENCY_BILLING: FieldId = FieldId(51);
    /// DE 52, PIN block.
    pub const PIN_BLOCK: FieldId = FieldId(52);
    /// DE 55, ICC (chip) data.
    pub const ICC_DATA: FieldId = FieldId(55);
    /// DE 70, network management information code.
    pub const NETWORK_CODE: FieldId = FieldId(70);
    /// DE 90, original data elements.
    pub const ORIGINAL_DATA: FieldId = FieldId(90);
    /// DE 100, receiving institution id.
    pub const RECEIVER_ID: FieldId = FieldId(100);
    /// DE 125, the rate quote an originator converted at (Corridor's use).
    pub const QUOTE_ID: FieldId = FieldId(125);
    /// DE 126, an EMV QR payload's UTF-8 bytes (Corridor's use).
    pub const QR_PAYLOAD: FieldId = FieldId(126);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_id() {
        for n in 1..=128u8 {
            let id = FieldId::new(n).expect("1-128 are field ids");
            assert_eq!(id.spec().id, n);
            assert!(!id.spec().name.is_empty(), "DE {n} has a name");
        }
        assert_eq!(FieldId::new(0), None);
        assert_eq!(FieldId::new(129), None);
    }

    #[test]
    fn well_known_fields_match_iso_8583_1987() {
        let pan = de::PAN.spec();
        assert_eq!(
            (pan.ty, pan.length, pan.max, pan.sensitivity),
            (FieldType::N, LengthKind::Ll, 19, Sensitivity::Pan)
        );
        let stan = de::STAN.spec();
        assert_eq!((stan.ty, stan.length, stan.max), (FieldType::N, LengthKind::Fixed, 6));
        let pin = de::PIN_BLOCK.spec();
        assert_eq!(
            (pin.ty, pin.length, pin.max, pin.sensitivity),
            (FieldType::B, LengthKind::Fixed, 8, Sensitivity::Pin)
        );
        let icc = FieldId::new(55).map(FieldId::spec).expect("DE 55");
        assert_eq!((icc.ty, icc.length, icc.max), (FieldType::B, LengthKind::Lll, 255));
        assert_eq!(de::RECEIVER_ID.spec().length, LengthKind::Ll);
        assert_eq!(de::ORIGINAL_DATA.spec().max, 42);
    }
}

//! [`OwnedMessage`]: a message held as canonical field values, for building messages and
//! for tools (the `corridor msg` command, tests, simulators). The switch's hot path reads
//! [`crate::Message`] views instead and never builds one of these.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::{
    dialect::{check_value, Dialect},
    dictionary::FieldId,
    error::EncodeError,
    limits::FRAME_BYTES_MAX,
    message::Message,
    mti::Mti,
};

/// A message as its MTI and the canonical value of each present field: text as ASCII, `b`
/// fields as raw bytes. Every value is checked against the dictionary when set, so encoding
/// can only fail on the frame limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    mti: Mti,
    fields: BTreeMap<FieldId, Vec<u8>>,
}

impl OwnedMessage {
    /// An empty message of type `mti`.
    #[must_use]
    pub fn new(mti: Mti) -> Self {
        Self { mti, fields: BTreeMap::new() }
    }

    /// The message type indicator.
    #[must_use]
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// Changes the message type indicator.
    pub fn set_mti(&mut self, mti: Mti) {
        self.mti = mti;
    }

    /// Sets field `id` to `value` (canonical form).
    ///
    /// # Errors
    ///
    /// [`EncodeError::BitmapIsNotAValue`] for DE 1 and DE 65; [`EncodeError::BadLength`] or
    /// [`EncodeError::InvalidCharacter`] when the value does not fit the dictionary.
    pub fn set(&mut self, id: FieldId, value: impl Into<Vec<u8>>) -> Result<&mut Self, EncodeError> {
        if id.is_bitmap() {
            return Err(EncodeError::BitmapIsNotAValue { field: id.get() });
        }
        let value = value.into();
        check_value(id.spec(), &value)?;
        self.fields.insert(id, value);
        Ok(self)
    }

    /// The value of field `id`.
    #[must_use]
    pub fn get(&self, id: FieldId) -> Option<&[u8]> {
        self.fields.get(&id).map(Vec::as_slice)
    }

    /// Removes field `id`, returning its value.
    pub fn remove(&mut self, id: FieldId) -> Option<Vec<u8>> {
        self.fields.remove(&id)
    }

    /// The present fields and their values, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (FieldId, &[u8])> {
        self.fields.iter().map(|(&id, v)| (id, v.as_slice()))
    }

    /// Number of present fields.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether no field is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Encodes the message body in `dialect`, appending it to `out`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FrameTooLarge`] if the body would exceed [`FRAME_BYTES_MAX`]; `out` is
    /// then left as it was.
    pub fn encode(&self, dialect: Dialect, out: &mut BytesMut) -> Result<(), EncodeError> {
        let fields = self.fields.keys().fold(0u128, |m, id| m | 1 << (128 - u32::from(id.get())));
        let start = out.len();
        dialect.write_head(self.mti, fields, out);
        for (id, value) in &self.fields {
            dialect.encode_value(id.spec(), value, out);
        }
        let len = out.len() - start;
        if len > FRAME_BYTES_MAX {
            out.truncate(start);
            return Err(EncodeError::FrameTooLarge { len, max: FRAME_BYTES_MAX });
        }
        Ok(())
    }

    /// Encodes the message body in `dialect` into a new buffer.
    ///
    /// # Errors
    ///
    /// See [`OwnedMessage::encode`].
    pub fn to_bytes(&self, dialect: Dialect) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::with_capacity(256);
        self.encode(dialect, &mut out)?;
        Ok(out.freeze())
    }
}

impl<B: AsRef<[u8]>> From<&Message<B>> for OwnedMessage {
    fn from(m: &Message<B>) -> Self {
        let fields = m.fields().map(|f| (f.id(), f.to_vec())).collect();
        Self { mti: m.mti(), fields }
    }
}

/// Builds valid values from unstructured bytes: the seed of property tests and fuzz targets.
pub mod generate {
    use crate::{
        dictionary::{FieldSpec, FieldType},
        mti::Mti,
    };

    use super::OwnedMessage;
    use crate::dictionary::FieldId;

    /// A value that fits `spec`, drawn from `seed` (any bytes; a short seed gives short or
    /// zero-filled values).
    #[must_use]
    pub fn value(spec: &FieldSpec, seed: &[u8]) -> Vec<u8> {
        let max = spec.max as usize;
        let mut it = seed.iter().copied().chain(std::iter::repeat(0));
        let len = if spec.is_fixed() { max } else { usize::from(it.next().unwrap_or(0)) % (max + 1) };
        let pick = |b: u8, set: &[u8]| set[usize::from(b) % set.len()];
        const DIGITS: &[u8] = b"0123456789";
        const AN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ";
        const ANS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
        const NS: &[u8] = b"0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
        const Z: &[u8] = b"0123456789=D";
        (0..len)
            .map(|i| {
                let b = it.next().unwrap_or(0);
                match spec.ty {
                    FieldType::N => pick(b, DIGITS),
                    FieldType::An => pick(b, AN),
                    FieldType::Ans => pick(b, ANS),
                    FieldType::Ns => pick(b, NS),
                    FieldType::Z => pick(b, Z),
                    FieldType::Xn if i == 0 => pick(b, b"CD"),
                    FieldType::Xn => pick(b, DIGITS),
                    FieldType::B => b,
                }
            })
            .collect()
    }

    /// A message drawn from `seed`: an MTI, a set of fields from the 128-bit mask, and each
    /// field's value from the following seed bytes.
    #[must_use]
    pub fn message(mti: u16, mask: u128, seed: &[u8]) -> OwnedMessage {
        let mut m = OwnedMessage::new(Mti::new(mti % 10_000).unwrap_or(Mti::FINANCIAL_REQUEST));
        let mut rest = seed;
        for id in FieldId::all_values() {
            if mask >> (128 - u32::from(id.get())) & 1 == 1 {
                let v = value(id.spec(), rest);
                rest = rest.get(v.len() + 1..).unwrap_or_default();
                // `value` only makes values the dictionary accepts.
                let _ = m.set(id, v);
            }
        }
        m
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for OwnedMessage {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mti = u.arbitrary::<u16>()?;
        let mask = u.arbitrary::<u128>()?;
        let rest = u.bytes(u.len())?;
        Ok(generate::message(mti, mask, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::de;

    #[test]
    fn set_checks_the_dictionary() {
        let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
        assert!(m.set(de::STAN, "000001").is_ok());
        assert_eq!(
            m.set(de::STAN, "1").map(|_| ()),
            Err(EncodeError::BadLength { field: 11, len: 1, max: 6, fixed: true })
        );
        assert!(matches!(
            m.set(de::PAN, "47617390010100101234").map(|_| ()),
            Err(EncodeError::BadLength { field: 2, len: 20, max: 19, fixed: false })
        ));
        assert!(matches!(
            m.set(de::STAN, "00000x").map(|_| ()),
            Err(EncodeError::InvalidCharacter { field: 11, index: 5, found: b'x', .. })
        ));
        assert_eq!(
            m.set(de::SECONDARY_BITMAP, vec![0; 8]).map(|_| ()),
            Err(EncodeError::BitmapIsNotAValue { field: 1 })
        );
        assert_eq!(
            m.set(de::TERTIARY_BITMAP, vec![0; 8]).map(|_| ()),
            Err(EncodeError::BitmapIsNotAValue { field: 65 })
        );
        let fee = FieldId::new(28).expect("DE 28");
        assert!(m.set(fee, "D00000100").is_ok());
        assert!(m.set(fee, "X00000100").is_err());
    }

    #[test]
    fn oversize_message_is_refused_and_leaves_the_buffer() {
        let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
        // Every LLLVAR text field from DE 105 on (DE 126 is binary, of 499 bytes at most).
        for n in (105..=127).filter(|&n| n != 126) {
            let id = FieldId::new(n).expect("field id");
            m.set(id, vec![b'x'; 999]).expect("999 ans characters fit");
        }
        let mut out = BytesMut::from(&b"keep"[..]);
        assert!(matches!(m.encode(Dialect::Native, &mut out), Err(EncodeError::FrameTooLarge { .. })));
        assert_eq!(&out[..], b"keep");
    }
}

//! Parsing: one pass over a message body builds a [`MessageIndex`] of field offsets, and a
//! [`Message`] pairs it with the buffer it indexes.
//!
//! The index lives on the stack (a fixed array of 129 offsets, no allocation); accessors hand
//! out slices of the original buffer. Every field is checked against the dictionary during
//! the pass, so a `Message` that exists is well formed.

use std::borrow::Borrow;

use bytes::Bytes;

use crate::{
    dialect::{check_value, native_digits, Dialect},
    dictionary::{de, FieldId, FieldSpec},
    error::{DecodeError, EncodeError, Part},
    limits::{DECODED_UNITS_MAX, FIELD_UNITS_MAX, FRAME_BYTES_MAX},
    mti::Mti,
    values::{InstitutionId, NetworkCode, Pan, ResponseCode, Stan, TransmissionTime},
};

/// A set of data elements, one bit each (DE n is bit `128 - n`, so DE 1 is the top bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(pub u128);

impl FieldSet {
    /// No field.
    pub const EMPTY: Self = Self(0);
    /// DE 1.
    pub const SECONDARY_BITMAP: Self = Self(1 << 127);
    /// Every value field: DE 2-128 but DE 65.
    pub const VALUES: Self = Self(!(1 << 127) & !(1 << 63));
    /// Fields an answer never echoes and a reversal never carries: track data (35, 36, 45),
    /// the PIN block and its control data (52, 53), ICC data (55) and MACs (64, 96, 128).
    pub const SECRETS: Self = Self::from_numbers(&[35, 36, 45, 52, 53, 55, 64, 96, 128]);

    /// The set of the given fields.
    #[must_use]
    pub fn of(ids: &[FieldId]) -> Self {
        Self(ids.iter().fold(0, |m, id| m | Self::bit(*id)))
    }

    /// The set of the fields numbered `ids` (numbers outside 1-128 are ignored).
    #[must_use]
    pub const fn from_numbers(ids: &[u8]) -> Self {
        let mut m = 0u128;
        let mut i = 0;
        while i < ids.len() {
            if ids[i] >= 1 && ids[i] <= 128 {
                m |= 1 << (128 - ids[i] as u32);
            }
            i += 1;
        }
        Self(m)
    }

    const fn bit(id: FieldId) -> u128 {
        1 << (128 - id.get() as u32)
    }

    /// Every field numbered below `id`.
    #[must_use]
    pub const fn below(id: u8) -> Self {
        if id <= 1 {
            return Self(0);
        }
        if id > 128 {
            return Self(!0);
        }
        // DE 1 .. DE id-1 are the bits from 127 down to 129 - id.
        Self(!((1u128 << (129 - id as u32)) - 1))
    }

    /// Whether `id` is in the set.
    #[must_use]
    pub const fn contains(self, id: FieldId) -> bool {
        self.0 & Self::bit(id) != 0
    }

    /// The set with `id` added.
    #[must_use]
    pub const fn with(self, id: FieldId) -> Self {
        Self(self.0 | Self::bit(id))
    }

    /// The set without the fields of `other`.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

/// The result of parsing a message body: its MTI, bitmaps and where every field's data
/// starts and ends (two `u16`s a field: a field's bytes are two loads away, which every
/// accessor on the hot path needs, instead of a search for the next present field).
#[derive(Clone, Debug)]
pub struct MessageIndex {
    dialect: Dialect,
    mti: Mti,
    bitmap: [u64; 2],
    /// End of the last indexed field.
    end: u16,
    starts: [u16; 129],
    ends: [u16; 129],
}

#[inline(always)]
fn bit(id: u8) -> (usize, u64) {
    let i = usize::from(id - 1);
    (i / 64, 1u64 << (63 - i % 64))
}

/// The fields whose bits are set in `bits` (a [`FieldSet`]'s), lowest number first.
fn field_ids(mut bits: u128) -> impl Iterator<Item = FieldId> {
    std::iter::from_fn(move || {
        while bits != 0 {
            let lz = bits.leading_zeros();
            bits &= !(1u128 << (127 - lz));
            // lz < 128, so the number is 1-128.
            if let Some(id) = FieldId::new(lz as u8 + 1) {
                return Some(id);
            }
        }
        None
    })
}

impl MessageIndex {
    /// Parses and checks a whole message body in `dialect`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming the part or field that breaks the protocol, with its offset.
    /// Never panics, whatever `body` holds.
    #[inline]
    pub fn parse(dialect: Dialect, body: &[u8]) -> Result<Self, DecodeError> {
        let mut index = Self::empty(dialect);
        index.parse_into(dialect, body)?;
        Ok(index)
    }

    /// Like [`MessageIndex::parse`], into an index kept from an earlier message: only the
    /// present fields' offsets are written, so nothing is zeroed or copied. A link driver
    /// keeps one index and parses every frame into it.
    ///
    /// # Errors
    ///
    /// As [`MessageIndex::parse`]; the index then holds no field.
    #[inline]
    pub fn parse_into(&mut self, dialect: Dialect, body: &[u8]) -> Result<(), DecodeError> {
        self.dialect = dialect;
        // One instance per dialect, so the per-field encoding choices are constants.
        let parsed = match dialect {
            Dialect::Native => parse_in::<0, false>(body, self),
            Dialect::Iso87Ascii => parse_in::<1, false>(body, self),
            Dialect::Iso87Hex => parse_in::<2, false>(body, self),
        };
        if let Err(e) = parsed {
            // Offsets of fields the failed parse announced may be stale: announce none.
            self.bitmap = [0; 2];
            self.end = 0;
            return Err(e);
        }
        Ok(())
    }

    /// An index with no field, to parse into with [`MessageIndex::parse_into`].
    #[must_use]
    pub fn new(dialect: Dialect) -> Self {
        Self::empty(dialect)
    }

    /// Parses as much of a body as is well formed: the MTI and bitmaps must be, and the index
    /// then holds every field before the first broken one, with that field's error. Used to
    /// answer a malformed request with a format error that still echoes its STAN and ids.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when not even the MTI and bitmaps can be read.
    pub fn parse_partial(dialect: Dialect, body: &[u8]) -> Result<(Self, Option<DecodeError>), DecodeError> {
        let mut index = Self::empty(dialect);
        let broken = match dialect {
            Dialect::Native => parse_in::<0, true>(body, &mut index)?,
            Dialect::Iso87Ascii => parse_in::<1, true>(body, &mut index)?,
            Dialect::Iso87Hex => parse_in::<2, true>(body, &mut index)?,
        };
        Ok((index, broken))
    }

    fn empty(dialect: Dialect) -> Self {
        Self {
            dialect,
            mti: Mti::FINANCIAL_REQUEST,
            bitmap: [0; 2],
            end: 0,
            starts: [0; 129],
            ends: [0; 129],
        }
    }

    /// The present value fields as a set.
    #[must_use]
    pub fn field_set(&self) -> FieldSet {
        FieldSet((u128::from(self.bitmap[0]) << 64 | u128::from(self.bitmap[1])) & FieldSet::VALUES.0)
    }

    /// The dialect the body was parsed in.
    #[must_use]
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The message type indicator.
    #[must_use]
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// Whether field `id` is present.
    #[must_use]
    pub fn has(&self, id: FieldId) -> bool {
        let (w, m) = bit(id.get());
        self.bitmap[w] & m != 0
    }

    /// The present value fields (DE 2-128 but DE 65), in order.
    pub fn ids(&self) -> impl Iterator<Item = FieldId> + '_ {
        FieldId::all_values().filter(|&id| self.has(id))
    }

    /// Byte range of field `id` as it lies in the body — its length prefix and its data —
    /// if present.
    fn span(&self, id: FieldId) -> Option<std::ops::Range<usize>> {
        let r = self.range(id)?;
        Some(r.start - self.dialect.prefix_len(id.spec().length)..r.end)
    }

    /// Byte range of field `id`'s encoded data, if present.
    #[must_use]
    pub fn range(&self, id: FieldId) -> Option<std::ops::Range<usize>> {
        if id.is_bitmap() || !self.has(id) {
            return None;
        }
        let n = usize::from(id.get());
        let (start, end) = (usize::from(self.starts[n]), usize::from(self.ends[n]));
        Some(start..end)
    }
}

const fn dialect_index(d: Dialect) -> usize {
    match d {
        Dialect::Native => 0,
        Dialect::Iso87Ascii => 1,
        Dialect::Iso87Hex => 2,
    }
}

const fn dialect_of(d: u8) -> Dialect {
    match d {
        0 => Dialect::Native,
        1 => Dialect::Iso87Ascii,
        _ => Dialect::Iso87Hex,
    }
}

/// Parses `body` into `index` (which must be empty). With `PARTIAL`, a broken field ends the
/// walk and is returned, the index keeping the fields before it.
fn parse_in<const D: u8, const PARTIAL: bool>(
    body: &[u8],
    index: &mut MessageIndex,
) -> Result<Option<DecodeError>, DecodeError> {
    let dialect = dialect_of(D);
    if body.len() > FRAME_BYTES_MAX {
        return Err(DecodeError::FrameTooLarge { declared: body.len(), max: FRAME_BYTES_MAX });
    }
    let mut pos = 0usize;
    let take = |pos: usize, n: usize, part: Part| -> Result<&[u8], DecodeError> {
        body.get(pos..pos + n).ok_or_else(|| DecodeError::Truncated {
            part,
            offset: pos,
            needed: n,
            available: body.len().saturating_sub(pos),
        })
    };
    let mti_bytes = take(pos, dialect.mti_len(), Part::Mti)?;
    let mti = dialect.read_mti(mti_bytes).ok_or(DecodeError::InvalidMti { offset: pos })?;
    pos += dialect.mti_len();

    let bl = dialect.bitmap_len();
    let primary = dialect
        .read_bitmap(take(pos, bl, Part::PrimaryBitmap)?)
        .ok_or(DecodeError::InvalidBitmap { offset: pos })?;
    pos += bl;
    let mut bitmap = [primary, 0];
    if primary >> 63 == 1 {
        bitmap[1] = dialect
            .read_bitmap(take(pos, bl, Part::SecondaryBitmap)?)
            .ok_or(DecodeError::InvalidBitmap { offset: pos })?;
        if bitmap[1] >> 63 == 1 {
            return Err(DecodeError::UnsupportedTertiaryBitmap { offset: pos });
        }
        pos += bl;
    }

    index.mti = mti;
    index.bitmap = bitmap;
    let (starts, ends) = (&mut index.starts, &mut index.ends);
    for (w, &word) in bitmap.iter().enumerate() {
        // DE 1 is the secondary bitmap, already read. Reversed, the lowest set bit is the
        // next field, and clearing it is one instruction.
        let mut bits = (if w == 0 { word & !(1 << 63) } else { word }).reverse_bits();
        while bits != 0 {
            let tz = bits.trailing_zeros();
            bits &= bits - 1;
            // w < 2 and tz < 64, so the id is 2-128.
            let id = (w * 64) as u8 + tz as u8 + 1;
            match dispatch::<D>(id, body, pos) {
                Ok((start, next)) => {
                    starts[usize::from(id)] = start;
                    // The body is at most FRAME_BYTES_MAX, which fits u16 (limits.rs).
                    ends[usize::from(id)] = next as u16;
                    pos = next;
                }
                Err(e) if PARTIAL => {
                    // Keep what came before the broken field; DE 1 stays as it was read.
                    let keep = FieldSet::below(id).0 | FieldSet::SECONDARY_BITMAP.0;
                    index.bitmap = [bitmap[0] & (keep >> 64) as u64, bitmap[1] & keep as u64];
                    // The body is at most FRAME_BYTES_MAX, which fits u16 (limits.rs).
                    index.end = pos as u16;
                    return Ok(Some(e));
                }
                Err(e) => return Err(e),
            }
        }
    }
    index.end = pos as u16;
    if pos != body.len() {
        let e = DecodeError::TrailingBytes { offset: pos, count: body.len() - pos };
        return if PARTIAL { Ok(Some(e)) } else { Err(e) };
    }
    Ok(None)
}

/// Reads field `id` at `pos`: checks its prefix, length and characters, and returns where
/// its data starts and the offset after it.
#[inline(always)]
fn parse_field(
    dialect: Dialect,
    d: usize,
    body: &[u8],
    id: u8,
    pos: usize,
) -> Result<(u16, usize), DecodeError> {
    parse_with(dialect, &crate::layout::LAYOUTS[d][usize::from(id)], body, id, pos)
}

/// [`parse_field`] for a field known at compile time: its layout is a constant, so the
/// length and the check fold into straight-line code.
#[inline(always)]
fn parse_known<const D: u8, const ID: u8>(body: &[u8], pos: usize) -> Result<(u16, usize), DecodeError> {
    let lay = const { &crate::layout::LAYOUT_TABLE[D as usize][ID as usize] };
    parse_with(dialect_of(D), lay, body, ID, pos)
}

macro_rules! dispatch_fields {
    ($d:ident, $id:expr, $body:expr, $pos:expr; $($n:literal)*) => {
        match $id {
            $($n => parse_known::<$d, $n>($body, $pos),)*
            other => parse_field(dialect_of($d), usize::from($d), $body, other, $pos),
        }
    };
}

/// One jump per field to code specialized for it.
#[inline(always)]
fn dispatch<const D: u8>(id: u8, body: &[u8], pos: usize) -> Result<(u16, usize), DecodeError> {
    dispatch_fields!(D, id, body, pos;
        2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33
        34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64
        66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96
        97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119 120
        121 122 123 124 125 126 127 128)
}

#[inline(always)]
fn parse_with(
    dialect: Dialect,
    lay: &crate::layout::Layout,
    body: &[u8],
    id: u8,
    pos: usize,
) -> Result<(u16, usize), DecodeError> {
    let (start, len, declared) = if lay.prefix == 0 {
        (pos, usize::from(lay.fixed), 0)
    } else {
        let pl = usize::from(lay.prefix);
        let Some(prefix) = body.get(pos..pos + pl) else {
            return Err(DecodeError::MissingField {
                field: id,
                offset: pos,
                needed: pl,
                available: body.len() - pos,
            });
        };
        let Some(declared) = dialect.read_prefix(prefix) else {
            return Err(DecodeError::InvalidLengthPrefix { field: id, offset: pos });
        };
        if declared > usize::from(lay.declared_max) {
            let max = usize::from(lay.declared_max);
            return Err(DecodeError::LengthOverMax { field: id, offset: pos, declared, max });
        }
        if lay.hex_pairs && declared % 2 == 1 {
            return Err(DecodeError::InvalidLengthPrefix { field: id, offset: pos });
        }
        let len = if lay.packed { declared.div_ceil(2) } else { declared };
        (pos + pl, len, declared)
    };
    if start + len > body.len() {
        return Err(DecodeError::MissingField {
            field: id,
            offset: pos,
            needed: len + (start - pos),
            available: body.len() - pos,
        });
    }
    crate::layout::check(lay, id, body, start, len, declared)?;
    // The body is at most FRAME_BYTES_MAX, which fits u16 (limits.rs).
    Ok((start as u16, start + len))
}

/// One field of a parsed message: its dictionary entry and its encoded bytes.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    id: FieldId,
    dialect: Dialect,
    data: &'a [u8],
}

impl<'a> Field<'a> {
    /// The data element number.
    #[must_use]
    pub fn id(&self) -> FieldId {
        self.id
    }

    /// Its dictionary entry.
    #[must_use]
    pub fn spec(&self) -> &'static FieldSpec {
        self.id.spec()
    }

    /// The encoded data as it arrived (without the length prefix): BCD for native `n`
    /// fields, hex text for `b` fields in `iso87-hex`, otherwise the value itself.
    #[must_use]
    pub fn raw(&self) -> &'a [u8] {
        self.data
    }

    /// The value in canonical form (text, or raw bytes for `b`) without copying, when the
    /// dialect already carries it that way; `None` when it must be decoded with
    /// [`Field::value_into`].
    #[must_use]
    pub fn value_borrowed(&self) -> Option<&'a [u8]> {
        self.dialect.is_canonical(self.spec().ty).then_some(self.data)
    }

    /// Length of the canonical value (digits, characters or bytes).
    #[must_use]
    pub fn units(&self) -> usize {
        let spec = self.spec();
        match (self.dialect, spec.ty) {
            (Dialect::Native, crate::FieldType::N) => native_digits(spec, self.data),
            (Dialect::Iso87Hex, crate::FieldType::B) => self.data.len() / 2,
            _ => self.data.len(),
        }
    }

    /// The canonical value: borrowed when the dialect carries it as it is, decoded into
    /// `scratch` otherwise (decoded fields are native `n` and hex `b`, at most
    /// [`DECODED_UNITS_MAX`] units).
    pub(crate) fn value_or_decode<'b>(&self, scratch: &'b mut [u8; DECODED_UNITS_MAX]) -> &'b [u8]
    where
        'a: 'b,
    {
        match self.value_borrowed() {
            Some(v) => v,
            None => {
                let n = self.dialect.canonical(self.spec(), self.data, scratch);
                &scratch[..n]
            }
        }
    }

    /// Writes the canonical value into `out` and returns it.
    pub fn value_into<'b>(&self, out: &'b mut [u8; FIELD_UNITS_MAX]) -> &'b [u8] {
        let n = self.dialect.canonical(self.spec(), self.data, out);
        &out[..n]
    }

    /// The canonical value, copied. Convenient off the hot path.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        match self.value_borrowed() {
            Some(v) => v.to_vec(),
            None => {
                let mut buf = [0u8; FIELD_UNITS_MAX];
                self.value_into(&mut buf).to_vec()
            }
        }
    }
}

/// A parsed message: a buffer and the index over it.
///
/// `B` is whatever holds the body: `Bytes` for messages read from a link (fields can then be
/// handed out as `Bytes` slices sharing the buffer), `&[u8]` for a quick look, `BytesMut` to
/// patch in place. `I` holds the index: owned by default, or borrowed (`&MessageIndex`) when
/// a link driver parses every frame into one index it keeps (see
/// [`MessageIndex::parse_into`]), so nothing is zeroed or moved per message.
#[derive(Clone, Debug)]
pub struct Message<B = Bytes, I = MessageIndex> {
    buf: B,
    index: I,
}

impl<B: AsRef<[u8]>> Message<B> {
    /// Parses the message body `buf` in `dialect`.
    ///
    /// # Errors
    ///
    /// See [`MessageIndex::parse`].
    #[inline]
    pub fn parse(dialect: Dialect, buf: B) -> Result<Self, DecodeError> {
        let index = MessageIndex::parse(dialect, buf.as_ref())?;
        Ok(Self { buf, index })
    }
}

impl<B: AsRef<[u8]>, I: Borrow<MessageIndex>> Message<B, I> {
    /// Pairs a buffer with an index made of it (by [`MessageIndex::parse`],
    /// [`MessageIndex::parse_into`] or [`MessageIndex::parse_partial`] over the same bytes).
    #[must_use]
    pub fn from_parts(buf: B, index: I) -> Self {
        Self { buf, index }
    }

    #[inline(always)]
    fn ix(&self) -> &MessageIndex {
        self.index.borrow()
    }

    /// The index.
    #[must_use]
    pub fn index(&self) -> &MessageIndex {
        self.ix()
    }

    /// The whole body.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    #[must_use]
    pub fn into_inner(self) -> B {
        self.buf
    }

    /// The dialect.
    #[must_use]
    pub fn dialect(&self) -> Dialect {
        self.ix().dialect
    }

    /// The message type indicator.
    #[must_use]
    pub fn mti(&self) -> Mti {
        self.ix().mti
    }

    /// Whether field `id` is present.
    #[must_use]
    pub fn has(&self, id: FieldId) -> bool {
        self.ix().has(id)
    }

    /// Field `id`, if present (DE 2-128).
    #[must_use]
    pub fn field(&self, id: FieldId) -> Option<Field<'_>> {
        let r = self.ix().range(id)?;
        Some(Field { id, dialect: self.ix().dialect, data: &self.buf.as_ref()[r] })
    }

    /// Every present field, in order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'_>> + '_ {
        self.ix().ids().filter_map(|id| self.field(id))
    }

    /// Field `id`'s encoded data, as it arrived.
    #[must_use]
    pub fn raw(&self, id: FieldId) -> Option<&[u8]> {
        self.field(id).map(|f| f.raw())
    }

    /// Field `id`'s canonical value written into `out`, if present and no longer than `out`
    /// (the typed accessors use buffers sized to their fields, so nothing large is zeroed).
    fn value_in<'b>(&self, id: FieldId, out: &'b mut [u8]) -> Option<&'b [u8]> {
        let f = self.field(id)?;
        if f.units() > out.len() {
            return None;
        }
        let n = self.ix().dialect.canonical(f.spec(), f.raw(), out);
        Some(&out[..n])
    }

    fn number(&self, id: FieldId) -> Option<u64> {
        let f = self.field(id)?;
        if self.ix().dialect == Dialect::Native && f.spec().ty == crate::FieldType::N && f.spec().is_fixed() {
            // Fixed BCD: the pad nibble, if any, is a leading 0, so the nibbles read straight
            // through are the number. At most 19 digits fit a u64.
            if f.raw().len() > 9 {
                return None;
            }
            return Some(
                f.raw().iter().fold(0u64, |v, &b| v * 100 + u64::from(b >> 4) * 10 + u64::from(b & 0xF)),
            );
        }
        let mut buf = [0u8; 19];
        let d = self.value_in(id, &mut buf)?;
        d.iter().try_fold(0u64, |v, &c| v.checked_mul(10)?.checked_add(u64::from(c.checked_sub(b'0')?)))
    }

    /// DE 2, the primary account number.
    #[must_use]
    pub fn pan(&self) -> Option<Pan> {
        let mut buf = [0u8; 19];
        Pan::from_ascii(self.value_in(de::PAN, &mut buf)?)
    }

    /// DE 11, the system trace audit number.
    #[must_use]
    pub fn stan(&self) -> Option<Stan> {
        Stan::new(u32::try_from(self.number(de::STAN)?).ok()?)
    }

    /// DE 7, transmission date and time.
    #[must_use]
    pub fn transmission_time(&self) -> Option<TransmissionTime> {
        TransmissionTime::new(self.number(de::TRANSMISSION_TIME)?)
    }

    fn institution(&self, id: FieldId) -> Option<InstitutionId> {
        let mut buf = [0u8; 11];
        InstitutionId::from_ascii(self.value_in(id, &mut buf)?)
    }

    /// DE 32, the acquiring institution id.
    #[must_use]
    pub fn acquirer_id(&self) -> Option<InstitutionId> {
        self.institution(de::ACQUIRER_ID)
    }

    /// DE 33, the forwarding institution id.
    #[must_use]
    pub fn forwarder_id(&self) -> Option<InstitutionId> {
        self.institution(de::FORWARDER_ID)
    }

    /// DE 100, the receiving institution id.
    #[must_use]
    pub fn receiver_id(&self) -> Option<InstitutionId> {
        self.institution(de::RECEIVER_ID)
    }

    /// DE 37, the retrieval reference number (text in every dialect, so borrowed).
    #[must_use]
    pub fn rrn(&self) -> Option<&[u8]> {
        self.raw(de::RRN)
    }

    /// DE 41, the card acceptor terminal id (text in every dialect, so borrowed).
    #[must_use]
    pub fn terminal_id(&self) -> Option<&[u8]> {
        self.raw(de::TERMINAL_ID)
    }

    /// DE 39, the response code.
    #[must_use]
    pub fn response_code(&self) -> Option<ResponseCode> {
        let raw = self.raw(de::RESPONSE_CODE)?;
        Some(ResponseCode(raw.try_into().ok()?))
    }

    /// DE 70, the network management information code.
    #[must_use]
    pub fn network_code(&self) -> Option<NetworkCode> {
        Some(NetworkCode(u16::try_from(self.number(de::NETWORK_CODE)?).ok()?))
    }

    /// Re-encodes the message in dialect `to`, field by field, appending it to `out`.
    /// Lossless for every field the dictionary defines: translating back gives the same
    /// values (hex text comes out uppercase).
    pub fn translate(&self, to: Dialect, out: &mut impl bytes::BufMut) {
        self.write(self.ix().mti, FieldSet::VALUES, &[], to, out);
    }

    /// Writes type `mti`, this message's fields in `keep` and the `set` fields (already
    /// checked), in field order. A field kept in the dialect it came in is copied as it came
    /// (prefix and data: the parse checked it, and its encoding is the one this dialect's
    /// encoder writes — padding included), neighbours in one copy; only fields given a value,
    /// or changing dialect, are encoded. (Binary fields of `iso87-hex` are encoded again:
    /// their hex may have come in lowercase, and the encoder writes uppercase.)
    fn write(
        &self,
        mti: Mti,
        keep: FieldSet,
        set: &[(FieldId, &[u8])],
        to: Dialect,
        out: &mut impl bytes::BufMut,
    ) {
        let set_mask = set.iter().fold(FieldSet::EMPTY, |m, &(id, _)| m.with(id));
        let fields = (self.ix().field_set().0 & keep.0 | set_mask.0) & FieldSet::VALUES.0;
        to.write_head(mti, fields, out);
        let same = to == self.ix().dialect;
        let bytes = self.buf.as_ref();
        // Bytes of the source to copy as they are, not yet written.
        let mut run = 0..0;
        // Zeroed only if a field is decoded (another dialect's, or iso87-hex binary): a
        // field copied as it came needs none, and a forward or a journal's seal written in
        // the dialect it came in zeroed half a KiB for nothing.
        let mut scratch: Option<[u8; DECODED_UNITS_MAX]> = None;
        // Only the fields written (VALUES left out DE 1 and DE 65), lowest number first.
        for id in field_ids(fields) {
            let bit = FieldSet::bit(id);
            let spec = id.spec();
            if same && set_mask.0 & bit == 0 && !(to == Dialect::Iso87Hex && spec.ty == crate::FieldType::B) {
                if let Some(span) = self.ix().span(id) {
                    if run.is_empty() || run.end != span.start {
                        out.put_slice(&bytes[run]);
                        run = span.start..span.start;
                    }
                    run.end = span.end;
                    continue;
                }
            }
            out.put_slice(&bytes[std::mem::replace(&mut run, 0..0)]);
            if set_mask.0 & bit != 0 {
                if let Some(&(_, value)) = set.iter().rev().find(|(sid, _)| *sid == id) {
                    to.encode_value(spec, value, out);
                }
            } else if let Some(f) = self.field(id) {
                to.encode_value(spec, f.value_or_decode(scratch.get_or_insert([0; DECODED_UNITS_MAX])), out);
            }
        }
        out.put_slice(&bytes[run]);
    }
}

impl<B: AsRef<[u8]>, I: Borrow<MessageIndex>> Message<B, I> {
    /// Writes a message derived from this one, in dialect `to`: type `mti`, the fields of this
    /// message that are in `keep`, plus the `set` fields (canonical values, added or replaced),
    /// in field order. This is how the switch forwards, answers, declines and reverses without
    /// building an intermediate message. When nothing changes but the values of fixed-length
    /// fields already present (same dialect, same MTI, every field kept), the bytes are
    /// forwarded as they came with those fields rewritten in place.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when a `set` value does not fit its field or names a bitmap; nothing is
    /// written then.
    pub fn derive(
        &self,
        mti: Mti,
        keep: FieldSet,
        set: &[(FieldId, &[u8])],
        to: Dialect,
        out: &mut impl bytes::BufMut,
    ) -> Result<(), EncodeError> {
        let mut set_mask = 0u128;
        let mut patchable = true;
        for &(id, value) in set {
            if id.is_bitmap() {
                return Err(EncodeError::BitmapIsNotAValue { field: id.get() });
            }
            check_value(id.spec(), value)?;
            set_mask |= FieldSet::bit(id);
            patchable &= id.spec().is_fixed() && self.has(id);
        }
        let present = self.ix().field_set().0;
        if patchable && to == self.ix().dialect && mti == self.ix().mti && present & !keep.0 == 0 {
            // Same layout: the bytes as they came, with the replaced fixed fields rewritten
            // where they stand.
            self.write_patched(set_mask, set, out);
        } else if set.is_empty() && to == self.ix().dialect && to != Dialect::Iso87Hex {
            // Same dialect, fields only dropped: the bytes as they came, cut around them.
            self.write_dropping(mti, keep, out);
        } else {
            self.write(mti, keep, set, to, out);
        }
        Ok(())
    }

    /// What [`Message::write`] writes in the message's own dialect (not `iso87-hex`) with
    /// nothing set, found as the runs between the fields dropped — one or two a journaled
    /// request (its PAN and secrets), where the write walked every field kept. The values
    /// lie in field order, each with its prefix, from the first field's to the last's.
    fn write_dropping(&self, mti: Mti, keep: FieldSet, out: &mut impl bytes::BufMut) {
        // A parse refuses DE 65 (`UnsupportedTertiaryBitmap`): no bytes of a bitmap lie
        // among the values, which the cut would copy and the write would not.
        debug_assert_eq!(self.ix().bitmap[1] >> 63, 0, "DE 65 is refused by the parse");
        let present = self.ix().field_set().0;
        let fields = present & keep.0;
        self.ix().dialect.write_head(mti, fields, out);
        let bytes = self.buf.as_ref();
        // The lowest-numbered field present and the highest (numbered 128 less its trailing
        // zeros): none of either when none is present.
        let last = FieldId::new((128 - present.trailing_zeros()) as u8);
        let (Some(first), Some(last)) = (
            field_ids(present).next().and_then(|id| self.ix().span(id)),
            last.and_then(|id| self.ix().span(id)),
        ) else {
            return;
        };
        let mut pos = first.start;
        for span in field_ids(present & !fields).filter_map(|id| self.ix().span(id)) {
            out.put_slice(&bytes[pos..span.start]);
            pos = span.end;
        }
        out.put_slice(&bytes[pos..last.end.max(pos)]);
    }

    /// Copies the message, writing the `set` values (fixed-length fields present in it, in
    /// this dialect) over the fields in `set_mask`.
    fn write_patched(&self, set_mask: u128, set: &[(FieldId, &[u8])], out: &mut impl bytes::BufMut) {
        let bytes = self.buf.as_ref();
        let mut pos = 0;
        // The set holds value fields only (checked by the caller).
        for id in field_ids(set_mask) {
            let (Some(r), Some(&(_, value))) =
                (self.ix().range(id), set.iter().rev().find(|(sid, _)| *sid == id))
            else {
                continue;
            };
            out.put_slice(&bytes[pos..r.start]);
            self.ix().dialect.encode_value(id.spec(), value, out);
            pos = r.end;
        }
        out.put_slice(&bytes[pos..]);
    }
}

impl<I: Borrow<MessageIndex>> Message<Bytes, I> {
    /// Field `id`'s encoded data as a `Bytes` slice sharing the message's buffer.
    #[must_use]
    pub fn field_bytes(&self, id: FieldId) -> Option<Bytes> {
        let r = self.ix().range(id)?;
        Some(self.buf.slice(r))
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, I: Borrow<MessageIndex>> Message<B, I> {
    /// Overwrites fixed-length field `id` with `value` (canonical form) in place, without
    /// re-encoding the rest of the message. Used to rewrite DE 11 (STAN) or DE 39 on the way
    /// through.
    ///
    /// # Errors
    ///
    /// [`EncodeError::NotPatchable`] if the field is absent or variable-length;
    /// [`EncodeError::BadLength`] or [`EncodeError::InvalidCharacter`] if `value` does not
    /// fit the field.
    pub fn patch_fixed(&mut self, id: FieldId, value: &[u8]) -> Result<(), EncodeError> {
        let spec = id.spec();
        let range = match self.ix().range(id) {
            Some(r) if spec.is_fixed() => r,
            _ => return Err(EncodeError::NotPatchable { field: id.get() }),
        };
        check_value(spec, value)?;
        // A fixed field's encoding has one length per dialect, the one the parser indexed, so
        // the value fills the range exactly.
        let dialect = self.ix().dialect;
        let mut dst = &mut self.buf.as_mut()[range];
        dialect.encode_value(spec, value, &mut dst);
        debug_assert!(dst.is_empty());
        Ok(())
    }
}

/// Most broken fixed-length fields [`readable`] steps over in one body.
pub const READABLE_REPAIRS_MAX: usize = 8;

/// What can be read of a body that does not parse, as a valid message: the MTI and every
/// field that is well formed. A fixed-length field whose characters are wrong (a letter in
/// DE 4) has a known extent, so it is left out and the walk goes on past it; the walk stops
/// at a broken length prefix or a truncated field, keeping what came before. The second
/// value names the fields left out. `None` when not even the MTI and bitmaps can be read.
///
/// Used to answer a malformed request with a format error (30) its sender can still match
/// (DE 11, 7, 32, 37, 41 are echoed when they are readable). It allocates: it is for error
/// paths, not the hot one.
#[must_use]
pub fn readable(dialect: Dialect, body: &[u8]) -> Option<(Message<Bytes, MessageIndex>, FieldSet)> {
    let mut work: Vec<u8> = body.to_vec();
    let mut left_out = FieldSet::EMPTY;
    let mut repairs = 0;
    let index = loop {
        let (index, broken) = MessageIndex::parse_partial(dialect, &work).ok()?;
        let field = match broken {
            None => break index,
            Some(DecodeError::InvalidCharacter { field, .. } | DecodeError::InvalidPadding { field, .. }) => {
                field
            }
            Some(_) => break index,
        };
        let lay = &crate::layout::LAYOUTS[dialect_index(dialect)][usize::from(field)];
        // parse_partial ends the index where the broken field starts.
        let start = usize::from(index.end);
        let end = start + usize::from(lay.fixed);
        if lay.prefix != 0 || lay.fixed == 0 || end > work.len() || repairs == READABLE_REPAIRS_MAX {
            break index;
        }
        let Some(id) = FieldId::new(field) else { break index };
        // Well-formed filler in place of the broken value, so the walk can go on; the field
        // is then left out of the result.
        let filler: u8 = match lay.check {
            crate::layout::Check::Bcd | crate::layout::Check::BcdLeftPad | crate::layout::Check::Any => 0,
            crate::layout::Check::Printable
            | crate::layout::Check::AlnumSpace
            | crate::layout::Check::NumericSpecial => b' ',
            _ => b'0',
        };
        work[start..end].fill(filler);
        if matches!(lay.check, crate::layout::Check::SignedAmount) {
            work[start] = b'C';
        }
        left_out = left_out.with(id);
        repairs += 1;
    };
    let parsed = Message::from_parts(Bytes::from(work), index);
    let mut owned = crate::OwnedMessage::from(&parsed);
    for id in FieldId::all_values().filter(|&id| left_out.contains(id)) {
        owned.remove(id);
    }
    let bytes = owned.to_bytes(dialect).ok()?;
    let msg = Message::parse(dialect, bytes).ok()?;
    Some((msg, left_out))
}

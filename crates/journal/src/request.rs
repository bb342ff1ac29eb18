//! A request as the journal keeps it (PCI DSS 3.3.1, 3.5.1): never its track data, CVV
//! data, PIN block or ICC data (the fields of [`FieldSet::SECRETS`] are dropped before the
//! record is made), and its PAN only encrypted (AES-256-GCM, with the id of the key so keys
//! can rotate), plus the first six and last four digits for display. What is left is enough
//! to answer a repeat from its outcome and to reverse it after a restart.
//!
//! ```text
//!  0   1         5             17        19              19+c   25   29    30    32
//! +---+---------+-------------+---------+---------------+------+----+-----+-----+------+
//! | 1 | key id  | nonce (12)  | c (u16) | PAN sealed (c)| bin6 |last4|dial.| n u16| body |
//! +---+---------+-------------+---------+---------------+------+----+-----+-----+------+
//!  version, little-endian integers; the body is the request in its dialect without DE 2
//!  and without the secret fields; the sealed PAN's associated data is the key id and body.
//! ```
//!
//! A request without a PAN (a QR payment: the wallet's account is not a card) is kept with
//! nothing sealed (`c` = 0) and spaces for the first six and last four digits; a PAN shorter
//! than ten digits is sealed and shows spaces there too (its digits would all show).
//!
//! Sans-IO: the caller supplies the key (read from the key file the configuration names)
//! and a nonce that is never reused with that key (the I/O layer draws it from the system's
//! random source).

use std::fmt;

use bytes::Bytes;
use corridor_wire::{de, Dialect, FieldSet, Message, OwnedMessage};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

/// The layout version this module writes.
const VERSION: u8 = 1;

/// An AES-256 key for the PANs the journal stores, with the id records carry.
pub struct PanKey {
    id: u32,
    key: LessSafeKey,
}

impl fmt::Debug for PanKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl PanKey {
    /// Key `id` from its 32 bytes.
    ///
    /// # Errors
    ///
    /// Never for 32 bytes (ring's own check).
    pub fn new(id: u32, bytes: &[u8; 32]) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::Key)?;
        Ok(Self { id, key: LessSafeKey::new(key) })
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// Why a request cannot be sealed or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The key was refused.
    Key,
    /// The request has no readable PAN (DE 2).
    NoPan,
    /// The request could not be re-encoded without its secret fields.
    Encode,
    /// Encryption failed.
    Seal,
    /// The payload is not one this version wrote (short, or another version).
    Malformed,
    /// The record was sealed with another key than the one given.
    WrongKey {
        /// The record's key id.
        record: u32,
        /// The given key's id.
        given: u32,
    },
    /// The PAN does not decrypt: the record or the key is not what it was.
    Open,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key => f.write_str("the PAN key was refused"),
            Self::NoPan => f.write_str("the request has no readable PAN"),
            Self::Encode => f.write_str("the request cannot be encoded without its secret fields"),
            Self::Seal => f.write_str("the PAN could not be encrypted"),
            Self::Malformed => f.write_str("not a journaled request of this version"),
            Self::WrongKey { record, given } => write!(f, "sealed with key {record}, given key {given}"),
            Self::Open => f.write_str("the PAN does not decrypt (the record or the key changed)"),
        }
    }
}

impl std::error::Error for SealError {}

/// What a journaled request shows without its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedView {
    /// The key it was sealed with.
    pub key_id: u32,
    /// The PAN's first six digits.
    pub first6: [u8; 6],
    /// Its last four digits.
    pub last4: [u8; 4],
    /// The request's dialect.
    pub dialect: Dialect,
    /// The request without DE 2 and the secret fields.
    pub body: Bytes,
}

impl SealedView {
    /// The PAN as it may be shown, `476173******` and the last four (the middle digits'
    /// count is not kept: six stars); `None` for a request without one, or one too short to
    /// show any digits.
    #[must_use]
    pub fn masked_pan(&self) -> Option<String> {
        if self.first6 == *b"      " {
            return None;
        }
        Some(format!(
            "{}******{}",
            String::from_utf8_lossy(&self.first6),
            String::from_utf8_lossy(&self.last4)
        ))
    }
}

fn dialect_byte(d: Dialect) -> u8 {
    match d {
        Dialect::Native => 0,
        Dialect::Iso87Ascii => 1,
        Dialect::Iso87Hex => 2,
    }
}

fn dialect_of(b: u8) -> Option<Dialect> {
    [Dialect::Native, Dialect::Iso87Ascii, Dialect::Iso87Hex].into_iter().find(|&d| dialect_byte(d) == b)
}

/// Appends the journal payload of `req` to `out`: secrets dropped, the PAN sealed with
/// `key` under `nonce`. `scratch` is working space (kept by the caller between calls, so a
/// request costs no allocation).
///
/// # Errors
///
/// No readable PAN, or a request that cannot be re-encoded.
pub fn seal<B: AsRef<[u8]>, I: std::borrow::Borrow<corridor_wire::MessageIndex>>(
    req: &Message<B, I>,
    key: &PanKey,
    nonce: [u8; 12],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let pan = req.pan();
    if pan.is_none() && req.has(de::PAN) {
        // There, but not a readable PAN: not kept silently without it.
        return Err(SealError::NoPan);
    }
    let digits = pan.as_ref().map_or(&[][..], |p| p.digits());
    let dialect = req.dialect();
    let keep = FieldSet::VALUES.without(FieldSet::SECRETS).without(FieldSet::of(&[de::PAN]));
    // The associated data — the key id, then the body — built where the body is encoded.
    scratch.clear();
    scratch.extend_from_slice(&key.id.to_le_bytes());
    req.derive(req.mti(), keep, &[], dialect, scratch).map_err(|_| SealError::Encode)?;
    let body = &scratch[4..];
    // At most 19 digits (a PAN's longest).
    let mut pan_buf = [0u8; 19];
    let sealed = pan_buf.get_mut(..digits.len()).ok_or(SealError::NoPan)?;
    sealed.copy_from_slice(digits);
    let tag = if digits.is_empty() {
        None
    } else {
        let tag = key
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&scratch[..]), sealed)
            .map_err(|_| SealError::Seal)?;
        Some(tag)
    };
    let tag = tag.as_ref().map_or(&[][..], AsRef::as_ref);
    out.reserve(1 + 4 + 12 + 2 + sealed.len() + tag.len() + 10 + 1 + 2 + body.len());
    out.push(VERSION);
    out.extend_from_slice(&key.id.to_le_bytes());
    out.extend_from_slice(&nonce);
    // At most 19 digits and a 16-byte tag.
    out.extend_from_slice(&((sealed.len() + tag.len()) as u16).to_le_bytes());
    out.extend_from_slice(sealed);
    out.extend_from_slice(tag);
    if digits.len() >= 10 {
        out.extend_from_slice(&digits[..6]);
        out.extend_from_slice(&digits[digits.len() - 4..]);
    } else {
        out.extend_from_slice(b"          ");
    }
    out.push(dialect_byte(dialect));
    // A body is at most a frame, which fits u16 (corridor-wire's limits).
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// The associated data of a sealed PAN: its key id and the body it belongs to, so that a
/// sealed PAN cannot be moved to another record unnoticed.
fn associated(key_id: u32, body: &[u8]) -> Vec<u8> {
    let mut a = key_id.to_le_bytes().to_vec();
    a.extend_from_slice(body);
    a
}

struct Parts<'a> {
    key_id: u32,
    nonce: [u8; 12],
    sealed: &'a [u8],
    first6: [u8; 6],
    last4: [u8; 4],
    dialect: Dialect,
    body: &'a [u8],
}

fn parts(p: &[u8]) -> Option<Parts<'_>> {
    if *p.first()? != VERSION {
        return None;
    }
    let key_id = u32::from_le_bytes(p.get(1..5)?.try_into().ok()?);
    let nonce: [u8; 12] = p.get(5..17)?.try_into().ok()?;
    let c = usize::from(u16::from_le_bytes(p.get(17..19)?.try_into().ok()?));
    let sealed = p.get(19..19 + c)?;
    let at = 19 + c;
    let first6: [u8; 6] = p.get(at..at + 6)?.try_into().ok()?;
    let last4: [u8; 4] = p.get(at + 6..at + 10)?.try_into().ok()?;
    let dialect = dialect_of(*p.get(at + 10)?)?;
    let n = usize::from(u16::from_le_bytes(p.get(at + 11..at + 13)?.try_into().ok()?));
    let body = p.get(at + 13..at + 13 + n)?;
    (at + 13 + n == p.len()).then_some(Parts { key_id, nonce, sealed, first6, last4, dialect, body })
}

/// What a payload shows without the key.
///
/// # Errors
///
/// [`SealError::Malformed`].
pub fn view(payload: &[u8]) -> Result<SealedView, SealError> {
    let p = parts(payload).ok_or(SealError::Malformed)?;
    Ok(SealedView {
        key_id: p.key_id,
        first6: p.first6,
        last4: p.last4,
        dialect: p.dialect,
        body: Bytes::copy_from_slice(p.body),
    })
}

/// The request a payload holds, its PAN decrypted with `key` and put back as DE 2 (its
/// secret fields are gone for good).
///
/// # Errors
///
/// A payload of another layout, another key's, or one that does not decrypt.
pub fn open(payload: &[u8], key: &PanKey) -> Result<OwnedMessage, SealError> {
    let p = parts(payload).ok_or(SealError::Malformed)?;
    let msg = Message::parse(p.dialect, Bytes::copy_from_slice(p.body)).map_err(|_| SealError::Malformed)?;
    let mut owned = OwnedMessage::from(&msg);
    if p.sealed.is_empty() {
        // A request without a PAN: nothing was sealed, no key is needed.
        return Ok(owned);
    }
    if p.key_id != key.id {
        return Err(SealError::WrongKey { record: p.key_id, given: key.id });
    }
    let mut sealed = p.sealed.to_vec();
    let aad = associated(p.key_id, p.body);
    let pan = key
        .key
        .open_in_place(Nonce::assume_unique_for_key(p.nonce), Aad::from(&aad[..]), &mut sealed)
        .map_err(|_| SealError::Open)?;
    owned.set(de::PAN, pan.to_vec()).map_err(|_| SealError::Malformed)?;
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corridor_wire::{FieldId, Mti};

    const PAN: &str = "4761739001010010";

    fn request() -> OwnedMessage {
        let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
        let f = |n| FieldId::new(n).unwrap();
        m.set(de::PAN, PAN).unwrap();
        m.set(de::PROCESSING_CODE, "000000").unwrap();
        m.set(de::AMOUNT, "000000012500").unwrap();
        m.set(de::STAN, "000042").unwrap();
        m.set(de::ACQUIRER_ID, "12345678").unwrap();
        m.set(f(35), format!("{PAN}=29121011234567890")).unwrap();
        m.set(f(45), format!("B{PAN}^CARDHOLDER/TEST^2912101123456789")).unwrap();
        m.set(de::PIN_BLOCK, vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]).unwrap();
        // ICC data with tag 57 (track 2 equivalent) and 5A (the PAN).
        m.set(
            f(55),
            vec![0x57, 0x08, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x00, 0x10, 0x5A, 0x02, 0x47, 0x61],
        )
        .unwrap();
        m.set(de::RRN, "533022000042").unwrap();
        m
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_request_without_a_pan_is_kept_whole_and_opens_without_a_key() {
        let key = PanKey::new(7, &[0x42; 32]).unwrap();
        let mut m = request();
        m.remove(de::PAN);
        m.set(FieldId::new(126).unwrap(), "000201010212".as_bytes().to_vec()).unwrap();
        let msg = Message::parse(Dialect::Native, m.to_bytes(Dialect::Native).unwrap()).unwrap();
        let mut payload = Vec::new();
        seal(&msg, &key, [9; 12], &mut Vec::new(), &mut payload).unwrap();
        let v = view(&payload).unwrap();
        assert_eq!((&v.first6, &v.last4), (b"      ", b"    "));
        assert_eq!(v.masked_pan(), None);
        let other = PanKey::new(8, &[0x43; 32]).unwrap();
        let back = open(&payload, &other).unwrap();
        assert_eq!(back.get(de::PAN), None);
        assert_eq!(back.get(FieldId::new(126).unwrap()), Some(&b"000201010212"[..]));
        assert_eq!(back.get(de::PIN_BLOCK), None, "secrets are still dropped");
        // A PAN too short to show its first six and last four: sealed, shown as spaces.
        let mut short = request();
        short.set(de::PAN, "123456789").unwrap();
        let msg = Message::parse(Dialect::Native, short.to_bytes(Dialect::Native).unwrap()).unwrap();
        let mut payload = Vec::new();
        seal(&msg, &key, [9; 12], &mut Vec::new(), &mut payload).unwrap();
        assert_eq!(&view(&payload).unwrap().first6, b"      ");
        assert!(!contains(&payload, b"123456789"));
        assert_eq!(open(&payload, &key).unwrap().get(de::PAN), Some(&b"123456789"[..]));
    }

    #[test]
    fn no_card_data_is_stored_and_the_pan_comes_back_only_with_its_key() {
        let key = PanKey::new(7, &[0x42; 32]).unwrap();
        for dialect in [Dialect::Native, Dialect::Iso87Ascii, Dialect::Iso87Hex] {
            let body = request().to_bytes(dialect).unwrap();
            let msg = Message::parse(dialect, body).unwrap();
            let mut payload = Vec::new();
            seal(&msg, &key, [9; 12], &mut Vec::new(), &mut payload).unwrap();
            // The PAN in ASCII and in BCD, track data, the PIN block and the ICC bytes:
            // nowhere in what would be written.
            let bcd_pan = [0x47u8, 0x61, 0x73, 0x90, 0x01, 0x01, 0x00, 0x10];
            for (what, needle) in [
                ("PAN", PAN.as_bytes()),
                ("PAN (BCD)", &bcd_pan[..]),
                ("track 2", b"=29121011234567890".as_slice()),
                ("track 1", b"CARDHOLDER".as_slice()),
                ("PIN block", &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF][..]),
                ("PIN block (hex)", b"0123456789ABCDEF".as_slice()),
                ("middle digits", b"739001".as_slice()),
            ] {
                assert!(!contains(&payload, needle), "{dialect}: the payload holds the {what}");
            }
            let v = view(&payload).unwrap();
            assert_eq!((v.key_id, &v.first6, &v.last4, v.dialect), (7, b"476173", b"0010", dialect));
            let back = open(&payload, &key).unwrap();
            assert_eq!(back.get(de::PAN), Some(PAN.as_bytes()));
            assert_eq!(back.get(de::RRN), Some(&b"533022000042"[..]));
            for gone in [35u8, 45, 52, 55] {
                assert!(back.get(FieldId::new(gone).unwrap()).is_none(), "DE {gone} is never stored");
            }
            // Another key, a tampered body, a truncated payload: refused.
            let other = PanKey::new(8, &[0x42; 32]).unwrap();
            assert_eq!(open(&payload, &other).unwrap_err(), SealError::WrongKey { record: 7, given: 8 });
            let same_id_other_bytes = PanKey::new(7, &[0x43; 32]).unwrap();
            assert_eq!(open(&payload, &same_id_other_bytes).unwrap_err(), SealError::Open);
            let mut tampered = payload.clone();
            let n = tampered.len();
            tampered[n - 1] ^= 1;
            assert!(open(&tampered, &key).is_err());
            assert_eq!(view(&payload[..payload.len() - 1]).unwrap_err(), SealError::Malformed);
        }
    }

    #[test]
    fn a_sealed_request_is_the_same_bytes_it_always_was() {
        // Journals written before keep opening: the layout, the associated data and the
        // encryption of a fixed request under a fixed key and nonce, byte for byte.
        let key = PanKey::new(7, &[0x42; 32]).unwrap();
        let msg = Message::parse(Dialect::Native, request().to_bytes(Dialect::Native).unwrap()).unwrap();
        let mut payload = Vec::new();
        seal(&msg, &key, [9; 12], &mut Vec::new(), &mut payload).unwrap();
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "0107000000090909090909090909090909200009fe9f5b66aa7e79cfb640bce609947c79b35ee616",
                "12d0ab876dc0b3eb8db5d03437363137333030313000270002003020000108000000000000000000",
                "0125000000420812345678353333303232303030303432"
            )
        );
    }
}

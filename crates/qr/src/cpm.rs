//! Consumer-presented EMV QR codes (EMVCo QRCPS-CPM): the wallet shows a code, the merchant's
//! terminal reads it and asks for a card-style authorization.
//!
//! The payload is base64 text of BER-TLV data objects: the payload format indicator `85`
//! (`CPV01`) first, then one or more application templates `61` and at most one common data
//! template `62`. A template holds the application's identity and card data — `4F` (AID),
//! `50` (label), `57` (track 2 equivalent data), `5A` (PAN), `5F20` (cardholder name),
//! `5F24` (expiry), `5F34` (PAN sequence number), `9F08`, `9F25`, … — and a transparent
//! template, `63` in an application template or `64` in the common one, with the data the
//! issuer checks: the cryptogram (`9F26`), its counter (`9F36`), the unpredictable number
//! (`9F37`), the issuer application data (`9F10`), and so on. What an application template
//! lacks, the common data template provides.
//!
//! [`Cpm::authorization`] maps one application to the fields of an authorization request:
//! DE 2 (PAN), DE 14 (expiry), DE 23 (PAN sequence), DE 35 (track 2), DE 22 (`030`: read
//! from a QR code) and DE 55, the ICC data: the transparent templates' objects, as they came.

use std::fmt;

use base64::Engine as _;

use crate::limits::{CPM_APPLICATIONS_MAX, CPM_BYTES_MAX, CPM_OBJECTS_MAX, ICC_BYTES_MAX};

/// One BER-TLV data object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag, its bytes big-endian (`0x5F20`).
    pub tag: u32,
    /// The value.
    pub value: &'a [u8],
    /// The whole object, tag and length included.
    pub raw: &'a [u8],
    /// Where it starts in the decoded payload.
    pub offset: usize,
}

impl Tlv<'_> {
    /// Whether the tag is constructed (its value holds objects).
    #[must_use]
    pub const fn constructed(&self) -> bool {
        let first = if self.tag > 0xFF_FFFF {
            self.tag >> 24
        } else if self.tag > 0xFFFF {
            self.tag >> 16
        } else if self.tag > 0xFF {
            self.tag >> 8
        } else {
            self.tag
        };
        first & 0x20 != 0
    }
}

/// Why a consumer-presented payload cannot be used. Offsets count bytes of the decoded data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpmError {
    /// Not base64 text.
    NotBase64,
    /// More than [`CPM_BYTES_MAX`] bytes once decoded.
    TooLong {
        /// Decoded bytes.
        bytes: usize,
    },
    /// A tag or length runs past the data, or a length is not one BER allows here.
    BadTlv {
        /// Where the object starts.
        offset: usize,
    },
    /// More than [`CPM_OBJECTS_MAX`] objects in one template.
    TooManyObjects,
    /// The first object is not `85` holding `CPV01`.
    BadFormatIndicator,
    /// An object at the top level other than `85`, `61` and `62`, or a second `62`.
    Unexpected {
        /// Its tag.
        tag: u32,
        /// Where it starts.
        offset: usize,
    },
    /// No application template, or more than [`CPM_APPLICATIONS_MAX`].
    Applications {
        /// How many there are.
        count: usize,
    },
    /// No application template with this index.
    NoApplication {
        /// The index asked for.
        index: usize,
    },
    /// The transparent templates hold more than DE 55 carries ([`ICC_BYTES_MAX`]).
    IccTooLong {
        /// Their bytes.
        bytes: usize,
    },
    /// A template does not hold objects.
    BadTemplate {
        /// Its tag.
        tag: u32,
        /// Where it starts.
        offset: usize,
    },
}

impl fmt::Display for CpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBase64 => write!(f, "not base64 text"),
            Self::TooLong { bytes } => write!(f, "{bytes} bytes decoded: more than {CPM_BYTES_MAX}"),
            Self::BadTlv { offset } => write!(f, "at byte {offset}: not a BER-TLV data object"),
            Self::TooManyObjects => write!(f, "more than {CPM_OBJECTS_MAX} objects in one template"),
            Self::BadFormatIndicator => {
                write!(f, "the first object must be 85 (payload format indicator) holding \"CPV01\"")
            }
            Self::Unexpected { tag, offset } => {
                write!(f, "tag {tag:X} at byte {offset}: only 85, 61 and one 62 belong at the top level")
            }
            Self::Applications { count } => {
                write!(f, "{count} application templates (61): 1 to {CPM_APPLICATIONS_MAX}")
            }
            Self::NoApplication { index } => write!(f, "no application template {index}"),
            Self::IccTooLong { bytes } => {
                write!(f, "{bytes} bytes of ICC data: DE 55 carries {ICC_BYTES_MAX}")
            }
            Self::BadTemplate { tag, offset } => {
                write!(f, "template {tag:X} at byte {offset}: its value is not data objects")
            }
        }
    }
}

impl std::error::Error for CpmError {}

/// The objects of `data` (one level), `base` its offset in the payload.
///
/// # Errors
///
/// [`CpmError::BadTlv`] or [`CpmError::TooManyObjects`].
pub fn tlvs(data: &[u8], base: usize) -> Result<Vec<Tlv<'_>>, CpmError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if out.len() >= CPM_OBJECTS_MAX {
            return Err(CpmError::TooManyObjects);
        }
        let start = at;
        let bad = CpmError::BadTlv { offset: base + start };
        let first = *data.get(at).ok_or(bad.clone())?;
        at += 1;
        let mut tag = u32::from(first);
        if first & 0x1F == 0x1F {
            // Subsequent tag bytes while bit 8 is set; at most three more (a 4-byte tag).
            loop {
                let b = *data.get(at).ok_or(bad.clone())?;
                at += 1;
                tag = (tag << 8) | u32::from(b);
                if b & 0x80 == 0 {
                    break;
                }
                if at - start >= 4 {
                    return Err(bad);
                }
            }
        }
        let l = *data.get(at).ok_or(bad.clone())?;
        at += 1;
        let len = match l {
            0..=0x7F => usize::from(l),
            0x81 => usize::from(*data.get(at).ok_or(bad.clone())?),
            0x82 => usize::from(u16::from_be_bytes([
                *data.get(at).ok_or(bad.clone())?,
                *data.get(at + 1).ok_or(bad.clone())?,
            ])),
            _ => return Err(bad),
        };
        at += match l {
            0x81 => 1,
            0x82 => 2,
            _ => 0,
        };
        let end = at.checked_add(len).filter(|&e| e <= data.len()).ok_or(bad)?;
        out.push(Tlv { tag, value: &data[at..end], raw: &data[start..end], offset: base + start });
        at = end;
    }
    Ok(out)
}

/// An application (or the common data) template, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    /// Its objects other than the transparent template, in order, as `(tag, value)`.
    pub objects: Vec<(u32, Vec<u8>)>,
    /// The transparent template's objects (`63` or `64`), as they came: DE 55's content.
    pub icc: Vec<u8>,
}

impl Template {
    /// The value of `tag`.
    #[must_use]
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.objects.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.as_slice())
    }
}

/// A consumer-presented payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpm {
    /// The application templates (`61`), in order.
    pub applications: Vec<Template>,
    /// The common data template (`62`), when there is one.
    pub common: Option<Template>,
}

fn template(t: &Tlv<'_>, transparent: u32) -> Result<Template, CpmError> {
    let bad = CpmError::BadTemplate { tag: t.tag, offset: t.offset };
    let inner = tlvs(t.value, t.offset + (t.raw.len() - t.value.len())).map_err(|_| bad.clone())?;
    let mut out = Template::default();
    for o in inner {
        if o.tag == transparent {
            // Checked to be objects: the issuer parses them.
            tlvs(o.value, 0).map_err(|_| CpmError::BadTemplate { tag: o.tag, offset: o.offset })?;
            out.icc.extend_from_slice(o.value);
        } else {
            out.objects.push((o.tag, o.value.to_vec()));
        }
    }
    Ok(out)
}

/// Decodes a consumer-presented payload from its base64 text (standard alphabet, padded or
/// not; surrounding whitespace ignored).
///
/// # Errors
///
/// See [`CpmError`].
pub fn decode_cpm(text: &str) -> Result<Cpm, CpmError> {
    let text = text.trim();
    // A bound before decoding: base64 is 4 characters for 3 bytes.
    if text.len() > CPM_BYTES_MAX.div_ceil(3) * 4 + 4 {
        return Err(CpmError::TooLong { bytes: text.len() / 4 * 3 });
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(text).map_err(|_| CpmError::NotBase64)?;
    if bytes.len() > CPM_BYTES_MAX {
        return Err(CpmError::TooLong { bytes: bytes.len() });
    }
    let top = tlvs(&bytes, 0)?;
    match top.first() {
        Some(t) if t.tag == 0x85 && t.value == b"CPV01" => {}
        _ => return Err(CpmError::BadFormatIndicator),
    }
    let mut applications = Vec::new();
    let mut common = None;
    for t in &top[1..] {
        match t.tag {
            0x61 => applications.push(template(t, 0x63)?),
            0x62 if common.is_none() => common = Some(template(t, 0x64)?),
            tag => return Err(CpmError::Unexpected { tag, offset: t.offset }),
        }
    }
    if applications.is_empty() || applications.len() > CPM_APPLICATIONS_MAX {
        return Err(CpmError::Applications { count: applications.len() });
    }
    Ok(Cpm { applications, common })
}

/// The fields of an authorization request built from one application of a
/// consumer-presented code. Text fields are in the dictionary's code sets.
#[derive(Clone, PartialEq, Eq)]
pub struct CardAuthorization {
    /// DE 2, the PAN's digits.
    pub pan: Option<String>,
    /// DE 14, `YYMM`.
    pub expiry: Option<String>,
    /// DE 22, point-of-service entry mode: `03` (bar code / QR), PIN capability `0`.
    pub entry_mode: &'static str,
    /// DE 23, three digits.
    pub pan_sequence: Option<String>,
    /// DE 35, the track 2 equivalent data: digits with `D` as the separator.
    pub track2: Option<String>,
    /// DE 55, the ICC data (BER-TLV), at most [`ICC_BYTES_MAX`] bytes.
    pub icc: Vec<u8>,
    /// The application's AID (`4F`), hex.
    pub aid: Option<String>,
    /// Its label (`50`).
    pub label: Option<String>,
}

impl fmt::Debug for CardAuthorization {
    /// The PAN and track 2 masked: first six and last four digits at most.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardAuthorization")
            .field("pan", &self.pan.as_deref().map(mask_pan))
            .field("expiry", &self.expiry)
            .field("entry_mode", &self.entry_mode)
            .field("pan_sequence", &self.pan_sequence)
            .field("track2", &self.track2.as_ref().map(|_| "(present)"))
            .field("icc_bytes", &self.icc.len())
            .field("aid", &self.aid)
            .field("label", &self.label)
            .finish()
    }
}

/// A PAN shown as its first six and last four digits (all of it masked when it is shorter
/// than 13 digits).
#[must_use]
pub fn mask_pan(pan: &str) -> String {
    let n = pan.len();
    if n < 13 || !pan.is_ascii() {
        return "*".repeat(n.min(19));
    }
    format!("{}{}{}", &pan[..6], "*".repeat(n - 10), &pan[n - 4..])
}

/// BCD nibbles as text: digits, `D` for the separator, trailing `F` padding dropped; `None`
/// for any other nibble.
fn nibbles(b: &[u8]) -> Option<String> {
    let mut s = String::with_capacity(b.len() * 2);
    for n in b.iter().flat_map(|x| [x >> 4, x & 0xF]) {
        match n {
            0..=9 => s.push(char::from(b'0' + n)),
            0xD => s.push('D'),
            0xF => {}
            _ => return None,
        }
    }
    Some(s)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

impl Cpm {
    /// The authorization fields for application `index` (0 for the first), the common data
    /// template filling what it lacks.
    ///
    /// # Errors
    ///
    /// [`CpmError::NoApplication`], or [`CpmError::IccTooLong`] when the transparent
    /// templates do not fit DE 55 (never cut: the issuer checks the cryptogram over them).
    pub fn authorization(&self, index: usize) -> Result<CardAuthorization, CpmError> {
        let app = self.applications.get(index).ok_or(CpmError::NoApplication { index })?;
        let get = |tag| app.get(tag).or_else(|| self.common.as_ref().and_then(|c| c.get(tag)));
        let track2 = get(0x57).and_then(nibbles).filter(|t| t.len() <= 37);
        let pan = get(0x5A)
            .and_then(nibbles)
            .filter(|p| (12..=19).contains(&p.len()) && !p.contains('D'))
            .or_else(|| track2.as_deref().and_then(|t| t.split_once('D')).map(|(p, _)| p.to_owned()));
        let expiry =
            get(0x5F24).and_then(nibbles).filter(|e| e.len() == 6).map(|e| e[..4].to_owned()).or_else(|| {
                track2
                    .as_deref()
                    .and_then(|t| t.split_once('D'))
                    .and_then(|(_, r)| r.get(..4))
                    .map(str::to_owned)
            });
        let pan_sequence = get(0x5F34).filter(|v| v.len() == 1).and_then(nibbles).map(|s| format!("{s:0>3}"));
        let mut icc = app.icc.clone();
        if let Some(c) = &self.common {
            icc.extend_from_slice(&c.icc);
        }
        if icc.len() > ICC_BYTES_MAX {
            return Err(CpmError::IccTooLong { bytes: icc.len() });
        }
        Ok(CardAuthorization {
            pan,
            expiry,
            entry_mode: "030",
            pan_sequence,
            track2,
            icc,
            aid: get(0x4F).map(hex),
            label: get(0x50).map(|l| String::from_utf8_lossy(l).into_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EMVCo QRCPS-CPM's own example (as the open implementations reproduce it): two
    /// application templates and a common data template with the PAN, the cardholder name,
    /// the language and the transparent template.
    const EMVCO_EXAMPLE: &str = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==";

    #[test]
    fn the_specifications_example_decodes_and_maps_to_an_authorization() {
        let cpm = decode_cpm(EMVCO_EXAMPLE).unwrap();
        assert_eq!(cpm.applications.len(), 2);
        assert_eq!(cpm.applications[0].get(0x50), Some(&b"Product1"[..]));
        let common = cpm.common.as_ref().unwrap();
        assert_eq!(common.get(0x5F20), Some(&b"CARDHOLDER/EMV"[..]));
        let auth = cpm.authorization(1).unwrap();
        assert_eq!(auth.aid.as_deref(), Some("A0000000666666"));
        assert_eq!(auth.label.as_deref(), Some("Product2"));
        assert_eq!(auth.pan.as_deref(), Some("1234567890123458"));
        assert_eq!(auth.entry_mode, "030");
        // DE 55: 9F10, 9F26 (the cryptogram), 9F36, 9F37, as the template held them.
        let icc = tlvs(&auth.icc, 0).unwrap();
        let tags: Vec<u32> = icc.iter().map(|t| t.tag).collect();
        assert_eq!(tags, [0x9F10, 0x9F26, 0x9F36, 0x9F37]);
        assert_eq!(icc[1].value, [0x58, 0x4F, 0xD3, 0x85, 0xFA, 0x23, 0x4B, 0xCC]);
        assert_eq!(cpm.authorization(2), Err(CpmError::NoApplication { index: 2 }));
        let shown = format!("{auth:?}");
        assert!(shown.contains("123456******3458") && !shown.contains("1234567890123458"), "{shown}");
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn track_2_gives_the_pan_and_expiry_when_5a_is_absent() {
        // 61 { 4F A0000000031010, 57 4761739001010010 D 2512 201 1234 F, 5F34 01, 63 { 9F26 .. } }
        let mut app = vec![0x4F, 7, 0xA0, 0, 0, 0, 0x03, 0x10, 0x10];
        app.extend([
            0x57, 0x10, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x00, 0x10, 0xD2, 0x51, 0x22, 0x01, 0x12, 0x34,
            0x5F, 0xFF,
        ]);
        app.extend([0x5F, 0x34, 1, 0x01]);
        app.extend([0x63, 11, 0x9F, 0x26, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        let mut all = vec![0x85, 5];
        all.extend(b"CPV01");
        all.push(0x61);
        all.push(u8::try_from(app.len()).unwrap());
        all.extend(&app);
        let auth = decode_cpm(&b64(&all)).unwrap().authorization(0).unwrap();
        assert_eq!(auth.pan.as_deref(), Some("4761739001010010"));
        assert_eq!(auth.expiry.as_deref(), Some("2512"));
        assert_eq!(auth.track2.as_deref(), Some("4761739001010010D251220112345"));
        assert_eq!(auth.pan_sequence.as_deref(), Some("001"));
        assert_eq!(auth.icc, [0x9F, 0x26, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn bad_payloads_are_named_errors() {
        assert_eq!(decode_cpm("not base64!"), Err(CpmError::NotBase64));
        assert_eq!(
            decode_cpm(&b64(&[0x85, 5, b'C', b'P', b'V', b'0', b'2'])),
            Err(CpmError::BadFormatIndicator)
        );
        assert_eq!(
            decode_cpm(&b64(&[0x85, 5, b'C', b'P', b'V', b'0', b'1'])),
            Err(CpmError::Applications { count: 0 })
        );
        assert_eq!(decode_cpm(&b64(&[0x85, 9, b'C'])), Err(CpmError::BadTlv { offset: 0 }));
        assert_eq!(
            decode_cpm(&b64(&[0x85, 5, b'C', b'P', b'V', b'0', b'1', 0x70, 0])),
            Err(CpmError::Unexpected { tag: 0x70, offset: 7 })
        );
        // A template whose value is not objects.
        assert!(matches!(
            decode_cpm(&b64(&[0x85, 5, b'C', b'P', b'V', b'0', b'1', 0x61, 2, 0x4F, 9])),
            Err(CpmError::BadTemplate { tag: 0x61, .. })
        ));
        // A long-form length past the data, a tag that never ends.
        assert!(tlvs(&[0x9F, 0x26, 0x82, 0xFF, 0xFF], 0).is_err());
        assert!(tlvs(&[0x9F, 0x80, 0x80, 0x80, 0x80, 1, 0], 0).is_err());
        assert!(decode_cpm(&"A".repeat(4096)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_or_bytes_is_an_error_or_a_payload_never_a_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = tlvs(&bytes, 0);
            if let Ok(cpm) = decode_cpm(&b64(&bytes)) {
                for i in 0..cpm.applications.len() {
                    if let Ok(a) = cpm.authorization(i) {
                        proptest::prop_assert!(a.icc.len() <= ICC_BYTES_MAX);
                    }
                }
            }
        }
    }
}

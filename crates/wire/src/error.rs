//! The codec's errors.
//!
//! Two families: [`DecodeError`] is the peer's fault (bytes from the network that break the
//! protocol) and closes or declines; [`EncodeError`] is the caller's (a value that does not fit
//! the dictionary). Both name the field, what was expected and what came.

use std::fmt;

/// Which fixed part of a message a [`DecodeError::Truncated`] ran out in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The message type indicator.
    Mti,
    /// The primary bitmap.
    PrimaryBitmap,
    /// The secondary bitmap (DE 1).
    SecondaryBitmap,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mti => "message type indicator",
            Self::PrimaryBitmap => "primary bitmap",
            Self::SecondaryBitmap => "secondary bitmap",
        })
    }
}

/// Bytes that do not follow the protocol. Never a panic: every decoder returns one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A frame header declares a body larger than the link's maximum.
    FrameTooLarge {
        /// Declared body length in bytes.
        declared: usize,
        /// The limit in force.
        max: usize,
    },
    /// A length header that includes itself declares less than its own size.
    FrameTooSmall {
        /// Declared length.
        declared: usize,
        /// Smallest valid value.
        min: usize,
    },
    /// A four-digit ASCII length header holds something other than digits.
    InvalidLengthHeader {
        /// The header bytes as they came.
        found: [u8; 4],
    },
    /// The stream ended inside a frame.
    TruncatedFrame {
        /// Bytes buffered.
        buffered: usize,
        /// Bytes the frame needs.
        needed: usize,
    },
    /// A native frame does not start with the magic number 0x8583.
    BadMagic {
        /// What came instead.
        found: u16,
    },
    /// A native frame of a protocol version this receiver does not speak.
    UnsupportedVersion {
        /// The version byte.
        found: u8,
    },
    /// A native frame sets critical flags (high nibble) this receiver does not know.
    UnknownCriticalFlags {
        /// The unknown flag bits.
        flags: u8,
    },
    /// A native header length outside what version 1 allows.
    InvalidHeaderLength {
        /// Declared header length.
        found: usize,
        /// Smallest valid value.
        min: usize,
        /// Largest valid value.
        max: usize,
    },
    /// The message ended inside its MTI or a bitmap.
    Truncated {
        /// The part that is cut short.
        part: Part,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes that remain.
        available: usize,
    },
    /// The MTI is not four digits.
    InvalidMti {
        /// Where it starts.
        offset: usize,
    },
    /// A hex bitmap holds something other than hex digits.
    InvalidBitmap {
        /// Where it starts.
        offset: usize,
    },
    /// The bitmap announces a field the message is too short to hold.
    MissingField {
        /// The field.
        field: u8,
        /// Where it should start.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes that remain.
        available: usize,
    },
    /// A variable field's length prefix is not a number in the dialect's encoding.
    InvalidLengthPrefix {
        /// The field.
        field: u8,
        /// Where the prefix starts.
        offset: usize,
    },
    /// A variable field declares more than its maximum.
    LengthOverMax {
        /// The field.
        field: u8,
        /// Where the prefix starts.
        offset: usize,
        /// Declared length, in the dialect's units.
        declared: usize,
        /// The maximum, in the same units.
        max: usize,
    },
    /// A byte outside the field's character set.
    InvalidCharacter {
        /// The field.
        field: u8,
        /// Offset of the offending byte.
        offset: usize,
        /// The byte.
        found: u8,
        /// What the field allows.
        expected: &'static str,
    },
    /// A BCD field whose pad nibble is not the one the native dialect prescribes.
    InvalidPadding {
        /// The field.
        field: u8,
        /// Offset of the byte holding the pad nibble.
        offset: usize,
    },
    /// DE 65 is set: a third bitmap for DE 129-192, which ISO 8583:1987 does not define.
    UnsupportedTertiaryBitmap {
        /// Where the secondary bitmap starts.
        offset: usize,
    },
    /// Bytes follow the last field the bitmap announces.
    TrailingBytes {
        /// Where they start.
        offset: usize,
        /// How many.
        count: usize,
    },
}

impl DecodeError {
    /// A stable, machine-readable name for the error (used by the golden vectors and in
    /// metrics labels).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::FrameTooSmall { .. } => "frame_too_small",
            Self::InvalidLengthHeader { .. } => "invalid_length_header",
            Self::TruncatedFrame { .. } => "truncated_frame",
            Self::BadMagic { .. } => "bad_magic",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::UnknownCriticalFlags { .. } => "unknown_critical_flags",
            Self::InvalidHeaderLength { .. } => "invalid_header_length",
            Self::Truncated { .. } => "truncated",
            Self::InvalidMti { .. } => "invalid_mti",
            Self::InvalidBitmap { .. } => "invalid_bitmap",
            Self::MissingField { .. } => "missing_field",
            Self::InvalidLengthPrefix { .. } => "invalid_length_prefix",
            Self::LengthOverMax { .. } => "length_over_max",
            Self::InvalidCharacter { .. } => "invalid_character",
            Self::InvalidPadding { .. } => "invalid_padding",
            Self::UnsupportedTertiaryBitmap { .. } => "unsupported_tertiary_bitmap",
            Self::TrailingBytes { .. } => "trailing_bytes",
        }
    }

    /// The field the error is about, if it is about one.
    #[must_use]
    pub const fn field(&self) -> Option<u8> {
        match self {
            Self::MissingField { field, .. }
            | Self::InvalidLengthPrefix { field, .. }
            | Self::LengthOverMax { field, .. }
            | Self::InvalidCharacter { field, .. }
            | Self::InvalidPadding { field, .. } => Some(*field),
            _ => None,
        }
    }

    /// Whether the frame boundary is still known after this error, so the link can answer
    /// the message with a format error and go on. Framing errors lose the boundary: the
    /// link must close.
    #[must_use]
    pub const fn is_framing(&self) -> bool {
        matches!(
            self,
            Self::FrameTooLarge { .. }
                | Self::FrameTooSmall { .. }
                | Self::InvalidLengthHeader { .. }
                | Self::TruncatedFrame { .. }
                | Self::BadMagic { .. }
                | Self::UnsupportedVersion { .. }
                | Self::UnknownCriticalFlags { .. }
                | Self::InvalidHeaderLength { .. }
        )
    }
}

/// Shows a byte for an error message: printable ASCII as itself, anything else as hex.
struct ShowByte(u8);

impl fmt::Display for ShowByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}' (0x{:02X})", self.0 as char, self.0)
        } else {
            write!(f, "0x{:02X}", self.0)
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLarge { declared, max } => {
                write!(f, "frame declares {declared} bytes, more than the maximum {max}")
            }
            Self::FrameTooSmall { declared, min } => {
                write!(f, "frame declares {declared} bytes, less than its own header ({min})")
            }
            Self::InvalidLengthHeader { found } => {
                write!(f, "length header must be 4 ASCII digits, found {:02X?}", found)
            }
            Self::TruncatedFrame { buffered, needed } => {
                write!(f, "stream ended inside a frame: {buffered} of {needed} bytes")
            }
            Self::BadMagic { found } => write!(f, "native frame must start with 0x8583, found 0x{found:04X}"),
            Self::UnsupportedVersion { found } => {
                write!(f, "native frame version {found} is not supported (expected 1)")
            }
            Self::UnknownCriticalFlags { flags } => {
                write!(f, "native frame sets unknown critical flags 0x{flags:02X}")
            }
            Self::InvalidHeaderLength { found, min, max } => {
                write!(f, "native header length {found} is outside {min}-{max}")
            }
            Self::Truncated { part, offset, needed, available } => write!(
                f,
                "message ends inside the {part} at offset {offset}: needs {needed} bytes, {available} remain"
            ),
            Self::InvalidMti { offset } => write!(f, "message type indicator at offset {offset} is not 4 digits"),
            Self::InvalidBitmap { offset } => write!(f, "bitmap at offset {offset} is not hex text"),
            Self::MissingField { field, offset, needed, available } => write!(
                f,
                "field {field}: announced by the bitmap but the message ends (offset {offset}, needs {needed} bytes, {available} remain)"
            ),
            Self::InvalidLengthPrefix { field, offset } => {
                write!(f, "field {field}: length prefix at offset {offset} is not a number")
            }
            Self::LengthOverMax { field, offset, declared, max } => write!(
                f,
                "field {field}: declared length {declared} exceeds the maximum {max} (offset {offset})"
            ),
            Self::InvalidCharacter { field, offset, found, expected } => write!(
                f,
                "field {field}: expected {expected}, found {} at offset {offset}",
                ShowByte(*found)
            ),
            Self::InvalidPadding { field, offset } => {
                write!(f, "field {field}: BCD pad nibble is wrong at offset {offset}")
            }
            Self::UnsupportedTertiaryBitmap { offset } => write!(
                f,
                "DE 65 is set in the secondary bitmap at offset {offset}: DE 129-192 are not supported"
            ),
            Self::TrailingBytes { offset, count } => {
                write!(f, "{count} bytes follow the last field, at offset {offset}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A value the caller asked to encode that the dictionary or the framing does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// DE 1 (secondary bitmap) and DE 65 (tertiary bitmap indicator) follow from the fields
    /// and cannot be set.
    BitmapIsNotAValue {
        /// The field.
        field: u8,
    },
    /// A fixed field of the wrong length, or a variable one over its maximum.
    BadLength {
        /// The field.
        field: u8,
        /// The value's length (characters, or bytes for binary fields).
        len: usize,
        /// The fixed length or maximum.
        max: usize,
        /// Whether the field is fixed-length.
        fixed: bool,
    },
    /// A character outside the field's character set.
    InvalidCharacter {
        /// The field.
        field: u8,
        /// Index of the character in the value.
        index: usize,
        /// The byte.
        found: u8,
        /// What the field allows.
        expected: &'static str,
    },
    /// The encoded message does not fit the frame limit.
    FrameTooLarge {
        /// Body length in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A patch names a field that is absent or not fixed-length.
    NotPatchable {
        /// The field.
        field: u8,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BitmapIsNotAValue { field } => {
                write!(f, "field {field} is a bitmap; it follows from the fields")
            }
            Self::BadLength { field, len, max, fixed: true } => {
                write!(f, "field {field}: expected exactly {max} units, found {len}")
            }
            Self::BadLength { field, len, max, fixed: false } => {
                write!(f, "field {field}: expected at most {max} units, found {len}")
            }
            Self::InvalidCharacter { field, index, found, expected } => {
                write!(f, "field {field}: expected {expected}, found {} at index {index}", ShowByte(*found))
            }
            Self::FrameTooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the frame maximum {max}")
            }
            Self::NotPatchable { field } => {
                write!(f, "field {field} cannot be patched in place: absent or not fixed-length")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

//! Every bound the codec enforces, in one place.
//!
//! A length read from the network is compared with these before anything is reserved or
//! indexed. The relationships between them are checked at compile time.

/// Largest message body a frame may carry, in bytes. Frame decoders can be configured lower,
/// never higher. 16 KiB holds any realistic ISO 8583 message (the 1987 dictionary's largest
/// variable fields are 999 characters) while keeping a stalled peer's buffer small.
pub const FRAME_BYTES_MAX: usize = 16 * 1024;

/// Size of the native frame header defined by version 1 of the protocol.
pub const NATIVE_HEADER_BYTES: usize = 20;

/// Largest native header a version-1 receiver accepts: later minor revisions may append
/// extension bytes, which it skips.
pub const NATIVE_HEADER_BYTES_MAX: usize = 256;

/// Largest value of any one field in its canonical form (text characters or binary bytes):
/// an LLLVAR field carries at most 999 units.
pub const FIELD_UNITS_MAX: usize = 999;

/// Largest value of a field that a dialect carries in another form than its canonical one
/// (native `n` as BCD, up to 42 digits; `iso87-hex` `b` as hex text, up to 499 bytes): the
/// scratch space translation needs. Checked against the dictionary by a test.
pub const DECODED_UNITS_MAX: usize = 512;

/// Largest encoded field, prefix included, in any dialect: three prefix digits and 999 units.
pub const FIELD_BYTES_MAX: usize = 3 + FIELD_UNITS_MAX;

/// Highest data element number of ISO 8583:1987 (two bitmaps of 64 bits).
pub const FIELD_ID_MAX: u8 = 128;

/// Largest value of the ASCII four-digit length header.
pub const ASCII4_LENGTH_MAX: usize = 9_999;

// A whole field must fit in a frame.
const _: () = assert!(FIELD_BYTES_MAX < FRAME_BYTES_MAX);
// Field offsets in the message index are u16: the largest native frame must be addressable.
const _: () = assert!(FRAME_BYTES_MAX + NATIVE_HEADER_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(NATIVE_HEADER_BYTES <= NATIVE_HEADER_BYTES_MAX);
// The native header carries its own length in a u16 and body lengths in a u32.
const _: () = assert!(NATIVE_HEADER_BYTES_MAX <= u16::MAX as usize);

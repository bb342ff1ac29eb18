//! Framing: how a message body is cut out of a byte stream.
//!
//! Two families, both with the `tokio-util` decoder contract but no tokio dependency (the
//! network layer wraps them): `decode` returns `Ok(None)` until a whole frame is buffered,
//! checks the declared length against the maximum before reserving anything, and splits the
//! frame off the front of the buffer without copying.
//!
//! # Length headers (classic dialects)
//!
//! ```text
//! bin2         +--------+--------+------------------+
//!              | len (u16, BE)   |  body (len)      |     len excludes the header
//!              +--------+--------+------------------+
//! bin2-incl    | len (u16, BE)   |  body (len - 2)  |     len includes the header
//! bin4         | len (u32, BE) 4 bytes | body (len) |
//! ascii4       | '0' '2' '5' '0' |  body (250)      |     four ASCII digits
//! ```
//!
//! # The native frame header (20 bytes, big-endian)
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +-------------------------------+---------------+---------------+
//! |        magic (0x8583)         |    version    |     flags     |  0
//! +-------------------------------+---------------+---------------+
//! |       header_len (u16)        |        reserved (u16)         |  4
//! +-------------------------------+-------------------------------+
//! |                        body_len (u32)                         |  8
//! +---------------------------------------------------------------+
//! |                                                               | 12
//! +                    correlation_id (u64)                       +
//! |                                                               | 16
//! +---------------------------------------------------------------+
//! ```
//!
//! `header_len` is 20 in version 1; a receiver skips header bytes past 20 (room for minor
//! extensions). Flags in the low nibble are advisory and ignored when unknown; flags in the
//! high nibble are critical and a frame carrying an unknown one is refused.

use std::{fmt, str::FromStr};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zerocopy::{
    byteorder::network_endian::{U16, U32, U64},
    FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned,
};

use crate::{
    error::{DecodeError, EncodeError},
    limits::{ASCII4_LENGTH_MAX, FRAME_BYTES_MAX, NATIVE_HEADER_BYTES, NATIVE_HEADER_BYTES_MAX},
};

/// The length header a classic link puts in front of each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LengthHeader {
    /// Two bytes, big-endian, counting the body only.
    Bin2,
    /// Two bytes, big-endian, counting the body and the header itself.
    Bin2Inclusive,
    /// Four bytes, big-endian, counting the body only.
    Bin4,
    /// Four ASCII digits counting the body only.
    Ascii4,
}

impl LengthHeader {
    /// Every variant.
    pub const ALL: [Self; 4] = [Self::Bin2, Self::Bin2Inclusive, Self::Bin4, Self::Ascii4];

    /// The name used in configuration and on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bin2 => "bin2",
            Self::Bin2Inclusive => "bin2-incl",
            Self::Bin4 => "bin4",
            Self::Ascii4 => "ascii4",
        }
    }

    /// Bytes of the header.
    #[must_use]
    pub const fn header_bytes(self) -> usize {
        match self {
            Self::Bin2 | Self::Bin2Inclusive => 2,
            Self::Bin4 | Self::Ascii4 => 4,
        }
    }

    /// Writes the header for a body of `body_len` bytes into `dst` (exactly
    /// [`LengthHeader::header_bytes`] long), for callers that write the body first and the
    /// header after.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FrameTooLarge`] if the header cannot describe `body_len`.
    pub fn write(self, body_len: usize, dst: &mut [u8]) -> Result<(), EncodeError> {
        if body_len > self.body_bytes_max() || dst.len() != self.header_bytes() {
            return Err(EncodeError::FrameTooLarge { len: body_len, max: self.body_bytes_max() });
        }
        // body_len fits the header (checked above), so the casts keep every bit.
        match self {
            Self::Bin2 => dst.copy_from_slice(&(body_len as u16).to_be_bytes()),
            Self::Bin2Inclusive => dst.copy_from_slice(&(body_len as u16 + 2).to_be_bytes()),
            Self::Bin4 => dst.copy_from_slice(&(body_len as u32).to_be_bytes()),
            Self::Ascii4 => crate::values::write_decimal(body_len as u64, dst),
        }
        Ok(())
    }

    /// The largest body the header can describe.
    #[must_use]
    pub const fn body_bytes_max(self) -> usize {
        match self {
            Self::Bin2 => u16::MAX as usize,
            Self::Bin2Inclusive => u16::MAX as usize - 2,
            Self::Bin4 => u32::MAX as usize,
            Self::Ascii4 => ASCII4_LENGTH_MAX,
        }
    }
}

impl fmt::Display for LengthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A framing name that is not one of the supported ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFraming(pub String);

impl fmt::Display for UnknownFraming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown framing {:?}: expected native, bin2, bin2-incl, bin4 or ascii4", self.0)
    }
}

impl std::error::Error for UnknownFraming {}

impl FromStr for LengthHeader {
    type Err = UnknownFraming;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|h| h.name() == s).ok_or_else(|| UnknownFraming(s.to_owned()))
    }
}

/// Cuts length-prefixed frames out of a stream.
#[derive(Clone, Debug)]
pub struct LengthDelimited {
    header: LengthHeader,
    frame_bytes_max: usize,
}

impl LengthDelimited {
    /// A decoder for `header` accepting bodies of at most `frame_bytes_max` bytes (capped at
    /// [`FRAME_BYTES_MAX`] and at what the header can describe).
    #[must_use]
    pub fn new(header: LengthHeader, frame_bytes_max: usize) -> Self {
        let frame_bytes_max = frame_bytes_max.min(FRAME_BYTES_MAX).min(header.body_bytes_max());
        Self { header, frame_bytes_max }
    }

    /// The header variant.
    #[must_use]
    pub fn header(&self) -> LengthHeader {
        self.header
    }

    /// The body length declared by a complete header.
    fn declared(&self, h: &[u8]) -> Result<usize, DecodeError> {
        match self.header {
            LengthHeader::Bin2 => Ok(usize::from(u16::from_be_bytes([h[0], h[1]]))),
            LengthHeader::Bin2Inclusive => {
                let total = usize::from(u16::from_be_bytes([h[0], h[1]]));
                total.checked_sub(2).ok_or(DecodeError::FrameTooSmall { declared: total, min: 2 })
            }
            LengthHeader::Bin4 => {
                let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
            LengthHeader::Ascii4 => {
                let found = [h[0], h[1], h[2], h[3]];
                found
                    .iter()
                    .try_fold(0usize, |v, &c| c.is_ascii_digit().then(|| v * 10 + usize::from(c - b'0')))
                    .ok_or(DecodeError::InvalidLengthHeader { found })
            }
        }
    }

    /// Splits the next whole frame's body off `src`.
    ///
    /// # Errors
    ///
    /// A framing [`DecodeError`]: the stream can no longer be trusted and the link closes.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, DecodeError> {
        let Some((hl, body)) = self.lengths(src)? else { return Ok(None) };
        if src.len() < hl + body {
            src.reserve(hl + body - src.len());
            return Ok(None);
        }
        src.advance(hl);
        Ok(Some(src.split_to(body)))
    }

    /// The first frame's header and body lengths in `src`, once its header is buffered.
    fn lengths(&self, src: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
        let hl = self.header.header_bytes();
        if src.len() < hl {
            return Ok(None);
        }
        let body = self.declared(&src[..hl])?;
        if body > self.frame_bytes_max {
            return Err(DecodeError::FrameTooLarge { declared: body, max: self.frame_bytes_max });
        }
        Ok(Some((hl, body)))
    }

    /// Like [`LengthDelimited::decode`], for when the stream has ended: leftover bytes that
    /// are not a whole frame are an error.
    ///
    /// # Errors
    ///
    /// As `decode`, plus [`DecodeError::TruncatedFrame`].
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, DecodeError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let hl = self.header.header_bytes();
                let needed = if src.len() < hl { hl } else { hl + self.declared(&src[..hl])? };
                Err(DecodeError::TruncatedFrame { buffered: src.len(), needed })
            }
        }
    }

    /// Appends `body` with its length header to `dst`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FrameTooLarge`] if `body` is over this framer's maximum.
    pub fn encode(&self, body: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
        if body.len() > self.frame_bytes_max {
            return Err(EncodeError::FrameTooLarge { len: body.len(), max: self.frame_bytes_max });
        }
        let mut header = [0u8; 4];
        let header = &mut header[..self.header.header_bytes()];
        self.header.write(body.len(), header)?;
        dst.put_slice(header);
        dst.put_slice(body);
        Ok(())
    }
}

/// The native frame header, read in place with zerocopy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct NativeHeader {
    magic: U16,
    version: u8,
    flags: u8,
    header_len: U16,
    reserved: U16,
    body_len: U32,
    correlation: U64,
}

const _: () = assert!(std::mem::size_of::<NativeHeader>() == NATIVE_HEADER_BYTES);

impl NativeHeader {
    /// The magic number every native frame starts with.
    pub const MAGIC: u16 = 0x8583;
    /// The protocol version this codec speaks.
    pub const VERSION: u8 = 1;
    /// Advisory flag: the switch made this message itself (a decline, a reversal, an echo).
    pub const FLAG_SWITCH_ORIGIN: u8 = 0x01;
    /// Flags this version knows.
    pub const FLAGS_KNOWN: u8 = Self::FLAG_SWITCH_ORIGIN;
    /// Flags a receiver must understand to accept the frame.
    pub const FLAGS_CRITICAL: u8 = 0xF0;

    /// A version-1 header.
    #[must_use]
    pub fn new(flags: u8, body_len: u32, correlation: u64) -> Self {
        Self {
            magic: U16::new(Self::MAGIC),
            version: Self::VERSION,
            flags,
            // 20 fits u16 (checked in limits.rs).
            header_len: U16::new(NATIVE_HEADER_BYTES as u16),
            reserved: U16::new(0),
            body_len: U32::new(body_len),
            correlation: U64::new(correlation),
        }
    }

    /// The flags byte.
    #[must_use]
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The 20 header bytes as they go on the wire.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; NATIVE_HEADER_BYTES] {
        let mut out = [0u8; NATIVE_HEADER_BYTES];
        out.copy_from_slice(self.as_bytes());
        out
    }

    /// Reads a header from the start of `bytes` without checking it.
    #[must_use]
    pub fn peek(bytes: &[u8]) -> Option<Self> {
        Self::read_from_prefix(bytes).ok().map(|(h, _)| h)
    }

    /// The correlation id.
    #[must_use]
    pub fn correlation(&self) -> u64 {
        self.correlation.get()
    }

    /// Declared body length.
    #[must_use]
    pub fn body_len(&self) -> u32 {
        self.body_len.get()
    }

    /// Declared header length.
    #[must_use]
    pub fn header_len(&self) -> u16 {
        self.header_len.get()
    }

    /// Checks magic, version, critical flags and header length.
    fn check(&self) -> Result<(), DecodeError> {
        if self.magic.get() != Self::MAGIC {
            return Err(DecodeError::BadMagic { found: self.magic.get() });
        }
        if self.version != Self::VERSION {
            return Err(DecodeError::UnsupportedVersion { found: self.version });
        }
        let unknown = self.flags & Self::FLAGS_CRITICAL & !Self::FLAGS_KNOWN;
        if unknown != 0 {
            return Err(DecodeError::UnknownCriticalFlags { flags: unknown });
        }
        let hl = usize::from(self.header_len.get());
        if !(NATIVE_HEADER_BYTES..=NATIVE_HEADER_BYTES_MAX).contains(&hl) {
            return Err(DecodeError::InvalidHeaderLength {
                found: hl,
                min: NATIVE_HEADER_BYTES,
                max: NATIVE_HEADER_BYTES_MAX,
            });
        }
        Ok(())
    }
}

/// One native frame: header and body in one buffer, so the correlation id can be rewritten
/// in place and the frame forwarded as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeFrame {
    buf: BytesMut,
    body_at: usize,
}

impl NativeFrame {
    /// Builds a version-1 frame around `body`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FrameTooLarge`] if `body` is over [`FRAME_BYTES_MAX`].
    pub fn new(flags: u8, correlation: u64, body: &[u8]) -> Result<Self, EncodeError> {
        let mut buf = BytesMut::with_capacity(NATIVE_HEADER_BYTES + body.len());
        NativeFramer::new(FRAME_BYTES_MAX).encode(flags, correlation, body, &mut buf)?;
        Ok(Self { buf, body_at: NATIVE_HEADER_BYTES })
    }

    fn header_mut(&mut self) -> &mut NativeHeader {
        // A frame is only made from a buffer holding at least a checked header.
        match NativeHeader::mut_from_prefix(&mut self.buf[..]) {
            Ok((h, _)) => h,
            Err(_) => unreachable!("a NativeFrame always starts with a whole header"),
        }
    }

    /// The header.
    #[must_use]
    pub fn header(&self) -> NativeHeader {
        match NativeHeader::read_from_prefix(&self.buf[..]) {
            Ok((h, _)) => h,
            Err(_) => unreachable!("a NativeFrame always starts with a whole header"),
        }
    }

    /// The correlation id.
    #[must_use]
    pub fn correlation(&self) -> u64 {
        self.header().correlation()
    }

    /// Rewrites the correlation id in place; the rest of the frame is untouched.
    pub fn set_correlation(&mut self, correlation: u64) {
        self.header_mut().correlation = U64::new(correlation);
    }

    /// The flags byte.
    #[must_use]
    pub fn flags(&self) -> u8 {
        self.header().flags
    }

    /// The message body.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_at..]
    }

    /// The whole frame, header included, as it goes on the wire.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Splits off the body as shared `Bytes` (for parsing), keeping nothing else.
    #[must_use]
    pub fn into_body(mut self) -> Bytes {
        self.buf.split_off(self.body_at).freeze()
    }

    /// The whole frame buffer.
    #[must_use]
    pub fn into_inner(self) -> BytesMut {
        self.buf
    }
}

/// A checked native header's header and body lengths.
fn lengths(header: &NativeHeader) -> (usize, usize) {
    (usize::from(header.header_len()), usize::try_from(header.body_len()).unwrap_or(usize::MAX))
}

/// Cuts native frames out of a stream.
#[derive(Clone, Debug)]
pub struct NativeFramer {
    frame_bytes_max: usize,
}

impl NativeFramer {
    /// A decoder accepting bodies of at most `frame_bytes_max` bytes (capped at
    /// [`FRAME_BYTES_MAX`]).
    #[must_use]
    pub fn new(frame_bytes_max: usize) -> Self {
        Self { frame_bytes_max: frame_bytes_max.min(FRAME_BYTES_MAX) }
    }

    /// Splits the next whole frame off `src`.
    ///
    /// The magic number is checked as soon as two bytes are buffered, so a peer speaking
    /// another protocol is refused at once rather than after a header's worth of bytes.
    ///
    /// # Errors
    ///
    /// A framing [`DecodeError`]: the link closes.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<NativeFrame>, DecodeError> {
        let Some(header) = self.header(src)? else { return Ok(None) };
        let (hl, body) = lengths(&header);
        let total = hl + body;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        Ok(Some(NativeFrame { buf: src.split_to(total), body_at: hl }))
    }

    /// The first frame's header in `src`, checked, once it is buffered (its magic checked
    /// from two bytes on); its body no larger than this framer takes.
    fn header(&self, src: &[u8]) -> Result<Option<NativeHeader>, DecodeError> {
        if src.len() >= 2 {
            let magic = u16::from_be_bytes([src[0], src[1]]);
            if magic != NativeHeader::MAGIC {
                return Err(DecodeError::BadMagic { found: magic });
            }
        }
        let Ok((header, _)) = NativeHeader::read_from_prefix(src) else {
            return Ok(None);
        };
        header.check()?;
        let (_, body) = lengths(&header);
        if body > self.frame_bytes_max {
            return Err(DecodeError::FrameTooLarge { declared: body, max: self.frame_bytes_max });
        }
        Ok(Some(header))
    }

    /// Like [`NativeFramer::decode`], for when the stream has ended.
    ///
    /// # Errors
    ///
    /// As `decode`, plus [`DecodeError::TruncatedFrame`] for leftover bytes.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<NativeFrame>, DecodeError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let needed = match NativeHeader::read_from_prefix(&src[..]) {
                    Ok((h, _)) => {
                        usize::from(h.header_len()) + usize::try_from(h.body_len()).unwrap_or(usize::MAX)
                    }
                    Err(_) => NATIVE_HEADER_BYTES,
                };
                Err(DecodeError::TruncatedFrame { buffered: src.len(), needed })
            }
        }
    }

    /// Appends a version-1 frame carrying `body` to `dst`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FrameTooLarge`] if `body` is over this framer's maximum.
    pub fn encode(
        &self,
        flags: u8,
        correlation: u64,
        body: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if body.len() > self.frame_bytes_max {
            return Err(EncodeError::FrameTooLarge { len: body.len(), max: self.frame_bytes_max });
        }
        // At most FRAME_BYTES_MAX, which fits u32.
        let header = NativeHeader::new(flags, body.len() as u32, correlation);
        dst.reserve(NATIVE_HEADER_BYTES + body.len());
        dst.put_slice(header.as_bytes());
        dst.put_slice(body);
        Ok(())
    }
}
/// How frames are cut on a link: the native header, or a classic length header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The native 20-byte frame header (carries the native dialect only).
    Native,
    /// A classic length header.
    Length(LengthHeader),
}

impl Framing {
    /// Bytes of header before each body.
    #[must_use]
    pub const fn header_bytes(self) -> usize {
        match self {
            Self::Native => NATIVE_HEADER_BYTES,
            Self::Length(h) => h.header_bytes(),
        }
    }

    /// Whether this framing carries bodies in `dialect`: native frames carry the native
    /// dialect, length headers the classic ones.
    #[must_use]
    pub fn carries(self, dialect: crate::Dialect) -> bool {
        matches!(
            (self, dialect),
            (Self::Native, crate::Dialect::Native)
                | (Self::Length(_), crate::Dialect::Iso87Ascii | crate::Dialect::Iso87Hex)
        )
    }

    /// A decoder for this framing, refusing bodies over `frame_bytes_max`.
    #[must_use]
    pub fn decoder(self, frame_bytes_max: usize) -> FrameDecoder {
        match self {
            Self::Native => FrameDecoder::Native(NativeFramer::new(frame_bytes_max)),
            Self::Length(h) => FrameDecoder::Length(LengthDelimited::new(h, frame_bytes_max)),
        }
    }

    /// Appends one frame to `out`: the header (with `flags` and `correlation` on native
    /// frames), then what `body` writes. On error nothing is left behind.
    ///
    /// # Errors
    ///
    /// What `body` returns, or a body over `frame_bytes_max`.
    pub fn write(
        self,
        flags: u8,
        correlation: u64,
        frame_bytes_max: usize,
        out: &mut BytesMut,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        out.resize(start + self.header_bytes(), 0);
        let body_start = out.len();
        let result = body(out).and_then(|()| {
            let len = out.len() - body_start;
            if len > frame_bytes_max {
                return Err(EncodeError::FrameTooLarge { len, max: frame_bytes_max });
            }
            match self {
                Self::Native => {
                    // len <= frame_bytes_max, which a u32 holds (FRAME_BYTES_MAX is far below).
                    let h = NativeHeader::new(flags, len as u32, correlation);
                    out[start..body_start].copy_from_slice(&h.to_bytes());
                    Ok(())
                }
                Self::Length(h) => h.write(len, &mut out[start..body_start]),
            }
        });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

impl FromStr for Framing {
    type Err = UnknownFraming;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "native" {
            return Ok(Self::Native);
        }
        s.parse().map(Self::Length)
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native => f.write_str("native"),
            Self::Length(h) => f.write_str(h.name()),
        }
    }
}

/// Cuts the frames of one link's byte stream, whichever its framing.
#[derive(Debug)]
pub enum FrameDecoder {
    /// Native frames.
    Native(NativeFramer),
    /// Length-delimited frames.
    Length(LengthDelimited),
}

impl FrameDecoder {
    /// The next whole frame in `src`: its correlation (the native header's id; 0 with a length
    /// header) and body. `Ok(None)` until a whole frame is buffered.
    ///
    /// # Errors
    ///
    /// A framing [`DecodeError`]: the stream cannot continue.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(u64, Bytes)>, DecodeError> {
        Ok(self.decode_flagged(src)?.map(|(correlation, _, body)| (correlation, body)))
    }

    /// The first frame in `src`, when it is whole, without taking it: its correlation (as
    /// [`FrameDecoder::decode_flagged`] gives it) and where its body lies. `None` too for a
    /// frame that decode would refuse (it says why when it comes to it). A reader looks one
    /// frame ahead with it.
    #[must_use]
    pub fn peek(&self, src: &[u8]) -> Option<(u64, std::ops::Range<usize>)> {
        let (correlation, (hl, body)) = match self {
            Self::Native(d) => d.header(src).ok()?.map(|h| (h.correlation(), lengths(&h)))?,
            Self::Length(d) => (0, d.lengths(src).ok()??),
        };
        (src.len() >= hl + body).then_some((correlation, hl..hl + body))
    }

    /// [`FrameDecoder::decode`] with the native header's flags (0 with a length header).
    ///
    /// # Errors
    ///
    /// A framing [`DecodeError`]: the stream cannot continue.
    pub fn decode_flagged(&mut self, src: &mut BytesMut) -> Result<Option<(u64, u8, Bytes)>, DecodeError> {
        match self {
            Self::Native(d) => Ok(d.decode(src)?.map(|f| (f.correlation(), f.flags(), f.into_body()))),
            Self::Length(d) => Ok(d.decode(src)?.map(|b| (0, 0, b.freeze()))),
        }
    }
}

/// How a link frames and encodes: its framing and its dialect, together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    /// How frames are delimited.
    pub framing: Framing,
    /// How bodies are encoded.
    pub dialect: crate::Dialect,
}

/// A framing and dialect that do not make a wire.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The framing's name is unknown.
    Framing(UnknownFraming),
    /// The dialect's name is unknown.
    Dialect(crate::UnknownDialect),
    /// The framing does not carry the dialect.
    Mismatch {
        /// The framing.
        framing: Framing,
        /// The dialect.
        dialect: crate::Dialect,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Framing(e) => e.fmt(f),
            Self::Dialect(e) => e.fmt(f),
            Self::Mismatch { framing, dialect } => write!(
                f,
                "framing `{framing}` does not carry dialect `{dialect}`: native goes with native, \
                 length headers with iso87-ascii or iso87-hex"
            ),
        }
    }
}

impl std::error::Error for WireError {}

impl Wire {
    /// Native frames and bodies.
    pub const NATIVE: Self = Self { framing: Framing::Native, dialect: crate::Dialect::Native };

    /// A classic wire: `header` in front of each `dialect` body.
    #[must_use]
    pub const fn classic(header: LengthHeader, dialect: crate::Dialect) -> Self {
        Self { framing: Framing::Length(header), dialect }
    }

    /// A wire from a framing and a dialect that go together.
    ///
    /// # Errors
    ///
    /// [`WireError::Mismatch`]: native bodies without native framing, or the reverse.
    pub fn new(framing: Framing, dialect: crate::Dialect) -> Result<Self, WireError> {
        if framing.carries(dialect) {
            Ok(Self { framing, dialect })
        } else {
            Err(WireError::Mismatch { framing, dialect })
        }
    }

    /// A wire from its two names, as configurations and command lines spell them.
    ///
    /// # Errors
    ///
    /// An unknown name, or a framing that does not carry the dialect.
    pub fn parse(framing: &str, dialect: &str) -> Result<Self, WireError> {
        let framing: Framing = framing.parse().map_err(WireError::Framing)?;
        let dialect: crate::Dialect = dialect.parse().map_err(WireError::Dialect)?;
        Self::new(framing, dialect)
    }

    /// A decoder for this wire at the protocol's frame limit.
    #[must_use]
    pub fn decoder(self) -> FrameDecoder {
        self.framing.decoder(FRAME_BYTES_MAX)
    }

    /// Appends one frame to `out` (no flags, the protocol's frame limit): the header, then
    /// what `body` writes in this wire's dialect. On error nothing is left behind.
    ///
    /// # Errors
    ///
    /// What `body` returns, or a body larger than [`FRAME_BYTES_MAX`].
    pub fn frame(
        self,
        correlation: u64,
        out: &mut BytesMut,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        self.framing.write(0, correlation, FRAME_BYTES_MAX, out, body)
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.framing, self.dialect)
    }
}

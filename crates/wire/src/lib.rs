//! Corridor's wire codec: framing, ISO 8583 message views, dialects and the field dictionary.
//!
//! Sans-IO: no sockets, no clock, no threads. Bytes come in, indexed messages and errors come
//! out; the network layer wraps the frame decoders and the engine reads the views.
//!
//! # Layout
//!
//! - [`limits`]: every bound the codec enforces, with their relationships checked at compile
//!   time.
//! - [`dictionary`]: the field dictionary (ISO 8583:1987 DE 1-128), generated at build time
//!   from `proto-spec/fields.toml`.
//! - [`frame`]: length-header framing for the classic dialects and the native frame header
//!   (read in place with zerocopy).
//! - [`dialect`]: the three body encodings (`native`, `iso87-ascii`, `iso87-hex`).
//! - [`message`]: one-pass parsing into a stack-allocated index of field offsets; zero-copy
//!   field access, typed accessors, translation between dialects, patching in place.
//! - [`owned`]: messages as canonical values, for building and for tools.
//! - [`clock`]: DE 7 from wall-clock time, and the network management request (0800).
//! - [`mti`] and [`values`]: the typed values the switch reads (MTI, STAN, PAN, ...), with
//!   PANs masked wherever they are shown.
//!
//! # Example
//!
//! ```
//! use corridor_wire::{de, Dialect, Message, Mti, OwnedMessage};
//!
//! let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
//! m.set(de::PAN, "4761739001010010")?.set(de::STAN, "000042")?;
//! let body = m.to_bytes(Dialect::Native)?;
//!
//! let parsed = Message::parse(Dialect::Native, body)?;
//! assert_eq!(parsed.stan().map(|s| s.value()), Some(42));
//! assert_eq!(parsed.pan().map(|p| p.to_string()).as_deref(), Some("476173******0010"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod charset;
pub mod clock;
pub mod dialect;
pub mod dictionary;
pub mod error;
pub mod frame;
mod layout;
pub mod limits;
pub mod message;
pub mod mti;
pub mod owned;
pub mod values;

pub use clock::{network_request, WallClock};
pub use dialect::{check_value, Dialect, UnknownDialect};
pub use dictionary::{de, spec, FieldId, FieldSpec, FieldType, LengthKind, Sensitivity};
pub use error::{DecodeError, EncodeError, Part};
pub use frame::{
    FrameDecoder, Framing, LengthDelimited, LengthHeader, NativeFrame, NativeFramer, NativeHeader,
    UnknownFraming, Wire, WireError,
};
pub use limits::FRAME_BYTES_MAX;
pub use message::{Field, FieldSet, Message, MessageIndex};
pub use mti::Mti;
pub use owned::OwnedMessage;
pub use values::{mask_pan, InstitutionId, NetworkCode, Pan, ResponseCode, Stan, TransmissionTime};

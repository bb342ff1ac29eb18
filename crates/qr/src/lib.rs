//! Corridor's EMV QR codes, sans-IO: text in, a checked payload out.
//!
//! # Layout
//!
//! - [`limits`]: every bound, in one place.
//! - [`crc`]: CRC-16/CCITT-FALSE, the checksum of ID 63.
//! - [`mpm`]: merchant-presented payloads (EMVCo QRCPS-MPM 1.1): the ID-length-value
//!   objects, nested templates, the order and presence rules, the CRC.
//! - [`cpm`]: consumer-presented payloads (EMVCo QRCPS-CPM): base64 BER-TLV, mapped to a
//!   card-style authorization with the ICC data in DE 55.
//! - [`registry`]: the QR networks, as data (`proto-spec/qr-networks.toml`): which network a
//!   merchant account belongs to and where its acquirer id sits.

#![forbid(unsafe_code)]

pub mod cpm;
pub mod crc;
pub mod limits;
pub mod mpm;
pub mod registry;

pub use cpm::{decode_cpm, CardAuthorization, Cpm, CpmError};
pub use mpm::{decode, encode, nested, parse, DataObject, MpmError, Payload};
pub use registry::{Found, Network, Registry, RegistryError};

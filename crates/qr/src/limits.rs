//! Every bound the QR decoder enforces, in one place.

/// Most characters in one payload. EMVCo QRCPS-MPM caps a payload at 512 characters (a QR
/// code of version 40 holds more; no scheme issues longer merchant payloads).
pub const PAYLOAD_CHARS_MAX: usize = 512;

/// Most data objects at one level (IDs are two digits: at most 100 distinct ones).
pub const OBJECTS_MAX: usize = 100;

/// Template nesting the decoder follows: a payload's templates hold primitives only (a
/// template ID inside a template is read as a primitive).
pub const DEPTH_MAX: usize = 1;

/// Most networks in one registry.
pub const NETWORKS_MAX: usize = 256;

/// Most rules one network has.
pub const RULES_MAX: usize = 16;

/// Most sub-IDs an acquirer locator descends.
pub const ACQUIRER_PATH_MAX: usize = 4;

/// Alternative places (`a|b`) a registry rule's acquirer or merchant id may sit.
pub const LOCATOR_ALTERNATIVES_MAX: usize = 4;

/// Most bytes of a consumer-presented payload once base64-decoded (a QR code of version 40
/// holds 2,953 bytes; EMVCo's examples are under 200, and a wallet's code is read by a
/// terminal's camera, not a version 40 symbol).
pub const CPM_BYTES_MAX: usize = 1024;

/// Most BER-TLV objects in one consumer-presented template.
pub const CPM_OBJECTS_MAX: usize = 64;

/// Most application templates (`61`) in one consumer-presented payload.
pub const CPM_APPLICATIONS_MAX: usize = 8;

/// Most bytes of ICC data a consumer-presented code gives an authorization: DE 55's maximum.
pub const ICC_BYTES_MAX: usize = 255;

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

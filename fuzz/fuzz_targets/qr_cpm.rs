//! The consumer-presented QR decoder on arbitrary bytes (as base64, and as text): an error
//! or a payload, never a panic; an application of a payload it accepts maps to an
//! authorization whose ICC data parses as BER-TLV and fits DE 55, or to a named error.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = corridor_qr::cpm::tlvs(bytes, 0);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = corridor_qr::decode_cpm(text);
    }
    let Ok(cpm) = corridor_qr::decode_cpm(&base64::engine::general_purpose::STANDARD.encode(bytes)) else { return };
    for i in 0..cpm.applications.len() {
        let Ok(auth) = cpm.authorization(i) else { continue };
        assert!(auth.icc.len() <= corridor_qr::limits::ICC_BYTES_MAX);
        corridor_qr::cpm::tlvs(&auth.icc, 0).expect("whole transparent templates parse");
    }
});

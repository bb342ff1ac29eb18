//! Valid messages built from fuzzer input: every dialect encodes and parses them back
//! unchanged, and the typed accessors agree with the values.
#![no_main]

use corridor_wire::{de, Dialect, Message, OwnedMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|m: OwnedMessage| {
    for d in Dialect::ALL {
        let Ok(body) = m.to_bytes(d) else { return };
        let parsed = Message::parse(d, body).expect("what we encode, we parse");
        assert_eq!(OwnedMessage::from(&parsed), m);
        assert_eq!(parsed.pan().map(|p| p.digits().to_vec()), m.get(de::PAN).filter(|v| !v.is_empty()).map(<[u8]>::to_vec));
        assert_eq!(parsed.rrn(), m.get(de::RRN));
    }
});

//! The iso87-hex message parser on arbitrary bytes: never a panic; whatever parses re-encodes
//! to the same values and translates into every other dialect and back unchanged.
#![no_main]

use corridor_wire::{Dialect, Message, OwnedMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(Dialect::Iso87Hex, data) else { return };
    let owned = OwnedMessage::from(&m);
    let again = owned.to_bytes(Dialect::Iso87Hex).expect("a parsed message re-encodes");
    let again = Message::parse(Dialect::Iso87Hex, &again[..]).expect("a re-encoded message parses");
    assert_eq!(OwnedMessage::from(&again), owned);
    for to in Dialect::ALL {
        let mut out = bytes::BytesMut::new();
        m.translate(to, &mut out);
        let t = Message::parse(to, &out[..]).expect("a translated message parses");
        assert_eq!(OwnedMessage::from(&t), owned, "translation to {to} is lossless");
    }
});

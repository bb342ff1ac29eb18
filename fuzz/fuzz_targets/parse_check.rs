//! The check every parser target makes: parsing arbitrary bytes never panics, and whatever
//! parses re-encodes to the same values and translates into every dialect and back unchanged.

use corridor_wire::{Dialect, Message, OwnedMessage};

pub fn check(dialect: Dialect, data: &[u8]) {
    let Ok(m) = Message::parse(dialect, data) else { return };
    let owned = OwnedMessage::from(&m);
    let again = owned.to_bytes(dialect).expect("a parsed message re-encodes");
    let again = Message::parse(dialect, &again[..]).expect("a re-encoded message parses");
    assert_eq!(OwnedMessage::from(&again), owned);
    for to in Dialect::ALL {
        let mut out = bytes::BytesMut::new();
        m.translate(to, &mut out);
        let t = Message::parse(to, &out[..]).expect("a translated message parses");
        assert_eq!(OwnedMessage::from(&t), owned, "translation to {to} is lossless");
    }
}

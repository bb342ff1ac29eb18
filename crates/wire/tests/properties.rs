//! Property tests: round trips in every dialect, lossless translation, patching in place,
//! framing across arbitrary chunk boundaries, and no panic on any input.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

use bytes::{Bytes, BytesMut};
use corridor_wire::{
    de, owned::generate, Dialect, FieldSet, Framing, LengthDelimited, LengthHeader, Message, MessageIndex,
    NativeFrame, NativeFramer, OwnedMessage, FRAME_BYTES_MAX,
};
use proptest::prelude::*;

/// A valid message drawn from the dictionary: any MTI, any set of fields, valid values.
fn message() -> impl Strategy<Value = OwnedMessage> {
    (any::<u16>(), any::<u128>(), proptest::collection::vec(any::<u8>(), 0..2048))
        .prop_map(|(mti, mask, seed)| generate::message(mti, mask, &seed))
        .prop_filter("fits a frame", |m| m.to_bytes(Dialect::Iso87Hex).is_ok())
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(Dialect::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_of_encode_is_identity(m in message(), d in dialect()) {
        let body = m.to_bytes(d).expect("valid message encodes");
        let parsed = Message::parse(d, body.clone()).expect("what we encode, we parse");
        prop_assert_eq!(OwnedMessage::from(&parsed), m);
        // Every field is a slice of the body, and the index covers the body exactly.
        for f in parsed.fields() {
            let r = parsed.index().range(f.id()).expect("present");
            prop_assert_eq!(&body[r], f.raw());
        }
    }

    #[test]
    fn typed_accessors_read_the_same_value_in_every_dialect(m in message(), d in dialect()) {
        // Native accessors read BCD (some straight, without the canonical text): they must
        // agree with the same message read in a text dialect, and with the values themselves.
        let text = Message::parse(Dialect::Iso87Ascii, m.to_bytes(Dialect::Iso87Ascii).expect("encodes")).expect("parses");
        let other = Message::parse(d, m.to_bytes(d).expect("encodes")).expect("parses");
        type Accessor = fn(&Message) -> Option<corridor_wire::InstitutionId>;
        let institutions: [(_, Accessor); 3] = [
            (de::ACQUIRER_ID, Message::acquirer_id),
            (de::FORWARDER_ID, Message::forwarder_id),
            (de::RECEIVER_ID, Message::receiver_id),
        ];
        for (id, get) in institutions {
            let want = m.get(id).and_then(corridor_wire::InstitutionId::from_ascii);
            prop_assert_eq!(get(&other), want, "DE {} in {}", id.get(), d);
            prop_assert_eq!(get(&text), want);
        }
        prop_assert_eq!(other.stan(), text.stan());
        prop_assert_eq!(other.transmission_time(), text.transmission_time());
        prop_assert_eq!(other.pan().map(|p| p.to_string()), text.pan().map(|p| p.to_string()));
    }

    #[test]
    fn translation_through_any_dialect_is_lossless(m in message(), via in dialect(), to in dialect()) {
        let native = m.to_bytes(Dialect::Native).expect("encodes");
        let src = Message::parse(Dialect::Native, native.clone()).expect("parses");
        let mut mid = BytesMut::new();
        src.translate(via, &mut mid);
        prop_assert_eq!(&mid[..], &m.to_bytes(via).expect("encodes")[..], "translation equals direct encoding");
        let mid = Message::parse(via, mid.freeze()).expect("translated message parses");
        let mut out = BytesMut::new();
        mid.translate(to, &mut out);
        prop_assert_eq!(&out[..], &m.to_bytes(to).expect("encodes")[..]);
        let mut back = BytesMut::new();
        Message::parse(to, out.freeze()).expect("parses").translate(Dialect::Native, &mut back);
        prop_assert_eq!(&back[..], &native[..], "native -> {} -> {} -> native", via, to);
    }

    #[test]
    fn patching_a_fixed_field_changes_only_that_field(m in message(), d in dialect(), stan in 0u32..=999_999) {
        let mut m = m;
        m.set(de::STAN, b"000001".to_vec()).expect("valid STAN");
        let body = m.to_bytes(d).expect("encodes");
        let mut patched = Message::parse(d, BytesMut::from(&body[..])).expect("parses");
        let text = format!("{stan:06}");
        patched.patch_fixed(de::STAN, text.as_bytes()).expect("DE 11 is fixed and present");
        let reparsed = Message::parse(d, patched.into_inner().freeze()).expect("still valid");
        prop_assert_eq!(reparsed.stan().map(|s| s.value()), Some(stan));
        let mut want = m.clone();
        want.set(de::STAN, text.into_bytes()).expect("valid");
        prop_assert_eq!(OwnedMessage::from(&reparsed), want);
    }

    #[test]
    fn derive_keeps_replaces_and_translates(m in message(), d in dialect(), to in dialect()) {
        let body = m.to_bytes(d).expect("encodes");
        let parsed = Message::parse(d, body.clone()).expect("parses");
        // Keeping everything and setting nothing is the identity, or a translation.
        let mut same = BytesMut::new();
        parsed.derive(m.mti(), FieldSet::VALUES, &[], d, &mut same).expect("derives");
        prop_assert_eq!(&same[..], &body[..]);
        let mut translated = BytesMut::new();
        parsed.translate(to, &mut translated);
        let mut derived = BytesMut::new();
        parsed.derive(m.mti(), FieldSet::VALUES, &[], to, &mut derived).expect("derives");
        prop_assert_eq!(&derived[..], &translated[..]);
        // Replacing a fixed field the message has, in its own dialect, rewrites it in place.
        if m.get(de::STAN).is_some() {
            let mut patched = BytesMut::new();
            parsed.derive(m.mti(), FieldSet::VALUES, &[(de::STAN, b"424242")], d, &mut patched).expect("derives");
            let mut want = m.clone();
            want.set(de::STAN, b"424242".to_vec()).expect("valid");
            prop_assert_eq!(&patched[..], &want.to_bytes(d).expect("encodes")[..]);
        }
        // A decline: the response MTI, card secrets dropped, DE 39 set.
        let drop = FieldSet::of(&[de::PIN_BLOCK, de::TRACK2]);
        let mut decline = BytesMut::new();
        let mti = m.mti().response().unwrap_or(m.mti());
        parsed.derive(mti, FieldSet::VALUES.without(drop), &[(de::RESPONSE_CODE, b"91")], to, &mut decline).expect("derives");
        let mut want = m.clone();
        want.set_mti(mti);
        want.remove(de::PIN_BLOCK);
        want.remove(de::TRACK2);
        want.set(de::RESPONSE_CODE, b"91".to_vec()).expect("valid");
        let got = Message::parse(to, decline.freeze()).expect("a derived message parses");
        prop_assert_eq!(OwnedMessage::from(&got), want);
    }

    #[test]
    fn deriving_in_the_same_dialect_copies_kept_fields_as_the_encoder_writes_them(
        m in message(), d in dialect(), keep in any::<u128>(), set_stan in any::<bool>()
    ) {
        // Any subset kept (the copy joins neighbours and skips the rest), with or without a
        // field set: byte for byte what encoding the resulting message writes.
        let parsed = Message::parse(d, m.to_bytes(d).expect("encodes")).expect("parses");
        let set: &[(corridor_wire::FieldId, &[u8])] = if set_stan { &[(de::STAN, b"424242")] } else { &[] };
        let mti = m.mti().response().unwrap_or(m.mti());
        let mut out = BytesMut::new();
        parsed.derive(mti, FieldSet(keep), set, d, &mut out).expect("derives");
        let mut want = m.clone();
        want.set_mti(mti);
        for id in corridor_wire::FieldId::all_values() {
            if keep & FieldSet::of(&[id]).0 == 0 {
                want.remove(id);
            }
        }
        if set_stan {
            want.set(de::STAN, b"424242".to_vec()).expect("valid");
        }
        prop_assert_eq!(&out[..], &want.to_bytes(d).expect("encodes")[..]);
    }

    #[test]
    fn partial_parsing_keeps_the_fields_before_the_break(m in message(), d in dialect(), at in any::<usize>(), x in 1u8..) {
        let body = m.to_bytes(d).expect("encodes");
        let (whole, err) = MessageIndex::parse_partial(d, &body).expect("valid");
        prop_assert!(err.is_none());
        prop_assert_eq!(whole.field_set(), Message::parse(d, &body[..]).expect("parses").index().field_set());
        let mut broken = body.to_vec();
        let i = at % broken.len();
        broken[i] ^= x;
        if let Ok((index, err)) = MessageIndex::parse_partial(d, &broken) {
            let partial = Message::from_parts(&broken[..], index);
            if err.is_none() {
                prop_assert!(Message::parse(d, &broken[..]).is_ok());
            }
            // Every field kept ends before the broken byte, so it is the original value.
            for f in partial.fields() {
                let r = partial.index().range(f.id()).expect("present");
                if r.end <= i {
                    prop_assert_eq!(Some(f.to_vec()), m.get(f.id()).map(<[u8]>::to_vec));
                }
            }
        }
    }

    #[test]
    fn parsing_into_a_reused_index_equals_a_fresh_parse(first in message(), second in message(), d in dialect(), cut in any::<usize>()) {
        let mut index = MessageIndex::new(d);
        let a = first.to_bytes(d).expect("encodes");
        index.parse_into(d, &a).expect("valid");
        let b = second.to_bytes(d).expect("encodes");
        index.parse_into(d, &b).expect("valid");
        let reused = Message::from_parts(&b[..], index.clone());
        prop_assert_eq!(OwnedMessage::from(&reused), second.clone());
        // A failed parse leaves an index that announces nothing.
        let broken = &b[..b.len() - 1 - cut % (b.len() - 1)];
        if index.parse_into(d, broken).is_err() {
            prop_assert_eq!(index.field_set(), FieldSet::EMPTY);
            prop_assert_eq!(Message::from_parts(broken, index.clone()).fields().count(), 0);
        }
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), d in dialect()) {
        if let Ok(m) = Message::parse(d, &bytes[..]) {
            // Whatever parses, re-encodes to something that parses to the same values.
            let owned = OwnedMessage::from(&m);
            let again = Message::parse(d, owned.to_bytes(d).expect("encodes")).expect("parses");
            prop_assert_eq!(OwnedMessage::from(&again), owned);
        }
    }

    #[test]
    fn parsing_mutated_messages_never_panics(m in message(), d in dialect(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
        let mut bytes = m.to_bytes(d).expect("encodes").to_vec();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        let keep = bytes.len() - cut % 4.min(bytes.len());
        bytes.truncate(keep);
        let _ = Message::parse(d, &bytes[..]);
    }

    #[test]
    fn frames_survive_any_chunking(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
                                   chunks in proptest::collection::vec(1usize..64, 1..200),
                                   header in prop::sample::select(LengthHeader::ALL.to_vec())) {
        let framer = LengthDelimited::new(header, FRAME_BYTES_MAX);
        let mut wire = BytesMut::new();
        for b in &bodies {
            framer.encode(b, &mut wire).expect("fits");
        }
        let mut native = BytesMut::new();
        for (i, b) in bodies.iter().enumerate() {
            NativeFramer::new(FRAME_BYTES_MAX).encode(0, i as u64, b, &mut native).expect("fits");
        }
        let mut dec = LengthDelimited::new(header, FRAME_BYTES_MAX);
        let mut ndec = NativeFramer::new(FRAME_BYTES_MAX);
        let (mut got, mut ngot) = (Vec::new(), Vec::new());
        let (mut buf, mut nbuf) = (BytesMut::new(), BytesMut::new());
        let (mut wire, mut native) = (wire.freeze(), native.freeze());
        for &c in chunks.iter().cycle().take(10_000) {
            if wire.is_empty() && native.is_empty() {
                break;
            }
            buf.extend_from_slice(&wire.split_to(c.min(wire.len())));
            nbuf.extend_from_slice(&native.split_to(c.min(native.len())));
            while let Some(f) = dec.decode(&mut buf).expect("valid stream") {
                got.push(f.to_vec());
            }
            while let Some(f) = ndec.decode(&mut nbuf).expect("valid stream") {
                ngot.push((f.correlation(), f.body().to_vec()));
            }
        }
        prop_assert_eq!(&got, &bodies);
        prop_assert_eq!(ngot.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(), bodies.clone());
        prop_assert!(ngot.iter().enumerate().all(|(i, (c, _))| *c == i as u64));
        prop_assert!(dec.decode_eof(&mut buf).expect("no leftovers").is_none());
    }

    /// A peek at the next frame finds what the decode after it takes: a whole frame's
    /// correlation, and its body where it lies, at the same bytes; nothing for a part of
    /// one, or for a frame the decode refuses — in streams of valid frames cut anywhere,
    /// with bytes flipped.
    #[test]
    fn a_peek_finds_the_frame_the_next_decode_takes(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4),
        framing in prop_oneof![Just(Framing::Native), prop::sample::select(LengthHeader::ALL.to_vec()).prop_map(Framing::Length)],
        max in prop_oneof![Just(FRAME_BYTES_MAX), 1usize..300],
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        cut in any::<usize>(),
    ) {
        let mut wire = BytesMut::new();
        for (i, b) in bodies.iter().enumerate() {
            match framing {
                Framing::Native => NativeFramer::new(FRAME_BYTES_MAX).encode(0, (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), b, &mut wire),
                Framing::Length(h) => LengthDelimited::new(h, FRAME_BYTES_MAX).encode(b, &mut wire),
            }.expect("fits");
        }
        for &(at, x) in &flips {
            let n = wire.len();
            wire[at % n] ^= x;
        }
        let whole = wire.len();
        wire.truncate(cut % (whole + 1));
        let intact = flips.is_empty() && wire.len() == whole;
        let mut dec = framing.decoder(max);
        let mut taken = 0;
        loop {
            let peeked = dec.peek(&wire);
            let start = wire.as_ptr() as usize;
            match dec.decode_flagged(&mut wire) {
                Ok(Some((correlation, _, body))) => {
                    let (c, r) = peeked.expect("a peek finds a whole frame");
                    prop_assert_eq!(c, correlation);
                    prop_assert_eq!(body.as_ptr() as usize, start + r.start);
                    prop_assert_eq!(body.len(), r.len());
                    taken += 1;
                }
                Ok(None) | Err(_) => {
                    prop_assert!(peeked.is_none(), "a peek found a frame the decode did not take");
                    break;
                }
            }
        }
        // Nothing flipped or cut: every frame up to the first over `max` was taken.
        if intact {
            prop_assert_eq!(taken, bodies.iter().take_while(|b| b.len() <= max).count());
        }
    }
}

#[test]
fn correlation_is_rewritten_in_place() {
    let mut m = OwnedMessage::new(corridor_wire::Mti::FINANCIAL_REQUEST);
    m.set(de::STAN, "000042").expect("valid");
    let body = m.to_bytes(Dialect::Native).expect("encodes");
    let mut frame = NativeFrame::new(0, 7, &body).expect("fits");
    let before = frame.as_bytes().to_vec();
    frame.set_correlation(0xDEAD_BEEF_0000_0001);
    assert_eq!(frame.correlation(), 0xDEAD_BEEF_0000_0001);
    let after = frame.as_bytes();
    // Only bytes 12-19 (the correlation id) changed.
    assert_eq!(&after[..12], &before[..12]);
    assert_eq!(&after[20..], &before[20..]);
    assert_eq!(&after[12..20], &0xDEAD_BEEF_0000_0001u64.to_be_bytes());
    let body_bytes: Bytes = frame.into_body();
    assert_eq!(body_bytes, body);
}

#[test]
fn patching_refuses_absent_variable_or_invalid() {
    let mut m = OwnedMessage::new(corridor_wire::Mti::FINANCIAL_REQUEST);
    m.set(de::PAN, "4761739001010010").expect("valid").set(de::STAN, "000001").expect("valid");
    let body = m.to_bytes(Dialect::Iso87Ascii).expect("encodes");
    let mut msg = Message::parse(Dialect::Iso87Ascii, BytesMut::from(&body[..])).expect("parses");
    assert!(msg.patch_fixed(de::PAN, b"4761739001010011").is_err(), "DE 2 is variable");
    assert!(msg.patch_fixed(de::RRN, b"000000000001").is_err(), "DE 37 is absent");
    assert!(msg.patch_fixed(de::STAN, b"12345").is_err(), "wrong length");
    assert!(msg.patch_fixed(de::STAN, b"12345X").is_err(), "not digits");
    assert_eq!(msg.as_bytes(), &body[..], "a refused patch leaves the message untouched");
}

#[test]
fn frame_decoders_refuse_before_reserving() {
    // A header declaring a huge body is refused at once; nothing is reserved for it.
    let mut buf = BytesMut::from(&[0xFFu8, 0xFF, 0xFF, 0xF0][..]);
    let cap = buf.capacity();
    let err = LengthDelimited::new(LengthHeader::Bin4, FRAME_BYTES_MAX).decode(&mut buf).unwrap_err();
    assert_eq!(err.kind(), "frame_too_large");
    assert_eq!(buf.capacity(), cap);
    // A configured maximum below the global one is enforced too.
    let mut small = LengthDelimited::new(LengthHeader::Bin2, 100);
    let mut buf = BytesMut::from(&[0u8, 101][..]);
    assert_eq!(small.decode(&mut buf).unwrap_err().kind(), "frame_too_large");
    let mut out = BytesMut::new();
    assert!(small.encode(&[0; 101], &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn a_binary_field_that_came_in_lowercase_hex_is_derived_in_uppercase() {
    // iso87-hex carries binary fields as hex text, and the parser takes either case; the
    // encoder writes uppercase, so a derived message is the encoder's, not a copy.
    let mut m = OwnedMessage::new(corridor_wire::Mti::FINANCIAL_REQUEST);
    m.set(de::STAN, b"000123".to_vec()).expect("valid");
    m.set(de::ICC_DATA, vec![0xAB, 0xCD, 0xEF]).expect("valid");
    m.set(de::TERMINAL_ID, b"TERM0001".to_vec()).expect("valid");
    let body = m.to_bytes(Dialect::Iso87Hex).expect("encodes");
    let parsed = Message::parse(Dialect::Iso87Hex, body.clone()).expect("parses");
    let r = parsed.index().range(de::ICC_DATA).expect("present");
    let mut lower = body.to_vec();
    lower[r.clone()].make_ascii_lowercase();
    assert_ne!(lower, body.to_vec());
    let parsed = Message::parse(Dialect::Iso87Hex, Bytes::from(lower)).expect("lowercase hex parses");
    let mut out = BytesMut::new();
    let keep = FieldSet::VALUES.without(FieldSet::of(&[de::TERMINAL_ID]));
    parsed.derive(m.mti(), keep, &[], Dialect::Iso87Hex, &mut out).expect("derives");
    m.remove(de::TERMINAL_ID);
    assert_eq!(&out[..], &m.to_bytes(Dialect::Iso87Hex).expect("encodes")[..]);
}

#[test]
fn a_derive_that_drops_fields_of_a_message_with_few_or_none_is_the_encoders() {
    // The cut around dropped fields at its edges: a message with no value field, one whose
    // only field is dropped, and one whose first and last fields are, in every dialect
    // (iso87-hex included: it writes instead of cutting).
    let mut pan_only = OwnedMessage::new(corridor_wire::Mti::FINANCIAL_REQUEST);
    pan_only.set(de::PAN, b"4761739001010119".to_vec()).expect("valid");
    let mut edges = pan_only.clone();
    edges.set(de::STAN, b"000123".to_vec()).expect("valid");
    edges.set(de::TERMINAL_ID, b"TERM0001".to_vec()).expect("valid");
    edges.set(de::RECEIVER_ID, b"12345".to_vec()).expect("valid");
    let empty = OwnedMessage::new(corridor_wire::Mti::FINANCIAL_REQUEST);
    let drop = FieldSet::of(&[de::PAN, de::RECEIVER_ID]);
    for m in [empty, pan_only, edges] {
        for d in Dialect::ALL {
            let parsed = Message::parse(d, m.to_bytes(d).expect("encodes")).expect("parses");
            let mut out = BytesMut::new();
            parsed.derive(m.mti(), FieldSet::VALUES.without(drop), &[], d, &mut out).expect("derives");
            let mut want = m.clone();
            want.remove(de::PAN);
            want.remove(de::RECEIVER_ID);
            assert_eq!(&out[..], &want.to_bytes(d).expect("encodes")[..], "{d}: {m:?}");
        }
    }
}

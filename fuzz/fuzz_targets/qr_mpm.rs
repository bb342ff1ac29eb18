//! The merchant-presented QR decoder on arbitrary text: an error or a payload, never a
//! panic; a payload it accepts is written again by the encoder to the same text (up to the
//! CRC's case), and every object's offset and value lie inside the text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(p) = corridor_qr::decode(text) else { return };
    let chars = text.chars().count();
    let objects: Vec<(u8, &str)> = p.objects.iter().filter(|o| o.id != 63).map(|o| (o.id, o.value)).collect();
    for o in &p.objects {
        assert!(o.offset + 4 + o.value.chars().count() <= chars);
        for c in &o.children {
            assert!(c.offset >= o.offset + 4 && c.offset + 4 + c.value.chars().count() <= o.offset + 4 + o.value.chars().count());
        }
    }
    let again = corridor_qr::encode(&objects).expect("accepted values re-encode");
    assert!(again.eq_ignore_ascii_case(text), "{again} vs {text}");
});

//! The merchant-presented QR decoder on arbitrary text: an error or a payload, never a
//! panic; a payload it accepts is written again by the encoder to the same text (up to the
//! CRC's case), and every object's offset and value lie inside the text. The shipped network
//! registry classifies whatever `parse` accepts, never panicking, and every acquirer id it
//! reports is a slice of the text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let registry = corridor_qr::Registry::builtin();
    if let Ok(p) = corridor_qr::parse(text) {
        for f in registry.classify(&p) {
            if let Some(a) = f.acquirer {
                let (start, end) = (a.as_ptr() as usize, a.as_ptr() as usize + a.len());
                assert!(start >= text.as_ptr() as usize && end <= text.as_ptr() as usize + text.len());
            }
        }
        let _ = registry.decode(text);
    }
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

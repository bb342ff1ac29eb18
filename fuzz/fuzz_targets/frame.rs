//! Every frame decoder, fed arbitrary bytes in arbitrary chunks: never a panic, never a frame
//! over the limit, and an error ends the stream.
#![no_main]

use bytes::BytesMut;
use corridor_wire::{LengthDelimited, LengthHeader, NativeFramer};
use libfuzzer_sys::fuzz_target;

/// A small limit, so oversize paths are reached with small inputs.
const MAX: usize = 512;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let chunk = usize::from(selector >> 3) + 1;
    let mut buf = BytesMut::new();
    let mut native = NativeFramer::new(MAX);
    let mut length = LengthDelimited::new(LengthHeader::ALL[usize::from(selector & 3)], MAX);
    let use_native = selector & 4 != 0;
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            if use_native {
                match native.decode(&mut buf) {
                    Ok(Some(f)) => assert!(f.body().len() <= MAX),
                    Ok(None) => break,
                    Err(_) => return,
                }
            } else {
                match length.decode(&mut buf) {
                    Ok(Some(f)) => assert!(f.len() <= MAX),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
    if use_native {
        let _ = native.decode_eof(&mut buf);
    } else {
        let _ = length.decode_eof(&mut buf);
    }
});

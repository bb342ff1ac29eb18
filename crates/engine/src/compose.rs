//! Messages the switch makes itself: reversals (declines are derived in place; network
//! management requests and DE 7 come from `corridor-wire`).

use std::borrow::Borrow;

use bytes::{Bytes, BytesMut};
use corridor_wire::{de, Dialect, FieldSet, Message, MessageIndex, Mti};

/// Fields a reversal carries over from the request it reverses.
pub(crate) const REVERSAL_KEEP: FieldSet =
    FieldSet::from_numbers(&[2, 3, 4, 7, 12, 13, 32, 33, 37, 41, 42, 49, 100]);

/// DE 90 (original data elements) for a reversal of `req` as it was sent: original MTI, the
/// STAN the destination saw, DE 7, DE 32 and DE 33 (11 digits each, zero-filled on the left).
pub(crate) fn original_data<B: AsRef<[u8]>, I: Borrow<MessageIndex>>(
    req: &Message<B, I>,
    sent_stan: &[u8; 6],
) -> [u8; 42] {
    let mut out = [b'0'; 42];
    out[..4].copy_from_slice(&req.mti().to_ascii());
    out[4..10].copy_from_slice(sent_stan);
    if let Some(t) = req.transmission_time() {
        out[10..20].copy_from_slice(t.to_string().as_bytes());
    }
    for (at, id) in [(20, req.acquirer_id()), (31, req.forwarder_id())] {
        if let Some(id) = id {
            let d = id.as_bytes();
            out[at + 11 - d.len()..at + 11].copy_from_slice(d);
        }
    }
    out
}

/// The reversal (0420) of `req` as the destination saw it, encoded in the native dialect so
/// it can be translated for whichever link carries it.
pub(crate) fn reversal<B: AsRef<[u8]>, I: Borrow<MessageIndex>>(
    req: &Message<B, I>,
    sent_stan: &[u8; 6],
    reason: &[u8; 2],
) -> Result<Bytes, corridor_wire::EncodeError> {
    let data = original_data(req, sent_stan);
    let mut out = BytesMut::with_capacity(256);
    req.derive(
        Mti::REVERSAL_ADVICE,
        REVERSAL_KEEP,
        &[(de::STAN, sent_stan), (de::RESPONSE_CODE, reason), (de::ORIGINAL_DATA, &data)],
        Dialect::Native,
        &mut out,
    )?;
    Ok(out.freeze())
}

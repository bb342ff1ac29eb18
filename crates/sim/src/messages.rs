//! The messages the simulated peers send and read, and their framing on a wire.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

pub(crate) fn purchase(i: u32) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    for (f, v) in [
        (de::PAN, "4761739001010010".to_owned()),
        (de::PROCESSING_CODE, "000000".to_owned()),
        (de::AMOUNT, "000000012500".to_owned()),
        (de::TRANSMISSION_TIME, "1201103000".to_owned()),
        (de::STAN, format!("{:06}", i % 1_000_000)),
        (de::ACQUIRER_ID, "12345678".to_owned()),
        (de::RRN, format!("SIM{i:09}")),
        (de::TERMINAL_ID, "TERM0001".to_owned()),
    ] {
        let _ = m.set(f, v);
    }
    m
}

pub(crate) fn reversal(i: u32, repeat: bool) -> OwnedMessage {
    reversal_of(i, repeat, Mti::FINANCIAL_REQUEST)
}

/// Request `i` as an authorization (0100) or a purchase (0200).
pub(crate) fn request(i: u32, original: Mti) -> OwnedMessage {
    let mut m = purchase(i);
    m.set_mti(original);
    m
}

/// The terminal's reversal of request `i`, which was an `original` (0100 or 0200).
pub(crate) fn reversal_of(i: u32, repeat: bool, original: Mti) -> OwnedMessage {
    let mut m = request(i, original);
    m.set_mti(if repeat { Mti::REVERSAL_ADVICE_REPEAT } else { Mti::REVERSAL_ADVICE });
    let _ = m.set(de::STAN, format!("{:06}", 500_000 + i % 200_000));
    let _ = m.set(de::TRANSMISSION_TIME, "1201103100");
    let data = format!("{:04}{:06}120110300000012345678{:011}", original.value(), i % 1_000_000, 0);
    let _ = m.set(de::ORIGINAL_DATA, data);
    m
}

/// The terminal's completion advice (0220, or 0221 when `repeat`) of approved request `i`.
pub(crate) fn advice(i: u32, repeat: bool) -> OwnedMessage {
    let mut m = purchase(i);
    if let Some(mti) = Mti::new(if repeat { 221 } else { 220 }) {
        m.set_mti(mti);
    }
    let _ = m.set(de::STAN, format!("{:06}", 700_000 + i % 200_000));
    let _ = m.set(de::TRANSMISSION_TIME, "1201103200");
    m
}

/// The request sent as request `n`'s twin ([`twinned`]).
pub(crate) fn twin_of(n: u32) -> u32 {
    if n % 2 == 1 {
        n + 1
    } else {
        n - 1
    }
}

/// Request `n` as twin terminals send it on a native wire: requests `2k - 1` and `2k` carry
/// one STAN (`k`) and one DE 7 from two terminals (DE 41 `TERM0001`, `TERM0002`), as two
/// terminals numbering their own requests do — keys that differ only in DE 41, which a
/// reversal may leave out (SPEC §9): a reversal carrying its own must never be taken for its
/// twin's. `m` is the request, its reversal (DE 90 names the twin STAN) or its advice (its
/// own STAN is its own). (A classic wire's STAN is the terminal's only correlation: no twins
/// there.)
pub(crate) fn twinned(n: u32, mut m: OwnedMessage) -> OwnedMessage {
    let stan = format!("{:06}", n.div_ceil(2) % 1_000_000);
    let _ = m.set(de::TERMINAL_ID, if n % 2 == 1 { "TERM0001" } else { "TERM0002" });
    let mti = m.mti();
    if matches!(mti.class(), 1 | 2) && mti.function() == 0 {
        let _ = m.set(de::STAN, stan);
    } else if mti.class() == 4 {
        let data = text(&m, de::ORIGINAL_DATA);
        if data.len() >= 10 {
            let _ = m.set(de::ORIGINAL_DATA, format!("{}{stan}{}", &data[..4], &data[10..]));
        }
    }
    m
}

/// Items the terminal sends until acknowledged are numbered by their request: a reversal
/// by its number, an advice by its number plus this.
pub(crate) const ADVICE: u32 = 10_000_000;

pub(crate) fn answer(m: &OwnedMessage, code: &str) -> OwnedMessage {
    let mut r = m.clone();
    if let Some(mti) = m.mti().response() {
        r.set_mti(mti);
    }
    let _ = r.set(de::RESPONSE_CODE, code.to_owned());
    r
}

pub(crate) fn text(m: &OwnedMessage, f: corridor_wire::FieldId) -> String {
    m.get(f).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

pub(crate) fn number(m: &OwnedMessage) -> Option<u32> {
    text(m, de::RRN).strip_prefix("SIM").and_then(|n| n.parse().ok())
}

pub(crate) fn frame(corr: u64, m: &OwnedMessage) -> Vec<u8> {
    frame_on(Wire::NATIVE, corr, m)
}

pub(crate) fn frame_on(wire: Wire, corr: u64, m: &OwnedMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    let _ = wire.frame(corr, &mut out, |b| m.encode(wire.dialect, b));
    out.to_vec()
}

/// Whole frames off `buf` on `wire`, parsed (what does not parse is skipped).
pub(crate) fn frames_on(wire: Wire, buf: &mut BytesMut) -> Vec<(u64, OwnedMessage)> {
    let mut decoder = wire.decoder();
    let mut msgs = Vec::new();
    while let Ok(Some((corr, body))) = decoder.decode(buf) {
        if let Ok(m) = Message::parse(wire.dialect, body) {
            msgs.push((corr, OwnedMessage::from(&m)));
        }
    }
    msgs
}

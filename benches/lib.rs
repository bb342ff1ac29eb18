//! Fixtures shared by Corridor's benchmarks.
//!
//! # Layout
//!
//! - `codec.rs` (bench): parsing, encoding, translating and framing a typical 0200.
//! - [`typical_0200`]: the message every codec benchmark uses.
//! - [`route_table`], [`engine_config`], [`frame`]: the engine fixture shared by the `engine`
//!   bench and the `engine_loop` example.
//! - [`qr_sticker`], [`qr_0200`], [`qr_config`]: the same for a QR payment.

#![forbid(unsafe_code)]
// Fixtures: a panic is a broken fixture, and each says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use bytes::BytesMut;
use corridor_engine::{Config, Framing, LinkSpec, Participant, Roles, Route, RouteKey, RouteTable, Settings};
use corridor_wire::{
    Dialect, FieldId, InstitutionId, LengthDelimited, Mti, NativeFramer, OwnedMessage, FRAME_BYTES_MAX,
};

/// A typical purchase request: 20 fields (PAN, amounts, times, track 2, terminal and merchant,
/// PIN block, ICC data), about 210 bytes in `native` and 260 in `iso87-ascii`. The same
/// message as the `purchase_0200` golden vector.
///
/// # Panics
///
/// Never: every value fits the dictionary (the golden-vector tests check the same values).
#[must_use]
pub fn typical_0200() -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    let fields: &[(u8, &[u8])] = &[
        (2, b"4761739001010010"),
        (3, b"000000"),
        (4, b"000000012500"),
        (7, b"1125221530"),
        (11, b"000042"),
        (12, b"221530"),
        (13, b"1125"),
        (14, b"2812"),
        (18, b"5999"),
        (22, b"051"),
        (25, b"00"),
        (32, b"12345678"),
        (35, b"4761739001010010=28122011234567890"),
        (37, b"533022000042"),
        (41, b"TERM0001"),
        (42, b"MERCHANT0000001"),
        (43, b"CORRIDOR TEST SHOP       SINGAPORE    SG"),
        (49, b"702"),
        (52, &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]),
        (
            55,
            &[
                0x9F, 0x26, 0x08, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x08, 0x9F, 0x27, 0x01, 0x80,
                0x9F, 0x10, 0x12, 0x01, 0x10, 0xA0, 0x00, 0x03, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0xFF,
            ],
        ),
    ];
    for &(id, value) in fields {
        let id = FieldId::new(id).unwrap_or_else(|| unreachable!("1-128"));
        if let Err(e) = m.set(id, value) {
            unreachable!("the typical 0200 fits the dictionary: {e}");
        }
    }
    m
}

/// A realistic route table: 1,000 BINs of 6 and 8 digits, 100 receiving ids, the BIN of
/// the typical 0200 and a default, all to participant 1.
///
/// # Panics
///
/// Never: every route is valid.
#[must_use]
pub fn route_table() -> RouteTable {
    let mut routes = Vec::new();
    // A realistic table: 1,000 BINs of 6 and 8 digits, 100 receiving ids, a default.
    for i in 0..500u32 {
        routes.push(Route {
            key: RouteKey::PanPrefix(format!("{:06}", 400_000 + i * 7).into_bytes()),
            mti_classes: None,
            destination: 1,
            timeout: Duration::from_secs(5),
        });
        routes.push(Route {
            key: RouteKey::PanPrefix(format!("{:08}", 47_000_000 + i * 13).into_bytes()),
            mti_classes: None,
            destination: 1,
            timeout: Duration::from_secs(5),
        });
    }
    for i in 0..100u32 {
        routes.push(Route {
            key: RouteKey::Receiver(
                InstitutionId::from_ascii(format!("{}", 44_000_000 + i).as_bytes()).unwrap(),
            ),
            mti_classes: None,
            destination: 1,
            timeout: Duration::from_secs(5),
        });
    }
    routes.push(Route {
        key: RouteKey::PanPrefix(b"476173".to_vec()),
        mti_classes: None,
        destination: 1,
        timeout: Duration::from_secs(5),
    });
    routes.push(Route {
        key: RouteKey::Default,
        mti_classes: None,
        destination: 1,
        timeout: Duration::from_secs(5),
    });
    RouteTable::new(routes).unwrap()
}

/// An acquirer (participant 0, link 0) and an issuer (participant 1, link 1) with the given
/// framing and dialect each, no sign-on, echoes far apart, and [`route_table`].
///
/// # Panics
///
/// Never: the ids are valid.
#[must_use]
pub fn engine_config(acq: (Framing, Dialect), iss: (Framing, Dialect)) -> Config {
    let link = |name: &str, participant, dial, (framing, dialect): (Framing, Dialect)| LinkSpec {
        name: name.into(),
        participant,
        dial,
        framing,
        dialect,
        frame_bytes_max: FRAME_BYTES_MAX,
        inflight_max: 1024,
        sign_on_required: false,
        echo_interval: Duration::from_secs(3600),
        echo_missed_max: 3,
        at_limit: corridor_engine::AtLimit::Backpressure,
        sign_on_timeout: Duration::from_secs(10),
        frame_timeout: Duration::from_secs(5),
        timeouts_down_max: 3,
    };
    Config {
        participants: vec![
            Participant {
                id: "acq".into(),
                name: "acq".into(),
                roles: Roles { acquirer: true, ..Roles::default() },
                acquirer_ids: vec![InstitutionId::from_ascii(b"12345678").unwrap()],
                forwarder_ids: vec![],
                directory: Default::default(),
                hop: None,
                via: None,
                shard: None,
            },
            Participant {
                id: "iss".into(),
                name: "iss".into(),
                roles: Roles { issuer: true, ..Roles::default() },
                acquirer_ids: vec![],
                forwarder_ids: vec![],
                directory: Default::default(),
                hop: None,
                via: None,
                shard: None,
            },
        ],
        links: vec![link("acq", 0, false, acq), link("iss", 1, false, iss)],
        routes: route_table(),
        settings: Settings::default(),
        interop: Default::default(),
    }
}

/// `m` framed as a peer on a link with framing `f` and dialect `d` would send it.
///
/// # Panics
///
/// If `m` does not fit a frame: a fixture bug.
#[must_use]
pub fn frame(f: Framing, d: Dialect, correlation: u64, m: &corridor_wire::OwnedMessage) -> BytesMut {
    let body = m.to_bytes(d).unwrap();
    let mut out = BytesMut::new();
    match f {
        Framing::Native => {
            NativeFramer::new(FRAME_BYTES_MAX).encode(0, correlation, &body, &mut out).unwrap()
        }
        Framing::Length(h) => LengthDelimited::new(h, FRAME_BYTES_MAX).encode(&body, &mut out).unwrap(),
    }
    out
}

/// A typical 150-character merchant-presented payload: a Hanoi restaurant's sticker taking
/// UnionPay (ID 15) and NAPAS (ID 38), 250,000 VND, a terminal label.
///
/// # Panics
///
/// Never: the objects are valid.
#[must_use]
pub fn qr_sticker() -> String {
    let napas = corridor_qr::nested(&[
        (0, "A000000727"),
        (1, &corridor_qr::nested(&[(0, "970436"), (1, "01234567")]).unwrap()),
    ])
    .unwrap();
    let additional = corridor_qr::nested(&[(7, "T0001")]).unwrap();
    corridor_qr::encode(&[
        (0, "01"),
        (1, "12"),
        (15, "6250012345678901123"),
        (38, &napas),
        (52, "5812"),
        (53, "704"),
        (54, "250000"),
        (58, "VN"),
        (59, "PHO 24"),
        (60, "HANOI"),
        (62, &additional),
    ])
    .unwrap()
}

/// A wallet's QR payment of [`qr_sticker`]: the typical 0200's times, STAN, acquirer and
/// RRN, the payload in DE 126, and no card (PAN, track 2, PIN block, ICC data) nor the
/// merchant's fields (DE 4, 18, 42, 43, 49: the switch takes them from the code).
///
/// # Panics
///
/// Never: every value fits the dictionary.
#[must_use]
pub fn qr_0200() -> OwnedMessage {
    let mut m = typical_0200();
    for id in [2u8, 4, 14, 18, 35, 41, 42, 43, 49, 52, 55] {
        m.remove(FieldId::new(id).unwrap_or_else(|| unreachable!("1-128")));
    }
    m.set(corridor_wire::de::QR_PAYLOAD, qr_sticker().into_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
    m
}

/// [`engine_config`] with a route for UnionPay's QR network to participant 1; with `fx`,
/// the wallet (participant 0) in THB, quotes VND → THB and VND → USD, settlement in USD.
///
/// # Panics
///
/// Never: the routes and quotes are valid.
#[must_use]
pub fn qr_config(acq: (Framing, Dialect), iss: (Framing, Dialect), fx: bool) -> Config {
    use corridor_engine::exchange::{by_code, Quote, Rate, Rates};
    let mut c = engine_config(acq, iss);
    let registry = corridor_qr::Registry::builtin();
    let network = u16::try_from(registry.index("unionpay").unwrap()).unwrap();
    let mut routes = c.routes.routes().to_vec();
    routes.push(Route {
        key: RouteKey::Qr { network, name: "unionpay".into(), acquirer: None },
        mti_classes: None,
        destination: 1,
        timeout: Duration::from_secs(5),
    });
    c.routes = RouteTable::new(routes).unwrap();
    if fx {
        let cur = |code| by_code(code).unwrap();
        c.participants[0].directory.currency = Some(cur("THB"));
        let quote = |id: &str, to, rate| Quote {
            id: id.into(),
            from: cur("VND"),
            to: cur(to),
            rate: Rate::from_decimal(rate).unwrap(),
            markup_bps: 50,
            valid_from_ms: 0,
            valid_to_ms: u64::MAX,
        };
        c.interop.rates = std::sync::Arc::new(
            Rates::new(vec![quote("VND-THB", "THB", "0.00137"), quote("VND-USD", "USD", "0.0000394")])
                .unwrap(),
        );
        c.interop.settlement = Some(cur("USD"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_0200_is_the_golden_purchase() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto-spec/vectors/native.json");
        let vectors = std::fs::read_to_string(path).unwrap();
        let hex: String = typical_0200()
            .to_bytes(corridor_wire::Dialect::Native)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert!(
            vectors.contains(&format!("\"hex\": \"{hex}\"")),
            "benchmarks measure the golden purchase_0200"
        );
    }
}

//! QR payments and currencies in memory, under arbitrary input: whatever a wallet puts in
//! DE 126 (bytes, broken or valid codes), DE 4, 6, 10, 49, 51 and 125, the switch never
//! panics and each request gets exactly one answer — forwarded and answered by the network,
//! or declined by the switch with a code of its own — and only a valid code is forwarded.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

mod harness;

use std::sync::Arc;

use corridor_engine::{
    exchange::{by_code, Quote, Rate, Rates},
    Route, RouteKey, RouteTable,
};
use corridor_wire::{de, Mti, OwnedMessage};
use harness::*;
use proptest::prelude::*;

/// The harness's switch with a QR route for NAPAS to issuer A, the first acquirer in THB
/// (limit 20,000.00) and issuer A in VND (limit 50,000,000), a VND → THB quote (and an expired
/// one), settlement in USD.
fn qr_harness() -> Harness {
    let mut c = config();
    let registry = corridor_qr::Registry::builtin();
    let napas = u16::try_from(registry.index("napas").unwrap()).unwrap();
    let mut routes = c.routes.routes().to_vec();
    routes.push(Route {
        key: RouteKey::Qr { network: napas, name: "napas".into(), acquirer: None },
        mti_classes: None,
        destination: ISSUER_A,
        timeout: TIMEOUT,
    });
    c.routes = RouteTable::new(routes).unwrap();
    let cur = |s| by_code(s).unwrap();
    c.participants[ACQ].directory.currency = Some(cur("THB"));
    c.participants[ACQ].directory.limit = Some(2_000_000);
    c.participants[ISSUER_A].directory.currency = Some(cur("VND"));
    c.participants[ISSUER_A].directory.limit = Some(50_000_000);
    let quote = |id: &str, to, rate, from_ms, to_ms| Quote {
        id: id.into(),
        from: cur("VND"),
        to: cur(to),
        rate: Rate::from_decimal(rate).unwrap(),
        markup_bps: 50,
        valid_from_ms: from_ms,
        valid_to_ms: to_ms,
    };
    // The harness's clock is at 1,795,644,930 s.
    c.interop.rates = Arc::new(
        Rates::new(vec![
            // No markup: its billing rate 0.001377 has six decimals, so N8 can write it
            // as 60001377 or as 70013770.
            Quote { markup_bps: 0, ..quote("EVEN", "THB", "0.001377", 0, u64::MAX) },
            quote("Q1", "THB", "0.00137", 0, u64::MAX),
            quote("OLD", "THB", "0.00130", 0, 1_000),
            quote("U1", "USD", "0.0000394", 0, u64::MAX),
        ])
        .unwrap(),
    );
    c.interop.settlement = Some(cur("USD"));
    Harness::with(c)
}

fn vietqr(amount: Option<&str>) -> String {
    let acct = corridor_qr::nested(&[(0, "970436"), (1, "0123456789")]).unwrap();
    let napas = corridor_qr::nested(&[(0, "A000000727"), (1, &acct)]).unwrap();
    let mut objs: Vec<(u8, &str)> = vec![(0, "01"), (1, "12"), (38, &napas), (52, "5812"), (53, "704")];
    if let Some(a) = amount {
        objs.push((54, a));
    }
    objs.extend([(58, "VN"), (59, "PHO 24"), (60, "HANOI")]);
    corridor_qr::encode(&objs).unwrap()
}

/// What a wallet may put in a payment.
#[derive(Clone, Debug)]
struct Input {
    payload: Vec<u8>,
    amount: Option<u64>,
    currency: Option<&'static str>,
    billing: Option<(u64, String)>,
    billing_currency: Option<&'static str>,
    quote: Option<&'static str>,
}

fn input() -> impl Strategy<Value = Input> {
    let payload = prop_oneof![
        // A valid code, with or without an amount (some too large for the limits).
        (prop::option::of(0u64..100_000_000))
            .prop_map(|a| vietqr(a.map(|a| a.to_string()).as_deref()).into_bytes()),
        // A valid code with one character changed: a bad CRC, or worse.
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| {
            let mut v = vietqr(Some("250000")).into_bytes();
            let at = i.index(v.len());
            v[at] = b;
            v
        }),
        // Anything at all.
        prop::collection::vec(any::<u8>(), 0..200),
    ];
    (
        payload,
        prop::option::of(0u64..1_000_000_000),
        prop::option::of(prop::sample::select(vec!["704", "764", "840", "999"])),
        prop::option::of((
            0u64..10_000_000,
            prop::sample::select(vec!["70013769", "70013700", "81234567", "abc"]),
        )),
        prop::option::of(prop::sample::select(vec!["764", "840", "704"])),
        prop::option::of(prop::sample::select(vec!["Q1", "OLD", "NOPE", "U1"])),
    )
        .prop_map(|(payload, amount, currency, billing, billing_currency, quote)| Input {
            payload,
            amount,
            currency,
            billing: billing.map(|(a, r)| (a, r.to_owned())),
            billing_currency,
            quote,
        })
}

fn payment(i: &Input, stan: u32) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    m.set(de::PROCESSING_CODE, "000000").unwrap();
    m.set(de::TRANSMISSION_TIME, "1201101500").unwrap();
    m.set(de::STAN, format!("{stan:06}")).unwrap();
    m.set(de::ACQUIRER_ID, "12345678").unwrap();
    m.set(de::RRN, format!("000000{stan:06}")).unwrap();
    m.set(de::QR_PAYLOAD, i.payload.clone()).unwrap();
    if let Some(a) = i.amount {
        m.set(de::AMOUNT, format!("{a:012}")).unwrap();
    }
    if let Some(c) = i.currency {
        m.set(de::CURRENCY, c).unwrap();
    }
    if let Some((a, r)) = &i.billing {
        m.set(de::AMOUNT_BILLING, format!("{a:012}")).unwrap();
        // A rate that is not digits does not fit DE 10: the message would not encode.
        if r.bytes().all(|b| b.is_ascii_digit()) {
            m.set(de::RATE_BILLING, r.clone()).unwrap();
        }
    }
    if let Some(c) = i.billing_currency {
        m.set(de::CURRENCY_BILLING, c).unwrap();
    }
    if let Some(q) = i.quote {
        m.set(de::QUOTE_ID, q).unwrap();
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_payment_gets_exactly_one_answer_and_only_a_valid_code_is_forwarded(inputs in prop::collection::vec(input(), 1..8)) {
        let mut h = qr_harness();
        let iss = h.issuer_up(L_ISS_A1);
        let acq = h.acquirer_up(L_ACQ);
        for (n, i) in inputs.iter().enumerate() {
            let stan = u32::try_from(n).unwrap() + 100;
            h.send(acq, 0, &payment(i, stan));
            let forwarded = h.recv(iss);
            prop_assert!(forwarded.len() <= 1);
            if let Some(f) = forwarded.first() {
                let code = f.msg.get(de::QR_PAYLOAD).unwrap();
                let text = std::str::from_utf8(code).expect("forwarded codes are UTF-8");
                prop_assert!(corridor_qr::Registry::builtin().decode(text).is_ok(), "only valid codes go out");
                // What goes out agrees with itself: DE 6 is DE 4 at DE 10.
                let get = |id| f.msg.get(id).map(|v| String::from_utf8_lossy(v).into_owned());
                if let (Some(a), Some(b), Some(r)) = (get(de::AMOUNT), get(de::AMOUNT_BILLING), get(de::RATE_BILLING)) {
                    let rate = Rate::from_n8(r.as_bytes()).unwrap();
                    let (ef, et) = (0, 2); // VND → THB
                    let want = corridor_engine::exchange::convert(a.parse().unwrap(), ef, et, rate);
                    if get(de::CURRENCY_BILLING).as_deref() == Some("764") {
                        prop_assert_eq!(want, Some(b.parse().unwrap()));
                    }
                }
                h.answer(iss, f, "00");
            }
            let answers = h.recv(acq);
            prop_assert_eq!(answers.len(), 1, "exactly one answer to {:?}", i);
            let code = answers[0].field(39).unwrap();
            if forwarded.is_empty() {
                prop_assert!(["12", "13", "30", "61", "92"].contains(&code.as_str()), "a switch decline, not {}", code);
            } else {
                prop_assert_eq!(code, "00");
            }
        }
        prop_assert_eq!(h.engine.requests_pending(), 0);
    }
}

#[test]
fn the_quote_named_decides_and_an_expired_one_is_declined() {
    let mut h = qr_harness();
    let (iss, acq) = h.both_up();
    let base = Input {
        payload: vietqr(Some("250000")).into_bytes(),
        amount: None,
        currency: None,
        billing: None,
        billing_currency: None,
        quote: None,
    };
    h.send(acq, 0, &payment(&base, 1));
    let f = h.recv(iss);
    // 250,000 VND at 0.00137 × 1.005 = 0.0013769: 344.225 → 344.23 THB (half up); USD at
    // 0.0000394: 9.85.
    assert_eq!(f[0].field(6).as_deref(), Some("000000034423"));
    assert_eq!(f[0].field(10).as_deref(), Some("70013769"));
    assert_eq!(f[0].field(5).as_deref(), Some("000000000985"));
    h.answer(iss, &f[0], "00");
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"));
    let old = Input { quote: Some("OLD"), ..base.clone() };
    h.send(acq, 0, &payment(&old, 2));
    assert!(h.recv(iss).is_empty());
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("12"));
    let over = Input { payload: vietqr(Some("60000000")).into_bytes(), ..base };
    h.send(acq, 0, &payment(&over, 3));
    assert!(h.recv(iss).is_empty());
    assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("61"));
}

/// Found from outside: N8 is defined by value (SPEC §16.5), yet a rate written with more
/// decimals than it needs (`70013770` for 0.001377) was declined 13 while `60001377` was
/// approved.
#[test]
fn a_rate_is_compared_by_value_whatever_decimals_it_is_written_with() {
    let mut h = qr_harness();
    let (iss, acq) = h.both_up();
    // 250,000 VND at 0.001377 = 344.25 THB.
    for (stan, rate, code) in [(1, "60001377", None), (2, "70013770", None), (3, "70013771", Some("13"))] {
        let i = Input {
            payload: vietqr(Some("250000")).into_bytes(),
            amount: None,
            currency: None,
            billing: Some((34_425, rate.to_owned())),
            billing_currency: Some("764"),
            quote: Some("EVEN"),
        };
        h.send(acq, 0, &payment(&i, stan));
        let f = h.recv(iss);
        match code {
            None => {
                assert_eq!(f.len(), 1, "{rate}: forwarded");
                assert_eq!(f[0].field(10).as_deref(), Some(rate), "forwarded as it came");
                h.answer(iss, &f[0], "00");
                assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some("00"), "{rate}");
            }
            Some(c) => {
                assert!(f.is_empty(), "{rate}: not forwarded");
                assert_eq!(h.recv(acq)[0].field(39).as_deref(), Some(c), "{rate}");
            }
        }
    }
}

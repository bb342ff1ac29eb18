//! Parsing and classifying merchant-presented QR payloads: `qr/parse_classify_150` is a
//! typical 150-character two-network sticker (UnionPay's primitive ID 15 and a NAPAS
//! template, a Vietnamese merchant, an amount and a terminal label) parsed, its CRC checked
//! and its networks found with their acquirer ids, through the shipped registry. `qr/parse_150`
//! is the parse alone, `qr/classify_150` the classification of an already parsed payload, and
//! `qr/cpm_emvco_example` the consumer-presented example decoded and mapped to an
//! authorization.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // a benchmark

use std::hint::black_box;

use corridor_qr::{decode_cpm, encode, nested, Registry};
use criterion::{criterion_group, criterion_main, Criterion};

/// The typical sticker: 150 characters.
#[must_use]
pub fn sticker() -> String {
    let napas =
        nested(&[(0, "A000000727"), (1, &nested(&[(0, "970436"), (1, "01234567")]).unwrap())]).unwrap();
    let additional = nested(&[(7, "T0001")]).unwrap();
    encode(&[
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

fn qr(c: &mut Criterion) {
    let text = sticker();
    assert_eq!(text.chars().count(), 150, "{text}");
    let registry = Registry::builtin();
    let mut g = c.benchmark_group("qr");
    g.bench_function("parse_classify_150", |b| {
        b.iter(|| {
            let p = registry.decode(black_box(&text)).unwrap();
            registry.classify(&p).filter(|f| f.network.is_some()).count()
        })
    });
    g.bench_function("parse_150", |b| b.iter(|| corridor_qr::parse(black_box(&text)).unwrap().objects.len()));
    let parsed = corridor_qr::parse(&text).unwrap();
    g.bench_function("classify_150", |b| {
        b.iter(|| registry.classify(black_box(&parsed)).filter(|f| f.acquirer.is_some()).count())
    });
    let cpm = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==";
    g.bench_function("cpm_emvco_example", |b| {
        b.iter(|| decode_cpm(black_box(cpm)).unwrap().authorization(0).unwrap().icc.len())
    });
    g.finish();
}

criterion_group!(benches, qr);
criterion_main!(benches);

//! Parsing and classifying merchant-presented QR payloads: `qr/parse_classify_150` is a
//! typical 150-character two-network sticker ([`corridor_benches::qr_sticker`]: UnionPay's
//! primitive ID 15 and a NAPAS template, a Vietnamese merchant, an amount and a terminal
//! label) parsed, its CRC checked
//! and its networks found with their acquirer ids, through the shipped registry. `qr/parse_150`
//! is the parse alone, `qr/classify_150` the classification of an already parsed payload, and
//! `qr/cpm_emvco_example` the consumer-presented example decoded and mapped to an
//! authorization.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // a benchmark

use std::hint::black_box;

use corridor_qr::{decode_cpm, Registry};
use criterion::{criterion_group, criterion_main, Criterion};

fn qr(c: &mut Criterion) {
    let text = corridor_benches::qr_sticker();
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

//! Codec micro-benchmarks: a typical 0200 parsed, encoded and translated in each dialect, and
//! framed. Run with `cargo bench -p corridor-benches --bench codec`.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // criterion's macros; a panic aborts the bench

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use corridor_benches::typical_0200;
use corridor_wire::{
    Dialect, LengthDelimited, LengthHeader, Message, MessageIndex, NativeFramer, FRAME_BYTES_MAX,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn parse(c: &mut Criterion) {
    let m = typical_0200();
    let mut g = c.benchmark_group("codec/parse_0200");
    for d in Dialect::ALL {
        let body = m.to_bytes(d).expect("encodes");
        g.throughput(Throughput::Bytes(body.len() as u64));
        // Parse and index: the work the switch does per message read.
        g.bench_function(d.name(), |b| {
            b.iter(|| MessageIndex::parse(d, black_box(&body[..])).expect("valid"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("codec/parse_0200_into");
    for d in Dialect::ALL {
        let body = m.to_bytes(d).expect("encodes");
        let mut index = MessageIndex::new(d);
        // Parse and index into an index kept from the last message, as a link driver would.
        g.bench_function(d.name(), |b| {
            b.iter(|| {
                index.parse_into(d, black_box(&body[..])).expect("valid");
                black_box(index.mti())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("codec/parse_0200_and_read");
    for d in Dialect::ALL {
        let body = m.to_bytes(d).expect("encodes");
        // Parse, then read the fields routing and matching need.
        g.bench_function(d.name(), |b| {
            b.iter(|| {
                let msg = Message::parse(d, black_box(body.clone())).expect("valid");
                black_box((
                    msg.pan().map(|p| p.len()),
                    msg.stan(),
                    msg.transmission_time(),
                    msg.acquirer_id(),
                ))
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let m = typical_0200();
    let mut g = c.benchmark_group("codec/encode_0200");
    for d in Dialect::ALL {
        let mut out = BytesMut::with_capacity(1024);
        g.bench_function(d.name(), |b| {
            b.iter(|| {
                out.clear();
                black_box(&m).encode(d, &mut out).expect("encodes");
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn translate(c: &mut Criterion) {
    let m = typical_0200();
    let mut g = c.benchmark_group("codec/translate_0200");
    for (from, to) in [
        (Dialect::Iso87Ascii, Dialect::Native),
        (Dialect::Native, Dialect::Iso87Ascii),
        (Dialect::Iso87Hex, Dialect::Native),
    ] {
        let body: Bytes = m.to_bytes(from).expect("encodes");
        let mut out = BytesMut::with_capacity(1024);
        // Parse in one dialect and write the other: the per-message cost at a translating edge.
        g.bench_function(format!("{from}_to_{to}"), |b| {
            b.iter(|| {
                out.clear();
                let msg = Message::parse(from, black_box(body.clone())).expect("valid");
                msg.translate(to, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn frame(c: &mut Criterion) {
    let m = typical_0200();
    let mut g = c.benchmark_group("codec/frame_decode_64");
    let native = m.to_bytes(Dialect::Native).expect("encodes");
    let ascii = m.to_bytes(Dialect::Iso87Ascii).expect("encodes");
    let mut nstream = BytesMut::new();
    let mut lstream = BytesMut::new();
    for i in 0..64 {
        NativeFramer::new(FRAME_BYTES_MAX).encode(0, i, &native, &mut nstream).expect("fits");
        LengthDelimited::new(LengthHeader::Bin2, FRAME_BYTES_MAX).encode(&ascii, &mut lstream).expect("fits");
    }
    g.throughput(Throughput::Elements(64));
    // Cut 64 frames out of one read buffer, as a link driver does after a read.
    g.bench_function("native", |b| {
        let mut dec = NativeFramer::new(FRAME_BYTES_MAX);
        b.iter(|| {
            let mut buf = nstream.clone();
            let mut n = 0;
            while let Some(f) = dec.decode(&mut buf).expect("valid") {
                n += f.body().len();
            }
            black_box(n)
        })
    });
    g.bench_function("bin2", |b| {
        let mut dec = LengthDelimited::new(LengthHeader::Bin2, FRAME_BYTES_MAX);
        b.iter(|| {
            let mut buf = lstream.clone();
            let mut n = 0;
            while let Some(f) = dec.decode(&mut buf).expect("valid") {
                n += f.len();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, parse, encode, translate, frame);
criterion_main!(benches);

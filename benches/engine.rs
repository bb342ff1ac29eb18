//! Engine micro-benchmarks: the per-message work of the switch with no I/O.
//!
//! - `routes/lookup`: one route table lookup (DE 100 miss, longest of several BIN lengths).
//! - `engine/round_trip/*`: a request read from the acquirer's link, routed, correlated and
//!   written to the issuer's batch, then the issuer's response read, matched and written to
//!   the acquirer's batch: everything the switch does for one transaction but the syscalls.
//!   Run with `cargo bench -p corridor-benches --bench engine`.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // criterion's macros; a panic aborts the bench

use std::{hint::black_box, time::Instant};

use bytes::BytesMut;
use corridor_benches::{engine_config, frame, route_table, typical_0200};
use corridor_engine::{Engine, Framing, WallClock};
use corridor_wire::{de, Dialect, InstitutionId, LengthHeader, Mti};
use criterion::{criterion_group, criterion_main, Criterion};

fn routes(c: &mut Criterion) {
    let t = route_table();
    let rx = InstitutionId::from_ascii(b"99999999").unwrap();
    c.bench_function("routes/lookup", |b| {
        b.iter(|| {
            let q = corridor_engine::RouteQuery::new(
                Mti::FINANCIAL_REQUEST,
                Some(black_box(&rx)),
                Some(black_box(&b"4761739001010010"[..])),
            );
            t.lookup(&q).map(|r| r.destination)
        })
    });
}

fn round_trip(c: &mut Criterion) {
    let native = (Framing::Native, Dialect::Native);
    let ascii = (Framing::Length(LengthHeader::Bin2), Dialect::Iso87Ascii);
    let mut g = c.benchmark_group("engine/round_trip");
    for (name, acq, iss) in [
        ("native_to_native", native, native),
        ("ascii_to_ascii", ascii, ascii),
        ("ascii_to_native", ascii, native),
    ] {
        let now = Instant::now();
        let mut engine =
            Engine::new(engine_config(acq, iss), WallClock { at: now, unix_secs: 1_795_644_930 });
        let a = engine.link_up(0, now).unwrap();
        let i = engine.link_up(1, now).unwrap();
        let req = typical_0200();
        let mut resp = typical_0200();
        resp.set_mti(Mti::FINANCIAL_RESPONSE);
        resp.remove(de::PIN_BLOCK);
        resp.set(de::RESPONSE_CODE, "00").unwrap();
        // Frames built once. Each iteration completes its transaction before the next, so
        // the same request is never a duplicate of one in flight.
        let req_wire = frame(acq.0, acq.1, 7, &req).to_vec();
        let mut resp_wire = frame(iss.0, iss.1, 0, &resp).to_vec();
        // Where the issuer's correlation goes in its response: the native header's id, or
        // DE 11 (the switch's STAN) in a classic body.
        let classic_stan_at = match iss.0 {
            Framing::Native => None,
            Framing::Length(h) => {
                let body = &resp_wire[h.header_bytes()..];
                let m = corridor_wire::Message::parse(iss.1, body).unwrap();
                let r = m.index().range(de::STAN).unwrap();
                Some((r.start + h.header_bytes())..(r.end + h.header_bytes()))
            }
        };
        let fwd_stan_at = match iss.0 {
            Framing::Native => None,
            Framing::Length(h) => {
                let body = req.to_bytes(iss.1).unwrap();
                let m = corridor_wire::Message::parse(iss.1, &body[..]).unwrap();
                let r = m.index().range(de::STAN).unwrap();
                Some((r.start + h.header_bytes())..(r.end + h.header_bytes()))
            }
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut wire = BytesMut::from(&req_wire[..]);
                engine.handle_read(a, &mut wire, now);
                let out = engine.take_output(i).expect("forwarded");
                match (&classic_stan_at, &fwd_stan_at) {
                    (Some(at), Some(from)) => resp_wire[at.clone()].copy_from_slice(&out[from.clone()]),
                    _ => {
                        let corr = corridor_wire::NativeHeader::peek(&out).unwrap().correlation();
                        resp_wire[12..20].copy_from_slice(&corr.to_be_bytes());
                    }
                }
                let mut back = BytesMut::from(&resp_wire[..]);
                engine.handle_read(i, &mut back, now);
                let relayed = engine.take_output(a).expect("relayed");
                engine.handle_written(a, relayed.len());
                black_box(relayed)
            })
        });
        assert_eq!(engine.requests_pending(), 0, "every request was matched");
    }
    g.finish();
}

criterion_group!(benches, routes, round_trip);
criterion_main!(benches);

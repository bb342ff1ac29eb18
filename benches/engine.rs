//! Engine micro-benchmarks: the per-message work of the switch with no I/O.
//!
//! - `routes/lookup`: one route table lookup (DE 100 miss, longest of several BIN lengths).
//! - `engine/round_trip/*`: a request read from the acquirer's link, routed, correlated and
//!   written to the issuer's batch, then the issuer's response read, matched and written to
//!   the acquirer's batch: everything the switch does for one transaction but the syscalls.
//!   `qr_native_to_native` is a QR payment instead ([`qr_0200`]: routed by the networks its
//!   payload carries, the merchant's fields taken from it), `qr_fx_native_to_native` the same
//!   with the wallet's and the settlement currency filled from the rate table.
//!   Run with `cargo bench -p corridor-benches --bench engine`.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // criterion's macros; a panic aborts the bench

use std::{hint::black_box, time::Instant};

use bytes::BytesMut;
use corridor_benches::{engine_config, frame, qr_0200, qr_config, route_table, typical_0200};
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
    for (name, acq, iss, qr) in [
        ("native_to_native", native, native, None),
        ("ascii_to_ascii", ascii, ascii, None),
        ("ascii_to_native", ascii, native, None),
        ("qr_native_to_native", native, native, Some(false)),
        ("qr_fx_native_to_native", native, native, Some(true)),
    ] {
        let now = Instant::now();
        let config = match qr {
            None => engine_config(acq, iss),
            Some(fx) => qr_config(acq, iss, fx),
        };
        let mut engine = Engine::new(config, WallClock { at: now, unix_secs: 1_795_644_930 });
        let a = engine.link_up(0, now).unwrap();
        let i = engine.link_up(1, now).unwrap();
        let req = if qr.is_some() { qr_0200() } else { typical_0200() };
        let mut resp = req.clone();
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
        // Each iteration's request has a STAN and DE 7 of its own: a repeat of a completed
        // request would be answered from its outcome, never forwarded.
        let at = |id| {
            let skip = match acq.0 {
                Framing::Native => corridor_wire::limits::NATIVE_HEADER_BYTES,
                Framing::Length(h) => h.header_bytes(),
            };
            let m = corridor_wire::Message::parse(acq.1, &req_wire[skip..]).unwrap();
            let r = m.index().range(id).unwrap();
            (r.start + skip)..(r.end + skip)
        };
        let (req_stan_at, req_time_at) = (at(de::STAN), at(de::TRANSMISSION_TIME));
        let resp_native_stan_at = match iss.0 {
            Framing::Native => {
                let skip = corridor_wire::limits::NATIVE_HEADER_BYTES;
                let m = corridor_wire::Message::parse(iss.1, &resp_wire[skip..]).unwrap();
                let r = m.index().range(de::STAN).unwrap();
                Some((r.start + skip)..(r.end + skip))
            }
            _ => None,
        };
        let mut n = 0u64;
        let mut req_wire = req_wire;
        g.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                // The STAN, and the last four digits of DE 7 (mmss) for every million.
                for (range, digits) in [
                    (req_stan_at.clone(), format!("{:06}", n % 1_000_000)),
                    (
                        req_time_at.end - if acq.1 == Dialect::Native { 2 } else { 4 }..req_time_at.end,
                        format!("{:04}", n / 1_000_000 % 10_000),
                    ),
                ] {
                    let d = digits.as_bytes();
                    match acq.1 {
                        Dialect::Native => {
                            for (k, o) in req_wire[range].iter_mut().enumerate() {
                                *o = ((d[2 * k] - b'0') << 4) | (d[2 * k + 1] - b'0');
                            }
                        }
                        _ => req_wire[range].copy_from_slice(d),
                    }
                }
                let mut wire = BytesMut::from(&req_wire[..]);
                engine.handle_read(a, &mut wire, now);
                let out = engine.take_output(i).expect("forwarded");
                match (&classic_stan_at, &fwd_stan_at) {
                    (Some(at), Some(from)) => resp_wire[at.clone()].copy_from_slice(&out[from.clone()]),
                    _ => {
                        let corr = corridor_wire::NativeHeader::peek(&out).unwrap().correlation();
                        resp_wire[12..20].copy_from_slice(&corr.to_be_bytes());
                        // A native issuer echoes the STAN it was sent: the originator's.
                        if let Some(at) = &resp_native_stan_at {
                            let d = format!("{:06}", n % 1_000_000);
                            let d = d.as_bytes();
                            for (k, o) in resp_wire[at.clone()].iter_mut().enumerate() {
                                *o = ((d[2 * k] - b'0') << 4) | (d[2 * k + 1] - b'0');
                            }
                        }
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

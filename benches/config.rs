//! Loading a configuration with a BIN table of 1,000,000 routes from a CSV route file, and
//! 100,000 routes written in the TOML file itself: `config/routes_1m_csv`,
//! `config/routes_100k_toml`.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // a benchmark

use std::fmt::Write as _;

use corridor_config::fixture::{two_participants, FixtureLink};
use criterion::{criterion_group, criterion_main, Criterion};

fn routes(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("corridor-bench-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("pan_prefix,destination\n");
    for i in 0..1_000_000u32 {
        let _ = writeln!(csv, "{},iss", 40_000_000 + i);
    }
    std::fs::write(dir.join("bins.csv"), csv).unwrap();
    let switch = two_participants(&FixtureLink::native("127.0.0.1:0"), &FixtureLink::native("127.0.0.1:9"));
    let with_file = format!("[switch]\nroute_files = [\"bins.csv\"]\n{switch}");
    let mut with_toml = switch.clone();
    for i in 0..100_000u32 {
        let _ =
            write!(with_toml, "\n[[route]]\npan_prefix = \"{}\"\ndestination = \"iss\"\n", 40_000_000 + i);
    }
    let mut g = c.benchmark_group("config");
    g.sample_size(10);
    g.bench_function("routes_1m_csv", |b| {
        b.iter(|| corridor_config::parse_in(&with_file, &dir).unwrap().engine.routes.routes().len())
    });
    g.bench_function("routes_100k_toml", |b| {
        b.iter(|| corridor_config::parse_in(&with_toml, &dir).unwrap().engine.routes.routes().len())
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, routes);
criterion_main!(benches);

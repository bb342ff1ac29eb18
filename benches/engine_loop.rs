//! Runs whole transactions through the engine a fixed number of times (native on both
//! sides, no I/O): a steady workload for instruction counts.
//!
//! ```sh
//! cargo build --release -p corridor-benches --example engine_loop
//! valgrind --tool=callgrind target/release/examples/engine_loop
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: a panic is a broken fixture

use std::time::{Duration, Instant};

use bytes::BytesMut;
use corridor_benches::typical_0200;
use corridor_engine::{
    Config, Engine, Framing, LinkSpec, Participant, Roles, Route, RouteKey, RouteTable, Settings, WallClock,
};
use corridor_wire::{de, Dialect, InstitutionId, LengthDelimited, Mti, NativeFramer, FRAME_BYTES_MAX};

/// Transactions per run.
const ITERATIONS: u32 = 100_000;

fn table() -> RouteTable {
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

fn config(acq: (Framing, Dialect), iss: (Framing, Dialect)) -> Config {
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
    };
    Config {
        participants: vec![
            Participant {
                id: "acq".into(),
                name: "acq".into(),
                roles: Roles { acquirer: true, ..Roles::default() },
                acquirer_ids: vec![InstitutionId::from_ascii(b"12345678").unwrap()],
                forwarder_ids: vec![],
            },
            Participant {
                id: "iss".into(),
                name: "iss".into(),
                roles: Roles { issuer: true, ..Roles::default() },
                acquirer_ids: vec![],
                forwarder_ids: vec![],
            },
        ],
        links: vec![link("acq", 0, false, acq), link("iss", 1, false, iss)],
        routes: table(),
        settings: Settings::default(),
    }
}

fn frame(f: Framing, d: Dialect, correlation: u64, m: &corridor_wire::OwnedMessage) -> BytesMut {
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

fn main() {
    let native = (Framing::Native, Dialect::Native);
    let now = Instant::now();
    let mut engine = Engine::new(config(native, native), WallClock { at: now, unix_secs: 1_795_644_930 });
    let a = engine.link_up(0, now).unwrap();
    let i = engine.link_up(1, now).unwrap();
    let req = typical_0200();
    let mut resp = typical_0200();
    resp.set_mti(Mti::FINANCIAL_RESPONSE);
    resp.remove(de::PIN_BLOCK);
    resp.set(de::RESPONSE_CODE, "00").unwrap();
    let req_wire = frame(Framing::Native, Dialect::Native, 7, &req).to_vec();
    let mut resp_wire = frame(Framing::Native, Dialect::Native, 0, &resp).to_vec();
    let mut bytes = 0usize;
    for _ in 0..ITERATIONS {
        let mut wire = BytesMut::from(&req_wire[..]);
        engine.handle_read(a, &mut wire, now);
        let out = engine.take_output(i).expect("forwarded");
        let corr = corridor_wire::NativeHeader::peek(&out).unwrap().correlation();
        resp_wire[12..20].copy_from_slice(&corr.to_be_bytes());
        let mut back = BytesMut::from(&resp_wire[..]);
        engine.handle_read(i, &mut back, now);
        bytes += engine.take_output(a).expect("relayed").len();
    }
    assert_eq!(engine.requests_pending(), 0);
    println!("{ITERATIONS} transactions, {bytes} bytes relayed");
}

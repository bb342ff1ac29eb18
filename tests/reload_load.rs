//! Twenty configuration reloads during a load of 10,000 requests a second, through the
//! reload `SIGHUP` and `POST /reload` run (`corridor_ops::serve::reloader`, the admin server's
//! endpoint, the switch's one-step reconfiguration): nothing lost, declined or timed out
//! because of a reload. (`SIGHUP` itself, on the real binary: `crates/corridor/tests/ops.rs`.)

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use corridor_config::fixture::{two_participants, FixtureLink};
use corridor_load::{
    respond::{RespondSpec, Responder},
    run::{run, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    wire::Wire,
};
use corridor_tests::{ops::http, switch::TestSwitch};

/// The load, per second.
const RATE: f64 = 10_000.0;
/// Reloads during it.
const RELOADS: usize = 20;
const TOKEN: &str = "reload-test-token-0123456789";

fn config(issuer: std::net::SocketAddr, extra: &str, timeout_ms: u64, acq_inflight: u32) -> String {
    // The issuer's limit is above any the acquirer's is raised to: a destination at its
    // limit declines (91), which is the limit working, not the reload.
    let participants = two_participants(
        &FixtureLink::native("127.0.0.1:0")
            .with("sign_on_required = false")
            .with(format!("inflight_max = {acq_inflight}"))
            .with(extra),
        &FixtureLink::native(issuer).with("inflight_max = 8192"),
    );
    format!(
        r#"{participants}
[[route]]
default = true
destination = "iss"
timeout_ms = {timeout_ms}
"#
    )
}

#[test]
fn twenty_reloads_under_ten_thousand_requests_a_second_lose_decline_and_time_out_nothing() {
    let sim = Responder::start(RespondSpec::listen("127.0.0.1:0".parse().unwrap(), Wire::NATIVE)).unwrap();
    let issuer = sim.local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("corridor-reload-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switch.toml");
    // A: as started. B: another route timeout, the acquirer's in-flight limit doubled, one
    // more link (listening).
    let extra_port = corridor_tests::free_port();
    let a = config(issuer, "", 5000, 1024);
    let b = config(
        issuer,
        &format!(
            "  [[participant.link]]\n  name = \"acq-extra\"\n  mode = \"listen\"\n  address = \"127.0.0.1:{extra_port}\"\n  \
             framing = \"native\"\n  dialect = \"native\"\n"
        ),
        6000,
        2048,
    );
    std::fs::write(&path, &a).unwrap();
    let loaded = corridor_config::load(&path).unwrap();
    let current = Arc::new(tokio::sync::Mutex::new(corridor_config::reload::Current::of(&loaded)));
    let switch = TestSwitch::start(&a);
    switch.wait_signed_on(&["iss-1"]);
    let handle = switch.handle().clone();
    let counts = Arc::new(corridor_ops::admin::ReloadCounts::default());
    let token = Arc::new(RwLock::new(TOKEN.to_owned()));
    let reloader = corridor_ops::serve::reloader(
        corridor_ops::serve::Origin { path: path.clone(), node: None, shared: None },
        current,
        handle.clone(),
        Arc::clone(&counts),
        Arc::clone(&token),
    );
    let admin = corridor_ops::admin::start(
        corridor_ops::admin::listen("127.0.0.1:0".parse().unwrap()).unwrap(),
        corridor_ops::admin::AdminConfig {
            token,
            token_name: "test".into(),
            journal_dir: None,
            reloader: Some(reloader),
            reload_counts: Arc::clone(&counts),
            cluster: None,
        },
        handle,
    )
    .unwrap();

    let mut spec = RunSpec::new(switch.addr("acq-1"), Wire::NATIVE);
    spec.mode = Mode::Open { rate: RATE, arrivals: Arrivals::Constant, pacing: Pacing::Sleep };
    spec.connections = 2;
    spec.sign_on = false;
    spec.duration = Some(Duration::from_secs(7));
    spec.request_timeout = Duration::from_secs(5);
    let load = std::thread::spawn(move || run(&spec).unwrap());

    // Twenty reloads, alternating, a quarter second apart, from the second second on.
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..RELOADS {
        std::fs::write(&path, if i % 2 == 0 { &b } else { &a }).unwrap();
        let (code, body) = http(admin.address(), "POST", "/reload", Some(TOKEN)).unwrap();
        assert_eq!(code, 200, "reload {i}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let changes = v["changes"].as_array().map_or(0, Vec::len);
        assert!(changes >= 3, "reload {i} changed the route, a limit and the links: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let o = load.join().unwrap();
    let c = &o.recorder.counts;
    let secs = o.info.measured_s;
    eprintln!(
        "reload under load: {RELOADS} reloads; sent {} in {secs:.1} s ({:.0}/s); answered {}, codes {:?}, timeouts {}, unanswered {}, errors {}, skipped {}",
        c.sent,
        c.sent as f64 / secs,
        c.answered,
        c.codes,
        c.timeouts,
        c.unanswered,
        c.errors,
        c.skipped
    );
    assert_eq!(c.answered, c.sent, "every request answered: {c:?}");
    // (Sends the generator skipped because a connection had its own in-flight maximum open —
    // on a machine too loaded to keep the schedule — were never sent: nothing to answer.)
    assert_eq!((c.timeouts, c.unanswered, c.errors), (0, 0, 0), "{c:?}");
    assert_eq!(c.codes.get("00").copied(), Some(c.sent), "every request approved, none declined: {c:?}");
    assert_eq!(counts.0[0].load(std::sync::atomic::Ordering::Relaxed), RELOADS as u64, "all applied");
    let report = switch.handle().report_blocking().unwrap();
    assert_eq!(report.stats.timeouts, 0);
    assert_eq!(report.stats.declines.iter().sum::<u64>(), 0, "no switch-made decline");
    assert_eq!(sim.stop().received("0200"), c.sent, "the issuer saw each request once");
    admin.stop();
    std::fs::remove_dir_all(&dir).ok();
}

//! `corridor-load demo --cluster`, the README's cluster quick start, over this `corridor`
//! binary and three real `nats-server`: node a is killed under load, the partner fails over
//! to the standby, and every side agrees — each purchase answered once, every approval the
//! network gave delivered or reversed, none twice.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use std::time::Duration;

use corridor_load::demo_cluster::{run, ClusterDemoSpec};

#[test]
fn the_cluster_demo_fails_over_to_the_standby_and_every_side_agrees() {
    let spec = ClusterDemoSpec {
        rate: 200.0,
        duration: Duration::from_secs(6),
        corridor: env!("CARGO_BIN_EXE_corridor").into(),
        nats_server: corridor_tests::nats::nats_server(),
    };
    let r = run(&spec).unwrap();
    let text = r.text();
    assert!(r.agrees(), "{text}");
    assert_eq!(r.unanswered, 0, "{text}");
    assert_eq!(r.answers.values().sum::<u64>(), r.sent, "one answer a purchase: {text}");
    assert!(r.sent >= 1_000, "the partner paid throughout: {text}");
    let took = r.takeover.expect("node b answered after the kill");
    assert!(took < Duration::from_secs(10), "within a partner's timeout: {text}");
    let approved = r.answers.get("00").copied().unwrap_or(0);
    assert_eq!(r.network_approved, approved + r.network_reversed, "{text}");
    assert!(text.contains("nothing lost"), "{text}");
    eprintln!("{text}");
}

//! `corridor-load demo`, the README's first command: it runs on embedded defaults, and what the
//! acquirer, the switch and the simulated networks report agrees.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use std::{process::Command, time::Duration};

use corridor_load::demo::{run, DemoSpec};

#[test]
fn the_demo_drives_both_networks_and_every_side_agrees() {
    let r = run(DemoSpec { rate: 400.0, duration: Duration::from_secs(2) }).unwrap();
    let c = &r.summary.counts;
    assert!(c.sent > 200, "{c:?}");
    assert_eq!((c.answered, c.timeouts, c.unanswered, c.errors), (c.sent, 0, 0, 0), "{c:?}");
    // The networks decline a few; nothing else declines (QR payments included: every code
    // the load pays has a route, a rate and no limit).
    for code in c.codes.keys() {
        assert!(["00", "05", "51"].contains(&code.as_str()), "unexpected code {code}: {c:?}");
    }
    // Both networks were reached by BIN, and everything the switch forwarded reached one.
    let reached: u64 =
        r.networks.iter().map(|(_, n)| n.received("0100") + n.received("0200") + n.received("0420")).sum();
    assert!(r.networks.iter().all(|(_, n)| n.received("0200") > 0), "both networks get traffic");
    // The acquirer's own reversals are stored, acknowledged, and forwarded from the store.
    let st = &r.switch.stats;
    assert!(st.advices_stored > 0, "the acquirer reverses some: {st:?}");
    assert_eq!(reached, st.forwarded + st.reversals_sent, "{st:?}");
    assert_eq!(st.reversals_sent, st.advices_stored, "each stored reversal sent once: {st:?}");
    assert_eq!(st.reversals_acked, st.advices_stored, "and acknowledged by its network: {st:?}");
    assert_eq!(st.forwarded, st.relayed, "every forwarded request was answered");
    let frames = |name: &str| r.switch.links.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(
        frames("wallet-sg-1").frames_in,
        frames("wallet-sg-1").frames_out,
        "one answer per message in"
    );
    assert!(frames("napas-vn-1").frames_out > 0 && frames("promptpay-th-1").frames_out > 0);
    let (records, _) = r.journal.expect("the demo journals");
    assert!(
        records as u64 >= 3 * r.switch.stats.forwarded,
        "accepted, forwarded and answered, each journaled"
    );
    // One payment of each flow, each converted into the wallet's currency and settled in
    // USD (a network may decline one: 05 or 51).
    assert_eq!(r.payments.len(), 3);
    for (p, (flow, wallet)) in
        r.payments.iter().zip([("inbound", "THB"), ("outbound", "SGD"), ("third-market", "THB")])
    {
        assert!(p.starts_with(flow), "{p}");
        let answered = p.rsplit("answered ").next().unwrap();
        assert!(["00", "05", "51"].contains(&answered), "{p}");
        assert!(p.contains(&format!(" {wallet} (rate ")) && p.contains(" USD (rate "), "{p}");
    }
    // The day's clearing: totals per currency and each participant's position, from the
    // journal; the QR payments of the load are among them (VND and THB merchants).
    assert!(r.clearing[0].contains("approved payments not reversed"), "{:?}", r.clearing);
    for part in [" VND", " THB", " SGD", "position  wallet-sg     against napas-vn"] {
        assert!(r.clearing.iter().any(|l| l.contains(part)), "{part}: {:?}", r.clearing);
    }
    let text = r.text();
    for part in [
        "== the acquirer",
        "== the switch, per link ==",
        "napas-vn-1",
        "promptpay-th",
        "verdict",
        "journal: ",
        "== cross-border QR payments",
        "== the day's clearing",
    ] {
        assert!(text.contains(part), "missing {part}:\n{text}");
    }
}

#[test]
fn the_binary_runs_the_demo_and_refuses_silly_arguments() {
    let exe = env!("CARGO_BIN_EXE_corridor-load");
    let out = Command::new(exe).args(["demo", "--seconds", "2", "--rate", "200"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("== the simulated networks =="), "{text}");
    let out = Command::new(exe).args(["demo", "--seconds", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seconds 2 to 600"));
    let out = Command::new(exe).args(["demo", "--cluster", "--seconds", "2"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seconds 4 to 600"));
}

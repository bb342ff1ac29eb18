//! The live monitoring page in a real browser: headless Chromium (driven through the
//! DevTools protocol by `tests/interop/browser_page.py`) opens it while a load runs; the
//! figures it shows change from one second to the next, agree with the switch's own counts,
//! the page fetches nothing from elsewhere, and an anomaly the switch detects (a link that
//! flaps) appears on it and in the metrics. A screenshot is saved under `target/`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::{process::Command, time::Duration};

use corridor_load::{
    respond::Latency,
    run::{run, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    wire::Wire,
};
use corridor_tests::{
    ops::{OpsSwitch, TOKEN},
    python::{python, workspace_file},
};

/// Samples the page is read at while the load runs, and the gap between them.
const SAMPLES: usize = 3;
const GAP_S: f64 = 1.5;
/// The load: long enough that a slow browser start still reads three samples during it.
const LOAD: Duration = Duration::from_secs(12);

/// Opens the page in the browser and reads it `samples` times, `GAP_S` apart; saves a
/// screenshot to `shot`.
fn read_page(ops: &OpsSwitch, shot: &std::path::Path, samples: usize) -> Vec<serde_json::Value> {
    let url = format!("http://{}/login?token={TOKEN}", ops.admin);
    let out = Command::new(python())
        .arg(workspace_file("tests/interop/browser_page.py"))
        .arg(&url)
        .arg(shot)
        .arg(samples.to_string())
        .arg(GAP_S.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "browser_page.py: {}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v.len(), samples);
    v
}

#[test]
fn the_page_shows_live_figures_that_match_the_switch_and_its_anomalies() {
    let ops = OpsSwitch::start(0.9, Latency::Fixed(Duration::from_millis(1)));
    let mut spec = RunSpec::new(ops.acquirer, Wire::NATIVE);
    spec.mode = Mode::Open { rate: 1000.0, arrivals: Arrivals::Constant, pacing: Pacing::Sleep };
    spec.sign_on = false;
    spec.duration = Some(LOAD);
    let load = std::thread::spawn(move || run(&spec).unwrap());

    // The idle issuer's link closed three times: it flaps.
    for _ in 0..3 {
        let (code, body) = ops.admin("POST", "/links/promptpay-th-1/close");
        assert_eq!(code, 200, "{body}");
        ops.switch.wait_signed_on(&["promptpay-th-1"]);
        std::thread::sleep(Duration::from_millis(100));
    }

    let shot = workspace_file("target/monitoring-page.png");
    let samples = read_page(&ops, &shot, SAMPLES);
    let during_load = !load.is_finished();
    let o = load.join().unwrap();
    let sent = o.recorder.counts.sent;
    let num =
        |v: &serde_json::Value, k: &str| v[k].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(-1.0);

    // Live: updated once a second or more, and the figures moved while the load ran.
    let updates: Vec<u64> = samples.iter().map(|s| s["updates"].as_u64().unwrap()).collect();
    assert!(updates.windows(2).all(|w| w[1] > w[0]), "an update between every two samples: {updates:?}");
    let seen: Vec<f64> = samples.iter().map(|s| num(s, "requests_in")).collect();
    assert!(during_load, "the samples were read while the load ran");
    assert!(seen[1] > seen[0] && seen[2] > seen[1], "requests in grew while the load ran: {seen:?}");
    assert!(num(&samples[1], "tps") > 500.0, "about 1000/s shown: {}", samples[1]);
    assert!(
        samples.iter().all(|s| s["external"].as_array().unwrap().is_empty()),
        "nothing fetched from elsewhere"
    );
    assert!(samples[0]["tps_points"].as_u64().unwrap() >= 2, "the chart has points");
    assert_eq!(samples[0]["state"], "live");
    assert_eq!(samples[0]["cluster_shown"], false, "a single node shows no cluster panel");

    // After the load (and a sample of the switch since): the page shows exactly its counts.
    std::thread::sleep(Duration::from_secs(2));
    let after = read_page(&ops, &shot, 1);
    let report = ops.switch.handle().report_blocking().unwrap();
    let last = &after[0];
    assert_eq!(report.stats.requests_in, sent, "the switch took in every request sent");
    assert_eq!(num(last, "requests_in"), report.stats.requests_in as f64, "{last}");
    assert_eq!(num(last, "answered"), report.stats.relayed as f64, "{last}");
    let approved = o.recorder.counts.codes.get("00").copied().unwrap_or(0);
    assert_eq!(num(last, "approved"), approved as f64, "{last}");
    let ratio = num(&samples[1], "approval");
    assert!((0.8..=1.0).contains(&ratio), "about 90% approved: {ratio}");
    assert_eq!(last["destinations"], serde_json::json!(["napas-vn"]));
    let links = last["links"].as_array().unwrap();
    assert!(links.iter().any(|l| l[0] == "napas-vn-1" && l[1] == "signed_on"), "{links:?}");

    // The flapping link is an anomaly on the page and in the metrics.
    assert!(
        samples.iter().chain(&after).any(|s| s["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "link_flapping")),
        "{samples:?}"
    );
    let (_, metrics) = ops.admin("GET", "/metrics");
    assert!(
        metrics.contains("corridor_anomaly_active{kind=\"link_flapping\",subject=\"promptpay-th-1\"} 1"),
        "{metrics}"
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a screenshot of the page");
    eprintln!("screenshot: {}", shot.display());
}

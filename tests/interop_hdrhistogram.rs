//! corridor-load's HdrHistogram outputs read by HdrHistogram_py, an implementation we did not
//! write: every row of the `.hgrm` percentile distribution (and its footer) agrees with its
//! reading of the same histogram, decoded from our `.hlog` encoding, and every interval of a
//! run's `.hlog` decodes to what the run reported for that second. The HTML report is checked
//! with Python's HTML and XML parsers (`tests/interop/html_check.py`).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

use std::{net::SocketAddr, process::Command, time::Duration};

use corridor_load::{
    recorder::histogram,
    report::{hgrm, hlog},
    respond::{Latency, RespondSpec, Responder},
    run::{run, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    wire::Wire,
};
use corridor_tests::python::{python, workspace_file};
use serde_json::Value;

fn check(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(workspace_file("tests/interop/hdrh_check.py"))
        .args(args)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "hdrh_check.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("corridor-hdrh-{}-{name}", std::process::id()))
}

#[test]
fn the_hgrm_agrees_with_hdrhistogram_on_the_same_histogram() {
    // A wide, skewed spread: 10 µs to about 50 ms.
    let mut h = histogram(3);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = 10_000 + (x % 1000) * (x % 1000) * (x % 50);
        h.record(v).unwrap();
    }
    let (log, text) = (temp("one.hlog"), temp("one.hgrm"));
    std::fs::write(&log, hlog(&[(0, h.clone())], std::time::SystemTime::now())).unwrap();
    std::fs::write(&text, hgrm(&h)).unwrap();
    let r = check(&["hgrm", log.to_str().unwrap(), text.to_str().unwrap()]);
    assert_eq!(r["total"], 50_000);
    assert!(r["rows"].as_u64().unwrap() > 50);
    let _ = (std::fs::remove_file(log), std::fs::remove_file(text));
}

#[test]
fn every_second_of_a_run_decodes_from_the_hlog_and_the_html_report_renders() {
    let mut rs = RespondSpec::listen(SocketAddr::from(([127, 0, 0, 1], 0)), Wire::NATIVE);
    rs.latency = Latency::Fixed(Duration::ZERO);
    let sim = Responder::start(rs).unwrap();
    let mut spec = RunSpec::new(sim.local_addr().unwrap(), Wire::NATIVE);
    spec.mode = Mode::Open { rate: 1000.0, arrivals: Arrivals::Constant, pacing: Pacing::Sleep };
    spec.duration = Some(Duration::from_millis(2500));
    let o = run(&spec).unwrap();
    let log = temp("run.hlog");
    std::fs::write(&log, hlog(&o.intervals, o.started_at)).unwrap();
    let decoded = check(&["hlog", log.to_str().unwrap()]);
    let decoded = decoded.as_array().unwrap();
    assert_eq!(decoded.len(), o.intervals.len());
    let total: u64 = decoded.iter().map(|d| d["total"].as_u64().unwrap()).sum();
    assert_eq!(total, o.recorder.counts.answered, "every answer is in one interval");
    for d in decoded {
        let second = d["start"].as_f64().unwrap() as u64;
        let row = o.timeline.iter().find(|r| r.second == second).unwrap();
        assert_eq!(d["total"].as_u64().unwrap(), row.answered, "second {second}");
        assert_eq!(d["duration"].as_f64().unwrap(), 1.0);
        // Same histogram: the same max, to its precision.
        let (theirs, ours) = (d["max_ns"].as_f64().unwrap(), row.max_ns as f64);
        assert!((theirs - ours).abs() <= 0.01 * ours, "second {second}: max {theirs} vs {ours}");
    }
    let _ = std::fs::remove_file(log);

    // The HTML report of the same run: a document a browser can render, two charts of
    // well-formed SVG with every point inside its view box, nothing fetched.
    let html = temp("run.html");
    std::fs::write(&html, o.summary(&[]).html(&o.recorder)).unwrap();
    let out = Command::new(python())
        .arg(workspace_file("tests/interop/html_check.py"))
        .arg(&html)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "html_check.py: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["charts"], 2);
    for n in r["points"].as_array().unwrap() {
        assert!(n.as_u64().unwrap() >= 2, "every chart draws lines: {r}");
    }
    let _ = std::fs::remove_file(html);
}

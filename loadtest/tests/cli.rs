//! The `corridor-load` binary: `respond` and `run` as separate processes on loopback, the
//! output files, the exit status of thresholds, and stalling the simulator by signal.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

const EXE: &str = env!("CARGO_BIN_EXE_corridor-load");

struct Sim {
    child: Child,
    addr: String,
}

impl Sim {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(EXE)
            .args(["respond", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").expect("first line says where").to_owned();
        Self { child, addr }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok);
    }

    /// SIGTERM, then the counts it printed.
    fn stop(mut self) -> serde_json::Value {
        self.signal("-TERM");
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "respond exits 0 on SIGTERM");
        let err = String::from_utf8(out.stderr).unwrap();
        let json = &err[err.find('{').expect("counts printed")..];
        serde_json::from_str(json.trim()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(addr: &str, extra: &[&str]) -> std::process::Output {
    Command::new(EXE)
        .args(["run", "--target", addr, "--mode", "closed", "--inflight", "4", "--warmup", "0s", "-q"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn run_writes_every_output_and_thresholds_set_the_exit_status() {
    let sim = Sim::start(&[]);
    let dir = std::env::temp_dir().join(format!("corridor-load-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let out = run(
        &sim.addr,
        &[
            "--requests",
            "800",
            "--json",
            "-",
            "--hgrm",
            &f("r.hgrm"),
            "--csv",
            &f("r.csv"),
            "--html",
            &f("r.html"),
            "--threshold",
            "p99<10s",
            "--threshold",
            "max<=60s",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["sent"], 800);
    assert_eq!(summary["counts"]["codes"]["00"], 800);
    assert_eq!(summary["thresholds"].as_array().unwrap().len(), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("round trip (capacity)"),
        "the table goes to stderr with --json -"
    );
    let hgrm = std::fs::read_to_string(f("r.hgrm")).unwrap();
    assert!(hgrm.contains("Total count    =          800"), "{hgrm}");
    assert!(std::fs::read_to_string(f("r.csv")).unwrap().starts_with("second,sent,answered"));
    assert!(std::fs::read_to_string(f("r.html")).unwrap().contains("<svg"));

    let fail = run(&sim.addr, &["--requests", "100", "--threshold", "p50<1ns"]);
    assert_eq!(fail.status.code(), Some(3), "a failed threshold exits 3");
    assert!(String::from_utf8_lossy(&fail.stdout).contains("FAIL"));

    let bad = run(&sim.addr, &["--requests", "100", "--threshold", "p99>1ms"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected METRIC<VALUE"));

    let counts = sim.stop();
    assert_eq!(counts["received"]["0200"], 900, "the simulator counted what both runs sent");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stalled_simulator_makes_requests_time_out_and_resumes() {
    let sim = Sim::start(&[]);
    sim.signal("-USR1");
    std::thread::sleep(Duration::from_millis(200));
    let out = run(
        &sim.addr,
        &["--requests", "4", "--timeout", "300ms", "--drain-timeout", "2s", "--no-sign-on", "--json", "-"],
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["counts"]["timeouts"], 4, "{s}");
    assert_eq!(s["valid"], false, "nothing answered is not a valid run");
    sim.signal("-USR1");
    std::thread::sleep(Duration::from_millis(200));
    let out = run(&sim.addr, &["--requests", "50", "--json", "-"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["counts"]["answered"], 50, "resumed: {s}");
    sim.stop();
}

#[test]
fn unreachable_targets_and_bad_arguments_are_clear_errors() {
    let out = run("127.0.0.1:1", &["--requests", "10", "--connect-timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to 127.0.0.1:1"));
    let out = Command::new(EXE)
        .args(["run", "--framing", "native", "--dialect", "iso87-ascii", "--requests", "1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not carry"));
    let out = Command::new(EXE).args(["run", "--rate", "0", "--requests", "1"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate must be above 0"));
    let out = Command::new(EXE).args(["respond"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one of --listen and --dial"));
}

#[test]
fn compare_runs_each_path_interleaved_and_reports_medians() {
    let json = std::env::temp_dir().join(format!("corridor-compare-{}.json", std::process::id()));
    // The direct path needs only this binary; HAProxy joins when installed, and is skipped
    // with a note when it is not.
    let out = Command::new(EXE)
        .args(["compare", "--paths", "direct,haproxy", "--repeat", "2", "--placement", "none"])
        .args(["--mode", "closed", "--inflight", "4", "--requests", "400", "--warmup", "0s"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("direct") && table.contains("1.00×"), "{table}");
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = c["runs"].as_array().unwrap();
    let paths: Vec<&str> = runs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    if c["skipped"].as_array().unwrap().is_empty() {
        assert_eq!(paths, ["direct", "haproxy", "direct", "haproxy"], "interleaved");
    } else {
        assert_eq!(paths, ["direct", "direct"]);
        assert!(table.contains("skipped: haproxy"));
    }
    for r in runs {
        assert_eq!(r["summary"]["counts"]["answered"], 400);
    }
    let _ = std::fs::remove_file(&json);
}

#[test]
fn a_paused_generator_comes_back_and_flags_its_run() {
    // Ctrl-Z then `fg`, a debugger, a paused container: SIGSTOP / SIGCONT mid-run.
    let sim = Sim::start(&[]);
    let child = Command::new(EXE)
        .args(["run", "--target", &sim.addr, "--rate", "500", "--duration", "3s", "--warmup", "0s", "-q"])
        .args(["--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::sleep(Duration::from_millis(800));
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(700));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || out.status.code() == Some(4), "the run finishes: {err}");
    assert!(!err.contains("Interrupted"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(s["counts"]["answered"].as_u64().unwrap() > 500, "{s}");
    assert_eq!(s["valid"], false, "a schedule that slipped 700 ms is flagged: {s}");
    sim.stop();
}

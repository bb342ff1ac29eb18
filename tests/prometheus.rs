//! A real Prometheus (Debian's `prometheus` package) scraping a running switch under load:
//! the official Python client's OpenMetrics parser accepts the exposition, `promtool` checks
//! and unit-tests the alert rules, Prometheus's own query API answers
//! `histogram_quantile(0.99, …)` with a sensible latency, the shipped alert rules load and
//! evaluate cleanly, and every expression of the shipped Grafana dashboard and alert rules
//! evaluates without error against what the switch exports.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::{
    io::Write,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use corridor_load::{
    respond::Latency,
    run::{run, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    wire::Wire,
};
use corridor_tests::{
    ops::{http, OpsSwitch, TOKEN},
    python::workspace_file,
};

const RULES: &str = "crates/corridor/ops/prometheus/corridor-alerts.yml";
const DASHBOARD: &str = "crates/corridor/ops/grafana/corridor-dashboard.json";
/// The longest any wait here takes.
const WAIT_MAX: Duration = Duration::from_secs(30);

fn tool(name: &str) -> std::path::PathBuf {
    ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed (Debian: apt-get install prometheus); tests/run, the README's test command, installs it")
        })
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on `addr`: status and body (Prometheus answers chunked: the JSON object is
/// taken out of the chunk framing).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Some((status, body)) = http(addr, "GET", path, None) else { return (0, String::new()) };
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b >= a => body[a..=b].to_owned(),
        _ => body,
    };
    (status, body)
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(prom: SocketAddr, q: &str) -> serde_json::Value {
    let (code, body) = get(prom, &format!("/api/v1/query?query={}", encode(q)));
    assert_eq!(code, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{q}: {e}: {body}"));
    assert_eq!(v["status"], "success", "{q}: {body}");
    v
}

fn scalar(v: &serde_json::Value) -> Option<f64> {
    v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse().ok())
}

#[test]
fn prometheus_scrapes_the_switch_under_load_and_answers_histogram_quantile() {
    let (prometheus, promtool) = (tool("prometheus"), tool("promtool"));
    let ops = OpsSwitch::start(1.0, Latency::Fixed(Duration::from_millis(2)));
    let mut spec = RunSpec::new(ops.acquirer, Wire::NATIVE);
    spec.mode = Mode::Open { rate: 1000.0, arrivals: Arrivals::Constant, pacing: Pacing::Sleep };
    spec.sign_on = false;
    spec.duration = Some(Duration::from_secs(12));
    let load = std::thread::spawn(move || run(&spec).unwrap());

    // The official Python client's strict OpenMetrics parser accepts the exposition as it
    // is served, histograms consistent.
    std::thread::sleep(Duration::from_secs(1));
    let (code, exposition) = ops.admin("GET", "/metrics");
    assert_eq!(code, 200);
    let mut check = Command::new(corridor_tests::python::python())
        .arg(workspace_file("tests/interop/openmetrics_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(out.status.success(), "openmetrics_check.py: {}", String::from_utf8_lossy(&out.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(parsed["families"].as_u64().unwrap() >= 40, "{parsed}");
    assert!(parsed["histograms"]["corridor_request_duration_seconds"].as_f64().unwrap() > 100.0, "{parsed}");

    // promtool checks the shipped rules and runs their unit tests.
    let rules_dir = workspace_file("crates/corridor/ops/prometheus");
    for args in [["check", "rules", "corridor-alerts.yml"], ["test", "rules", "corridor-alerts.test.yml"]] {
        let out = Command::new(&promtool).args(args).current_dir(&rules_dir).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A Prometheus of its own: scraping every second with the bearer token, with our rules.
    let dir = std::env::temp_dir().join(format!("corridor-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let port = corridor_tests::free_port();
    let prom: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: corridor\n    \
             authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: [\"{}\"]\n",
            workspace_file(RULES).display(),
            dir.join("token").display(),
            ops.admin
        ),
    )
    .unwrap();
    let _p = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + WAIT_MAX;
    while get(prom, "/-/ready").0 != 200 {
        assert!(Instant::now() < deadline, "prometheus became ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Wait (bounded) for several scrapes under load, then ask.
    let q99 = "histogram_quantile(0.99, sum by (le) (rate(corridor_request_duration_seconds_bucket[5s])))";
    let deadline = Instant::now() + WAIT_MAX;
    let p99 = loop {
        let up = scalar(&query(prom, "up{job=\"corridor\"}"));
        let n = scalar(&query(prom, "count_over_time(corridor_requests_pending[1m])")).unwrap_or(0.0);
        if up == Some(1.0) && n >= 6.0 {
            if let Some(v) = scalar(&query(prom, q99)).filter(|v| v.is_finite()) {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "prometheus scraped the switch (up {up:?}, {n} scrapes)");
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("prometheus: histogram_quantile(0.99) of request duration = {:.2} ms", p99 * 1e3);
    // The issuer answers in 2 ms: the p99 lies above that and far below a second.
    assert!((0.002..0.25).contains(&p99), "p99 {p99} s");
    let rate = scalar(&query(prom, "sum(rate(corridor_requests_total[5s]))")).unwrap();
    assert!(rate > 300.0, "about 1000 requests/s seen by prometheus: {rate}");

    // The rules loaded and evaluate cleanly.
    let (_, body) = get(prom, "/api/v1/rules");
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "corridor", "{body}");
    let list = group["rules"].as_array().unwrap();
    let shipped = std::fs::read_to_string(corridor_tests::python::workspace_file(
        "crates/corridor/ops/prometheus/corridor-alerts.yml",
    ))
    .unwrap();
    assert_eq!(list.len(), shipped.matches("- alert:").count(), "every shipped rule loaded: {body}");
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let (_, body) = get(prom, "/api/v1/rules");
        let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
        let list = rules["data"]["groups"][0]["rules"].as_array().unwrap().clone();
        if list.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(Instant::now() < deadline, "every rule evaluates: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every dashboard and rule expression evaluates against what the switch exports.
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace_file(DASHBOARD)).unwrap()).unwrap();
    let mut exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().replace("$instance", ".*"))
        })
        .collect();
    exprs.extend(list.iter().map(|r| r["query"].as_str().unwrap().to_owned()));
    let mut with_data = 0;
    for e in &exprs {
        let v = query(prom, e);
        if !v["data"]["result"].as_array().is_none_or(Vec::is_empty) {
            with_data += 1;
        }
    }
    assert!(with_data >= exprs.len() / 2, "most expressions find series: {with_data} of {}", exprs.len());
    let o = load.join().unwrap();
    assert_eq!(o.recorder.counts.answered, o.recorder.counts.sent);
    std::fs::remove_dir_all(&dir).ok();
}

//! Operations over the real `corridor` binary: the admin API (token, JSON, audit in the
//! journal), metrics an outside parser accepts, reloads under load (`POST /reload` and
//! `SIGHUP`), JSON logs with the PAN masked, and systemd's notify protocol.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use common::{http, purchase, read_frames, send, state, text};
use corridor_wire::de;

const TOKEN: &str = "test-admin-token-0123456789";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A switch process with its admin address, killed on drop; stderr lines kept.
struct Serve {
    child: Child,
    admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `corridor serve`; with `own_pid_as`, through `sh`, which exports its own
    /// process id (the switch's, once it `exec`s) under that name, as systemd does for
    /// `WATCHDOG_PID`.
    fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with(config, args, env, None)
    }

    fn start_with(config: &Path, args: &[&str], env: &[(&str, &str)], own_pid_as: Option<&str>) -> Self {
        let bin = env!("CARGO_BIN_EXE_corridor");
        let mut cmd = match own_pid_as {
            Some(var) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("export {var}=$$; exec \"$0\" \"$@\"")).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["serve", "--config"]).arg(config).args(args).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let text = std::fs::read_to_string(config).unwrap();
        let admin: SocketAddr = text
            .lines()
            .skip_while(|l| !l.starts_with("[admin]"))
            .find_map(|l| l.strip_prefix("address = \"").and_then(|r| r.strip_suffix('"')))
            .unwrap()
            .parse()
            .unwrap();
        let s = Self::spawn(cmd, admin);
        s.wait_admin(Duration::from_secs(20));
        s
    }

    /// Starts `corridor serve --node node` on a cluster's file (its admin server at
    /// `admin`, as `[cluster.nodes.<node>]` says); does not wait for it: a standby serves
    /// nothing, its admin API included, until it has taken its shards.
    fn node(config: &Path, node: &str, admin: SocketAddr) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corridor"));
        cmd.args(["serve", "--config"]).arg(config).args(["--node", node]).env("RUST_LOG", "info");
        Self::spawn(cmd, admin)
    }

    fn spawn(mut cmd: Command, admin: SocketAddr) -> Self {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self { child, admin, log }
    }

    /// Waits (bounded) until its admin server answers.
    fn wait_admin(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while http_ok(self.admin) != Some(200) {
            assert!(Instant::now() < deadline, "the admin server came up: {:?}", self.lines());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until a line of its log contains `text`.
    fn wait_logged(&self, text: &str, wait: Duration) {
        let deadline = Instant::now() + wait;
        while !self.lines().iter().any(|l| l.contains(text)) {
            assert!(Instant::now() < deadline, "logged {text:?}: {:?}", self.lines());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(self.admin, "GET", path, Some(TOKEN))
    }

    fn post(&self, path: &str) -> (u16, String) {
        http(self.admin, "POST", path, Some(TOKEN))
    }

    fn signal(&self, sig: &str) {
        assert!(Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success());
    }

    /// Waits (bounded) until `/readyz` says ready.
    /// Waits (bounded) until `/readyz` says ready, its admin address probed every 2 ms
    /// meanwhile: a node whose admin server has come up never refuses a connection again
    /// (a standby hands its socket to the switch's server when it takes over). A node that
    /// stops answering fails the test with its log: why it exited is there, and lost with
    /// the process otherwise.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let refused = |e: std::io::Error| {
            let said: Vec<String> =
                self.lines().into_iter().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            panic!("the admin address refused a connection ({e}); its warnings and errors: {said:#?}")
        };
        loop {
            let probe_until = Instant::now() + Duration::from_millis(50);
            while Instant::now() < probe_until {
                if let Err(e) = TcpStream::connect(self.admin) {
                    refused(e);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let (code, body) = self.get("/readyz");
            if code == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "ready: {body}");
        }
    }
}

fn http_ok(addr: SocketAddr) -> Option<u16> {
    TcpStream::connect(addr).ok()?;
    Some(http(addr, "GET", "/healthz", None).0)
}

/// The metric lines of `text` named `name` (with any labels), summed.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// A configuration: acquirer `acq` (native, no sign-on) on `acq_port`, issuer `iss` dialed
/// at `issuer` (native), a default route with `timeout_ms`, a journal and the admin server.
fn config(dir: &Path, acq_port: u16, issuer: SocketAddr, admin_port: u16, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("admin.token"), format!("{TOKEN}\n")).unwrap();
    // The issuer's in-flight limit well above any the acquirer's may be raised to: a
    // destination at its limit declines (91), which is the limit working, not a reload.
    let base = common::config(acq_port, issuer, "");
    let (head, tail) = base.split_at(base.find("name = \"iss-1\"").unwrap());
    let base = format!("{head}{}", tail.replacen("inflight_max = 1024", "inflight_max = 8192", 1));
    let text = format!(
        "{base}\n{extra}\n[admin]\naddress = \"127.0.0.1:{admin_port}\"\ntoken_file = \"admin.token\"\n"
    );
    let path = dir.join("switch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An issuer the switch dials, answering each message with what `answer` returns and when
/// (network management at once); its address, and the flag that stops it.
fn issuer(
    answer: impl FnMut(&corridor_wire::OwnedMessage) -> Option<(Duration, corridor_wire::OwnedMessage)>
        + Send
        + 'static,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let mut answer = answer;
    std::thread::spawn(move || common::serve_peer(listener, &s, |m, _| answer(m)));
    (addr, stop)
}

/// An issuer the switch dials that approves everything at once (network management too).
fn approving_issuer() -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    issuer(|m| Some((Duration::ZERO, common::answer(m, "00"))))
}

/// What most tests here start from: a state directory, an approving issuer, and a
/// configuration for them (acquirer `acq` on its own port, the admin server on another);
/// the issuer is stopped and the directory removed on drop.
struct Rig {
    dir: corridor_tests::scratch::Scratch,
    path: std::path::PathBuf,
    acq: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Rig {
    fn new(tag: &str) -> Self {
        let dir = state(tag);
        let (issuer, stop) = approving_issuer();
        let (acq_port, admin_port) = (common::free_port(), common::free_port());
        let path = config(&dir, acq_port, issuer, admin_port, "");
        Self { dir, path, acq: format!("127.0.0.1:{acq_port}").parse().unwrap(), stop }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A unix datagram socket in `dir` standing in for systemd's notify socket.
fn notify_socket(dir: &Path) -> (std::os::unix::net::UnixDatagram, String) {
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    (sock, path.to_str().unwrap().to_owned())
}

/// Waits (bounded) for the switch process to exit; its status.
fn exited(sw: &mut Serve) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = sw.child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the switch exited: {:?}", sw.lines());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends purchases with STANs `from..from + n` on one connection; their answers by STAN.
fn purchases(acq: SocketAddr, from: u32, n: u32) -> Vec<(String, String)> {
    let mut s = TcpStream::connect(acq).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    for stan in from..from + n {
        let rrn = format!("RRN{stan:09}");
        assert!(send(&mut s, u64::from(stan), &purchase(stan, &rrn)));
    }
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n as usize && Instant::now() < deadline {
        let Some(frames) = read_frames(&mut s, &mut buf) else { break };
        got.extend(frames.into_iter().map(|(_, m)| (text(&m, de::STAN), text(&m, de::RESPONSE_CODE))));
    }
    got
}

#[test]
fn the_admin_api_needs_its_token_answers_json_and_audits_every_change() {
    let rig = Rig::new("ops-admin");
    let sw = Serve::start(&rig.path, &[], &[]);
    let acq = rig.acq;

    // Health needs no token; everything else does, and refusals are JSON.
    assert_eq!(http(sw.admin, "GET", "/healthz", None), (200, r#"{"status":"ok"}"#.into()));
    for path in ["/metrics", "/readyz", "/links", "/routes", "/saf", "/exceptions", "/"] {
        let (code, body) = http(sw.admin, "GET", path, None);
        assert_eq!(code, 401, "{path}");
        assert!(json(&body)["error"].as_str().unwrap().contains("bearer token"), "{path}: {body}");
        let (code, _) = http(sw.admin, "GET", path, Some("not-the-token-at-all"));
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, body) = http(sw.admin, "POST", "/reload", None);
    assert_eq!(code, 401, "{body}");
    sw.wait_ready();
    let (code, body) = sw.get("/cluster");
    assert_eq!(code, 404, "a single node has no cluster: {body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("not a node of a cluster"), "{body}");

    // Traffic, then the counts and the histogram agree with it.
    let answers = purchases(acq, 1, 40);
    assert_eq!(answers.len(), 40);
    assert!(answers.iter().all(|(_, c)| c == "00"), "{answers:?}");
    let (code, m) = sw.get("/metrics");
    assert_eq!(code, 200);
    assert_eq!(metric(&m, "corridor_requests_total", "mti_class=\"2\""), 40.0, "{m}");
    assert_eq!(metric(&m, "corridor_answers_total", "source=\"destination\",code=\"00\""), 40.0, "{m}");
    assert_eq!(metric(&m, "corridor_answers_total", "destination=\"iss\""), 40.0, "{m}");
    assert_eq!(metric(&m, "corridor_request_duration_seconds_count", "destination=\"iss\""), 40.0, "{m}");
    assert_eq!(metric(&m, "corridor_request_duration_seconds_bucket", "le=\"+Inf\""), 40.0, "{m}");
    assert!(metric(&m, "corridor_journal_sync_duration_seconds_count", "") > 0.0, "{m}");
    assert_eq!(
        metric(&m, "corridor_link_connections", "link=\"iss-1\",mode=\"dial\",state=\"signed_on\""),
        1.0,
        "{m}"
    );
    assert!(!m.contains("4761739001010010") && !m.contains("RRN0000000"), "no PAN or RRN in labels");

    // Routes and a lookup.
    let (code, body) = sw.get("/routes/lookup?pan_prefix=476173&mti=0200");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["route"]["destination"], "iss");
    assert_eq!(sw.get("/routes/lookup?pan_prefix=47x").0, 400);

    // A link signed off takes no new requests (91), and signed on again does.
    let (code, body) = sw.post("/links/iss-1/sign-off");
    assert_eq!((code, json(&body)["connections"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(purchases(acq, 100, 1), vec![("000100".into(), "91".into())]);
    assert_eq!(sw.post("/links/iss-1/sign-on").0, 200);
    assert_eq!(purchases(acq, 101, 1), vec![("000101".into(), "00".into())]);
    let (code, body) = sw.post("/links/nope/echo");
    assert_eq!(code, 404, "{body}");
    assert_eq!(sw.post("/links/iss-1/explode").0, 404);
    assert_eq!(sw.post("/saf/424242/retry").0, 404);
    assert_eq!(json(&sw.get("/saf").1)["depth"], 0);
    assert_eq!(json(&sw.get("/exceptions").1)["size"], 0);

    // A transaction's life, PAN masked.
    let (code, body) = sw.get("/transactions?rrn=RRN000000007");
    assert_eq!(code, 200, "{body}");
    let t = &json(&body)["transactions"][0];
    assert_eq!((t["stan"].as_str(), t["pan"].as_str()), (Some("000007"), Some("476173******0010")), "{body}");
    assert_eq!(t["forwarded"]["destination"], "iss", "{body}");
    assert_eq!(t["answer"]["code"], "00", "{body}");
    assert_eq!(t["answer"]["by"], "destination", "{body}");
    assert!(t["answer"]["latency_ms"].as_u64().is_some(), "{body}");
    assert!(!body.contains("4761739001010010"));
    let (_, body) = sw.get("/transactions?stan=101");
    assert_eq!(json(&body)["transactions"][0]["answer"]["code"], "00", "{body}");
    // A request declined before it was accepted (91 here) left no liability, and no record.
    let (_, body) = sw.get("/transactions?stan=100");
    assert_eq!(json(&body)["transactions"].as_array().map(Vec::len), Some(0), "{body}");
    assert_eq!(sw.get("/transactions").0, 400);

    // Drain: audited, then the process exits 0.
    assert_eq!(sw.post("/drain").0, 202);
    let mut sw = sw;
    assert!(exited(&mut sw).success());
    let lines = sw.lines();
    for action in
        ["POST /links/iss-1/sign-off", "POST /links/iss-1/sign-on", "POST /links/nope/echo", "POST /drain"]
    {
        assert!(
            lines.iter().any(|l| l.contains("corridor::audit") && l.contains(action)),
            "{action} audited in the log"
        );
    }
    // ... and in the journal, as Audit records.
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["journal", "inspect"])
        .arg(rig.dir.join("journal"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.matches("Audit").count() >= 5, "{listing}");
    let (ok, trail) = common::corridor(&["journal", "audit", rig.dir.join("journal").to_str().unwrap()]);
    assert!(ok, "{trail}");
    for action in ["POST /links/iss-1/sign-off", "POST /saf/424242/retry", "POST /drain"] {
        assert!(
            trail.lines().any(|l| l.contains(action)
                && l.contains("token admin.token from 127.0.0.1:")
                && l.contains("Z ")),
            "{action} in the trail: {trail}"
        );
    }
}

#[test]
fn sighup_reloads_and_a_broken_file_keeps_the_configuration_in_force() {
    let rig = Rig::new("ops-hup");
    let path = &rig.path;
    let good = std::fs::read_to_string(path).unwrap();
    let sw = Serve::start(path, &[], &[]);
    sw.wait_ready();
    let acq = rig.acq;
    let wait_log = |text: &str, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while sw.lines().iter().filter(|l| l.contains(text)).count() < n {
            assert!(Instant::now() < deadline, "{text:?} x{n} in {:?}", sw.lines());
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Broken: a route to nobody. Refused, said why, and the old routes still answer.
    std::fs::write(path, good.replace("destination = \"iss\"", "destination = \"nobody\"")).unwrap();
    sw.signal("-HUP");
    wait_log("reload refused", 1);
    assert!(
        sw.lines()
            .iter()
            .any(|l| l.contains("reload refused") && l.contains("no participant with id \"nobody\"")),
        "{:?}",
        sw.lines()
    );
    assert_eq!(purchases(acq, 1, 1), vec![("000001".into(), "00".into())]);

    // Broken TOML: the parser's error spans several lines (the line quoted, a caret). Found
    // from outside: written raw, one audit record printed as five lines, and the log too.
    std::fs::write(path, good.replace("default = true", "default = = true")).unwrap();
    sw.signal("-HUP");
    wait_log("reload refused", 2);
    wait_log("corridor::audit", 2);
    let lines = sw.lines();
    let refused: Vec<_> =
        lines.iter().filter(|l| l.contains("reload refused") && l.contains("\\n")).collect();
    assert_eq!(refused.len(), 1, "the TOML error on the refusal's line, escaped: {lines:#?}");
    assert!(
        lines.iter().all(|l| l.starts_with(|c: char| c.is_ascii_digit()) || l.is_empty()),
        "every log line is a whole event (none is a continuation of the one before): {lines:#?}"
    );
    let (ok, trail) = common::corridor(&["journal", "audit", rig.dir.join("journal").to_str().unwrap()]);
    assert!(ok, "{trail}");
    let records: Vec<_> = trail.lines().skip(1).collect();
    assert!(records.len() >= 2, "{trail}");
    assert!(
        records.iter().all(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())),
        "one line a record: {trail}"
    );
    std::fs::write(path, good.replace("destination = \"iss\"", "destination = \"nobody\"")).unwrap();

    let (code, body) = sw.post("/reload");
    assert_eq!(code, 422, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("kept"), "{body}");

    // Fixed, with the default route narrowed to class 1: financial requests now get 92.
    std::fs::write(path, good.replace("default = true", "default = true\nmti_classes = [1]")).unwrap();
    sw.signal("-HUP");
    wait_log("reload applied", 1);
    assert_eq!(purchases(acq, 2, 1), vec![("000002".into(), "92".into())]);
    let (_, m) = sw.get("/metrics");
    assert_eq!(metric(&m, "corridor_reloads_total", "outcome=\"refused\""), 3.0);
    assert_eq!(metric(&m, "corridor_reloads_total", "outcome=\"applied\""), 1.0);
    wait_log("outcome=\"ok: 1 changes\"", 1);
    assert!(sw
        .lines()
        .iter()
        .any(|l| l.contains("corridor::audit") && l.contains("SIGHUP") && l.contains("ok: 1 changes")));
}

#[test]
fn json_logs_carry_the_transaction_with_its_pan_masked() {
    let rig = Rig::new("ops-json");
    let sw = Serve::start(
        &rig.path,
        &["--log-format", "json"],
        &[("RUST_LOG", "info,corridor::transaction=debug")],
    );
    sw.wait_ready();
    let acq = rig.acq;
    assert_eq!(purchases(acq, 77, 1), vec![("000077".into(), "00".into())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(l) = sw.lines().into_iter().find(|l| l.contains("corridor::transaction")) {
            break l;
        }
        assert!(Instant::now() < deadline, "a transaction line: {:?}", sw.lines());
        std::thread::sleep(Duration::from_millis(20));
    };
    let v = json(&line);
    assert_eq!(v["target"], "corridor::transaction");
    assert_eq!((v["link"].as_str(), v["participant"].as_str()), (Some("acq-1"), Some("acq")), "{line}");
    assert_eq!(
        (v["mti"].as_str(), v["stan"].as_str(), v["rrn"].as_str()),
        (Some("0200"), Some("000077"), Some("RRN000000077"))
    );
    assert_eq!(v["pan"], "476173******0010", "{line}");
    assert_eq!(v["code"], "00");
    assert!(v["latency_us"].as_u64().is_some(), "{line}");
    for l in sw.lines() {
        assert!(!l.contains("4761739001010010"), "a full PAN in the log: {l}");
        json(&l);
    }
}

#[test]
fn under_systemd_it_says_ready_pings_the_watchdog_and_says_reloading_and_stopping() {
    let rig = Rig::new("ops-notify");
    let (sock, sock_path) = notify_socket(&rig.dir);
    let sw = Serve::start_with(
        &rig.path,
        &[],
        &[("NOTIFY_SOCKET", &sock_path), ("WATCHDOG_USEC", "300000")],
        Some("WATCHDOG_PID"),
    );
    let mut seen: Vec<String> = Vec::new();
    let read_until = |want: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !seen.iter().any(|m| m.lines().any(|l| l == want)) {
            assert!(Instant::now() < deadline, "{want} among {seen:?}");
            if let Ok(n) = sock.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    read_until("READY=1", &mut seen);
    let pings_before = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    read_until("WATCHDOG=1", &mut seen);
    // Several pings within a second: at half the 300 ms interval.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() - pings_before;
    assert!(pings >= 3, "watchdog pinged {pings} times: {seen:?}");
    sw.signal("-HUP");
    read_until("RELOADING=1", &mut seen);
    sw.signal("-TERM");
    read_until("STOPPING=1", &mut seen);
}

#[test]
fn the_systemd_unit_verifies() {
    // systemd's own checker, on the shipped unit with the binary's path put in.
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/systemd/corridor.service"))
        .unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    let dir = state("ops-unit");
    let path = dir.join("corridor.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/corridor", env!("CARGO_BIN_EXE_corridor"))).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is installed");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify: {text}");
}

#[test]
fn a_link_a_reload_adds_takes_traffic_and_one_it_removes_answers_what_it_carries_then_closes() {
    let dir = state("ops-links");
    // An issuer that answers after 1.5 s: a request is still in flight when its link goes.
    let (issuer, stop) = issuer(|m| Some((Duration::from_millis(1500), common::answer(m, "00"))));
    let (acq_port, admin_port, new_port) = (common::free_port(), common::free_port(), common::free_port());
    let path = config(&dir, acq_port, issuer, admin_port, "");
    let a = std::fs::read_to_string(&path).unwrap();
    let b = a.replacen(
        "[[participant]]\nid = \"iss\"",
        &format!(
            "  [[participant.link]]\n  name = \"acq-2\"\n  mode = \"listen\"\n  address = \"127.0.0.1:{new_port}\"\n  \
             framing = \"native\"\n  dialect = \"native\"\n  sign_on_required = false\n\n[[participant]]\nid = \"iss\""
        ),
        1,
    );
    let sw = Serve::start(&path, &[], &[]);
    sw.wait_ready();
    let new_addr: SocketAddr = format!("127.0.0.1:{new_port}").parse().unwrap();
    assert!(TcpStream::connect(new_addr).is_err(), "not listening before the reload");

    std::fs::write(&path, &b).unwrap();
    let (code, body) = sw.post("/reload");
    assert_eq!(code, 200, "{body}");
    assert!(json(&body)["changes"].as_array().unwrap().iter().any(|c| c == "link acq-2: added"), "{body}");
    assert_eq!(
        purchases(new_addr, 1, 1),
        vec![("000001".into(), "00".into())],
        "the added link carries traffic"
    );

    // A request in flight on acq-2, then acq-2 removed: answered, then closed.
    let mut s = TcpStream::connect(new_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    assert!(send(&mut s, 7, &purchase(7, "RRN000000007")));
    // In flight as the switch sees it before the reload (a request still in the socket when
    // the link goes would be read by nobody: the link's peer repeats it, as any that got no
    // answer).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = sw.get("/links");
        let links = json(&body)["links"].as_array().cloned().unwrap_or_default();
        if links.iter().any(|l| l["name"] == "acq-2" && l["inflight_in"].as_u64() >= Some(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "the request in flight on acq-2: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&path, &a).unwrap();
    let (code, body) = sw.post("/reload");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("link acq-2: removed"), "{body}");
    // The listener closes as its loop sees the reload (at once, bounded here).
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(new_addr).is_ok() {
        assert!(Instant::now() < deadline, "no longer listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut buf = BytesMut::new();
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        match read_frames(&mut s, &mut buf) {
            None => break true,
            Some(f) => answers.extend(f.into_iter().map(|(_, m)| text(&m, de::RESPONSE_CODE))),
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert_eq!(answers, ["00"], "the request it carried was answered");
    assert!(closed, "then its connection was closed");
    // Gone from the live view and the readiness check once its connections are.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sw.get("/links").1.contains("\"acq-2\"") {
        assert!(Instant::now() < deadline, "acq-2 left /links: {}", sw.get("/links").1);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sw.get("/readyz").0, 200);
    assert!(!sw.get("/metrics").1.contains("link=\"acq-2\",mode"), "no link state for a removed link");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn an_open_monitoring_page_does_not_hold_up_a_drain_and_systemd_hears_it_stop() {
    let rig = Rig::new("ops-stop");
    let (sock, sock_path) = notify_socket(&rig.dir);
    let mut sw = Serve::start(&rig.path, &[], &[("NOTIFY_SOCKET", &sock_path)]);
    sw.wait_ready();
    // A page's event stream, open, one event read.
    let mut events = TcpStream::connect(sw.admin).unwrap();
    events.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(events, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains("event: view") {
        let n = events.read(&mut chunk).unwrap();
        assert!(n > 0, "the stream sent a view");
        got.extend_from_slice(&chunk[..n]);
    }
    // POST /drain: the switch drains and exits, the open stream notwithstanding.
    assert_eq!(sw.post("/drain").0, 202);
    assert!(exited(&mut sw).success(), "the switch exited with a page open");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    for _ in 0..50 {
        match sock.recv(&mut buf) {
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => break,
        }
    }
    assert!(seen.contains("READY=1") && seen.contains("STOPPING=1"), "{seen:?}");
}

/// Found from outside: with the acquirer and the issuer on different shards, a timeout was
/// the issuer shard's 68 relayed — counted as the destination's answer, no timeout of the
/// destination, `by: "destination"` and no reversal in `/transactions`. Every figure and
/// view must say what one shard says.
#[test]
fn a_timeout_across_shards_reads_as_the_switchs_in_metrics_and_transactions() {
    let dir = state("ops-hop-timeout");
    // Silent to requests; acknowledges the reversals.
    let (issuer, stop) =
        issuer(|m| (m.mti().class() == 4).then(|| (Duration::ZERO, common::answer(m, "00"))));
    let (acq_port, admin_port) = (common::free_port(), common::free_port());
    let path = config(&dir, acq_port, issuer, admin_port, "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("[switch]\n", "[switch]\nshards = 2\n", 1)
        .replacen("id = \"acq\"\n", "id = \"acq\"\nshard = 0\n", 1)
        .replacen("id = \"iss\"\n", "id = \"iss\"\nshard = 1\n", 1)
        .replacen("timeout_ms = 5000", "timeout_ms = 300", 1)
        // Its timeouts are this test's subject, not the link's health.
        .replacen("reconnect_min_ms = 20", "reconnect_min_ms = 20\n  timeouts_down_max = 100", 1);
    std::fs::write(&path, text).unwrap();
    let sw = Serve::start(&path, &[], &[]);
    sw.wait_ready();
    let acq: SocketAddr = format!("127.0.0.1:{acq_port}").parse().unwrap();
    let got = purchases(acq, 1, 3);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|(_, c)| c == "68"), "{got:?}");
    // The reversals are made and acknowledged on the issuer's shard.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let (code, body) = sw.get("/transactions?stan=2");
        assert_eq!(code, 200, "{body}");
        let t = json(&body)["transactions"][0].clone();
        if t["reversals"][0]["state"] == "acknowledged" || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(found["forwarded"]["link"], "hop:shard-1", "it crossed the hop: {found}");
    assert_eq!(found["answer"]["code"], "68", "{found}");
    assert_eq!(found["answer"]["by"], "switch", "{found}");
    let reversals = found["reversals"].as_array().unwrap();
    assert_eq!(reversals.len(), 1, "{found}");
    assert_eq!(reversals[0]["made_by"], "switch", "{found}");
    assert_eq!(reversals[0]["destination"], "iss", "{found}");
    assert_eq!(reversals[0]["state"], "acknowledged", "{found}");
    let (_, m) = sw.get("/metrics");
    assert_eq!(metric(&m, "corridor_timeouts_total", "destination=\"iss\""), 3.0, "{m}");
    assert_eq!(metric(&m, "corridor_answers_total", "source=\"destination\""), 0.0, "{m}");
    assert_eq!(metric(&m, "corridor_answers_total", "source=\"switch\""), 3.0, "{m}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(sw);
}

/// Found from outside: stopped (`SIGSTOP`) past its timeouts under load, then continued,
/// the switch judged its timers before it read the issuer's answers waiting in its socket:
/// it timed the requests out, closed the healthy issuer link as unresponsive and declined
/// the backlog 91. Its own pause is not the peer's silence.
#[test]
fn a_paused_switch_reads_what_arrived_before_it_judges_a_timeout() {
    let dir = state("ops-pause");
    // Answers 200 ms after each request: while the switch is stopped.
    let (issuer, stop) = issuer(|m| Some((Duration::from_millis(200), common::answer(m, "00"))));
    let (acq_port, admin_port) = (common::free_port(), common::free_port());
    let path = config(&dir, acq_port, issuer, admin_port, "");
    let text_cfg =
        std::fs::read_to_string(&path).unwrap().replacen("timeout_ms = 5000", "timeout_ms = 1000", 1);
    std::fs::write(&path, text_cfg).unwrap();
    let sw = Serve::start(&path, &[], &[]);
    sw.wait_ready();
    let acq: SocketAddr = format!("127.0.0.1:{acq_port}").parse().unwrap();
    let mut s = TcpStream::connect(acq).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    const N: u32 = 50;
    for stan in 1..=N {
        assert!(send(&mut s, u64::from(stan), &purchase(stan, &format!("RRN{stan:09}"))));
    }
    // Forwarded (the issuer answers 200 ms later), then stopped past the route's timeout.
    std::thread::sleep(Duration::from_millis(60));
    sw.signal("-STOP");
    std::thread::sleep(Duration::from_millis(2500));
    sw.signal("-CONT");
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < N as usize && Instant::now() < deadline {
        let Some(frames) = read_frames(&mut s, &mut buf) else { break };
        got.extend(frames.into_iter().map(|(_, m)| text(&m, de::RESPONSE_CODE)));
    }
    assert_eq!(got.len(), N as usize, "{got:?}");
    assert!(got.iter().all(|c| c == "00"), "the answers that came during the pause are relayed: {got:?}");
    let (_, m) = sw.get("/metrics");
    assert_eq!(metric(&m, "corridor_timeouts_total", ""), 0.0, "{m}");
    let (_, links) = sw.get("/links");
    assert!(!links.contains("nresponsive"), "{links}");
    assert_eq!(purchases(acq, 100, 1), vec![("000100".into(), "00".into())], "the link stayed up");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(sw);
}

/// A node of a cluster (three real `nats-server`) shows what an operator needs: `/cluster`
/// and `corridor cluster status` name the node holding each shard with its lease's age and
/// each shard's subject as far as the node's journal has got; the metrics carry the
/// replication's latency, what waits for the stream, the leases' ages and takes; `/readyz`
/// waits for replication. A graceful stop gives the leases up at once (another node need
/// not wait out their time to live).
#[test]
fn a_cluster_node_shows_shards_leases_and_replication_and_gives_its_leases_up_when_it_stops() {
    let nats = corridor_tests::nats::NatsCluster::start(3);
    let dir = state("ops-cluster");
    let (issuer, stop) = approving_issuer();
    let (acq_port, admin_port) = (common::free_port(), common::free_port());
    let path = config(&dir, acq_port, issuer, admin_port, "");
    // The node reaches NATS through proxies the test can cut (the command line directly).
    let (proxies, urls) = nats.proxied();
    let servers: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let text = std::fs::read_to_string(&path).unwrap().replacen("[switch]\n", "[switch]\nshards = 2\n", 1);
    std::fs::write(&path, format!("{text}\n[cluster]\nnode = \"node-a\"\nnats = [{}]\n", servers.join(", ")))
        .unwrap();
    let mut sw = Serve::start(&path, &[], &[]);
    sw.wait_ready();
    let answers = purchases(format!("127.0.0.1:{acq_port}").parse().unwrap(), 1, 10);
    assert_eq!(answers.len(), 10);
    assert!(answers.iter().all(|(_, c)| c == "00"), "{answers:?}");

    // The metrics: appends timed, nothing left waiting once answered, both leases young.
    // (Records come on their own too — a link's echo, a checkpoint — so what waits for the
    // stream is read until it is nothing, within bounds.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let (code, m) = sw.get("/metrics");
        assert_eq!(code, 200);
        if metric(&m, "corridor_cluster_unreplicated_records", "") == 0.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(metric(&m, "corridor_cluster_unreplicated_records", ""), 0.0, "{m}");
    assert!(metric(&m, "corridor_cluster_append_duration_seconds_count", "") >= 2.0, "{m}");
    // Every approval's batch was marked before its release, no more than every batch.
    let marks = metric(&m, "corridor_cluster_release_marks_total", "");
    assert!(marks >= 1.0, "{m}");
    assert!(marks <= metric(&m, "corridor_cluster_append_duration_seconds_count", ""), "{m}");
    assert!(metric(&m, "corridor_cluster_release_mark_duration_seconds_count", "") == marks, "{m}");
    // The bucket took every mark: none published again (the counter is there, per shard).
    assert!(m.contains("corridor_cluster_release_marks_again_total{shard=\"0\"} 0"), "{m}");
    assert_eq!(metric(&m, "corridor_cluster_lease_taken_total", ""), 2.0, "each shard taken once");
    for shard in ["0", "1"] {
        let age = metric(&m, "corridor_cluster_lease_age_seconds", &format!("shard=\"{shard}\""));
        assert!(m.contains(&format!("corridor_cluster_lease_age_seconds{{shard=\"{shard}\"}}")), "{m}");
        assert!(age < 3.0, "shard {shard}'s lease renewed within its time to live: {age}");
    }

    // `/cluster`: this node's view beside NATS's, agreeing.
    let (code, body) = sw.get("/cluster");
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["node"], "node-a");
    assert!(v["cluster_error"].is_null(), "{body}");
    let here = v["here"]["shards"].as_array().unwrap();
    let there = v["cluster"]["shards"].as_array().unwrap();
    assert_eq!((here.len(), there.len()), (2, 2), "{body}");
    for (h, t) in here.iter().zip(there) {
        assert_eq!(h["shard"], t["shard"]);
        assert_eq!(h["replicating"], true, "{body}");
        assert!(h["acknowledged"].as_u64().unwrap() <= h["synced"].as_u64().unwrap(), "{body}");
        assert!(h["release_mark"].as_u64().unwrap() <= h["acknowledged"].as_u64().unwrap(), "{body}");
        assert_eq!(h["release_marks_again"], 0, "{body}");
        assert_eq!(t["holder"], "node-a", "{body}");
        assert!(t["lease_age_ms"].as_u64().unwrap() < 3_000, "{body}");
        assert!(h["acknowledged"].as_u64().unwrap() > 0, "{body}");
        // NATS is read after the node: the stream holds at least what the node said it
        // acknowledged (more if a batch went meanwhile).
        let at_least = |k: &str, l: &str| t[k].as_u64().unwrap() >= h[l].as_u64().unwrap();
        assert!(at_least("last_record", "acknowledged") && at_least("subject_last", "subject_seq"), "{body}");
    }
    // Each shard's stream of its own, three copies, one leading.
    for t in there {
        let replicas = t["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 3, "{body}");
        assert_eq!(replicas.iter().filter(|r| r["leader"] == true).count(), 1, "{body}");
        assert_eq!(t["leader"], replicas[0]["server"], "{body}");
        assert_eq!(t["stream"], format!("CORRIDOR-shard-{}", t["shard"]), "{body}");
        assert!(t["messages"].as_u64().unwrap() > 0, "{body}");
    }
    let nodes = v["cluster"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{body}");
    assert_eq!(
        (nodes[0]["node"].as_str(), nodes[0]["state"].as_str()),
        (Some("node-a"), Some("serving")),
        "{body}"
    );
    assert_eq!(nodes[0]["shards"], serde_json::json!([0, 1]), "{body}");
    assert_eq!(nodes[0]["admin"].as_str(), Some(sw.admin.to_string().as_str()), "{body}");
    assert!(nodes[0]["seen_ms"].as_u64().unwrap() < 3_000, "{body}");

    // The monitoring page, in a real browser, shows both shards replicated, leases young.
    let page = Command::new(corridor_tests::python::python())
        .arg(corridor_tests::python::workspace_file("tests/interop/browser_page.py"))
        .arg(format!("http://{}/login?token={TOKEN}", sw.admin))
        .arg(dir.join("page.png"))
        .args(["2", "1.5"])
        .output()
        .unwrap();
    assert!(page.status.success(), "browser_page.py: {}", String::from_utf8_lossy(&page.stderr));
    // The page shows the view the switch was last sampled at (once a second): the second
    // reading is of a sample taken after everything above.
    let seen = json(String::from_utf8_lossy(&page.stdout).lines().last().unwrap());
    assert_eq!(seen["cluster_shown"], true, "{seen}");
    let rows = seen["cluster"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r[0].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1], "{seen}");
    for r in rows {
        assert_eq!(r[1], "true", "{seen}");
        assert!(r[2].as_str().unwrap().parse::<u64>().unwrap() < 3_000, "{seen}");
        assert_eq!(r[3], "0", "no release mark lost: {seen}");
    }

    // The command line says the same, from NATS alone.
    let (ok, out) = common::corridor(&["cluster", "status", "--config", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    let shard_lines = out.lines().filter(|l| {
        let mut w = l.split_whitespace();
        w.next().is_some_and(|s| s.parse::<u16>().is_ok()) && w.next() == Some("node-a")
    });
    assert_eq!(shard_lines.count(), 2, "{out}");
    assert!(
        out.contains(&format!("node node-a             serving shard(s) 0,1; admin {}", sw.admin)),
        "{out}"
    );
    for k in [0, 1] {
        assert!(out.contains(&format!("stream CORRIDOR-shard-{k}: ")), "{out}");
    }
    assert_eq!(
        out.lines().filter(|l| l.trim_start().starts_with("server ") && l.contains(" leader ")).count(),
        2,
        "{out}"
    );
    let (ok, out) = common::corridor(&["cluster", "status", "--json", "--config", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    let names = |v: &serde_json::Value| -> Vec<(String, String)> {
        v.as_array().unwrap().iter().map(|n| (n["node"].to_string(), n["shards"].to_string())).collect()
    };
    assert_eq!(names(&json(&out)["nodes"]), names(&v["cluster"]["nodes"]), "{out}");

    // Cut off from NATS for longer than a lease lives: not ready, saying why, and new
    // requests declined 96; healed (no other node took the shards), the leases are taken
    // again and it serves.
    for p in &proxies {
        p.set_cut(true);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (code, body) = sw.get("/readyz");
        // (The keeper renews the shards one after the other: their leases go stale apart.)
        if code == 503 && body.contains("shard 0's lease is not renewed") && body.contains("shard 1's lease")
        {
            break body;
        }
        assert!(Instant::now() < deadline, "never unready for both shards while cut off: {code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("shard 0's lease") && body.contains("shard 1's lease"), "{body}");
    // (`/readyz` judges the lease's age when asked; the shards look at it every 100 ms.)
    std::thread::sleep(Duration::from_millis(300));
    let acq: SocketAddr = format!("127.0.0.1:{acq_port}").parse().unwrap();
    let cut_off = purchases(acq, 100, 2);
    assert!(cut_off.iter().all(|(_, c)| c == "96"), "declined while cut off: {cut_off:?}");
    assert_eq!(cut_off.len(), 2, "{cut_off:?} {:?}", sw.lines().iter().rev().take(12).collect::<Vec<_>>());
    for p in &proxies {
        p.set_cut(false);
    }
    sw.wait_ready();
    let again = purchases(acq, 200, 5);
    assert!(again.len() == 5 && again.iter().all(|(_, c)| c == "00"), "served again: {again:?}");
    let (_, m) = sw.get("/metrics");
    assert!(metric(&m, "corridor_cluster_lease_taken_total", "") >= 3.0, "taken again after expiring: {m}");
    assert!(metric(&m, "corridor_cluster_lease_renew_failures_total", "") >= 1.0, "{m}");

    // A graceful stop gives both leases up: no holder at once, not a time to live later.
    sw.signal("-TERM");
    assert!(exited(&mut sw).success(), "{:?}", sw.lines());
    let (ok, out) = common::corridor(&["cluster", "status", "--json", "--config", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    let after = json(&out);
    let held: Vec<_> =
        after["shards"].as_array().unwrap().iter().filter(|s| !s["holder"].is_null()).collect();
    assert!(held.is_empty(), "leases still held after a graceful stop: {out}");
    assert!(sw.lines().iter().filter(|l| l.contains("lease is given up")).count() == 2, "{:?}", sw.lines());

    // A single-node configuration has no cluster to show.
    let single = dir.join("single.toml");
    std::fs::write(&single, common::config(acq_port, issuer, "")).unwrap();
    let (ok, out) = common::corridor(&["cluster", "status", "--config", single.to_str().unwrap()]);
    assert!(!ok && out.contains("single node"), "{out}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The ports of the cluster of [`a_reload_on_one_node_is_the_clusters_configuration_everywhere`]:
/// each node's acquirer, admin server and third participant's TLS link.
struct NodePorts {
    acq: u16,
    admin: u16,
    p3: u16,
}

/// One file for a cluster of nodes `nodes` (each with its own ports in
/// `[cluster.nodes.<name>]`, all but `a` standbys): acquirer `acq`, issuer `iss` dialed at
/// `issuer`, a route for BIN 476173; with `route_5555`, one for 555555 too; with `p3`, a
/// third participant on a TLS link whose certificates are under `certs/`.
fn cluster_file(
    issuer: SocketAddr,
    nats: &[String],
    nodes: &[(&str, &NodePorts)],
    route_5555: bool,
    p3: bool,
) -> String {
    use std::fmt::Write as _;
    let participants = corridor_config::fixture::two_participants(
        &corridor_config::fixture::FixtureLink::native("127.0.0.1:1").with("sign_on_required = false"),
        &corridor_config::fixture::FixtureLink::native(issuer)
            .with("reconnect_min_ms = 20")
            .with("reconnect_max_ms = 100"),
    );
    let mut t = format!("[switch]\nshards = 2\n{participants}");
    if p3 {
        t.push_str(
            "[[participant]]\nid = \"p3\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"33333333\"]\ntls_subject_cn = \"p3\"\n\
             \x20 [[participant.link]]\n  name = \"p3-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:1\"\n  framing = \"native\"\n  dialect = \"native\"\n\
             \x20   [participant.link.tls]\n    cert = \"certs/switch.pem\"\n    key = \"certs/switch.key\"\n    ca = [\"certs/ca.pem\"]\n\n",
        );
    }
    t.push_str("[[route]]\npan_prefix = \"476173\"\ndestination = \"iss\"\ntimeout_ms = 5000\n\n");
    if route_5555 {
        t.push_str("[[route]]\npan_prefix = \"555555\"\ndestination = \"iss\"\ntimeout_ms = 5000\n\n");
    }
    let servers: Vec<String> = nats.iter().map(|u| format!("\"{u}\"")).collect();
    let _ = write!(
        t,
        "[journal]\ndir = \"journal\"\nkey_file = \"pan.key\"\n\n[admin]\ntoken_file = \"admin.token\"\n\n\
         [cluster]\nnats = [{}]\n\n",
        servers.join(", ")
    );
    for (name, p) in nodes {
        let p3_listen = if p3 { format!(", \"p3-1\" = \"127.0.0.1:{}\"", p.p3) } else { String::new() };
        let _ = write!(
            t,
            "[cluster.nodes.{name}]\nadmin = \"127.0.0.1:{}\"\nlisten = {{ \"acq-1\" = \"127.0.0.1:{}\"{p3_listen} }}\nstandby = {}\n\n",
            p.admin,
            p.acq,
            *name != "a"
        );
    }
    t
}

/// A purchase of card `pan` (routed by its BIN) on a connection of its own to `acq`: its
/// response code (empty: none within 10 s).
fn pay_card(acq: SocketAddr, stan: u32, pan: &str) -> String {
    let mut m = purchase(stan, &format!("RRN{stan:09}"));
    m.set(de::PAN, pan).unwrap();
    let mut s = TcpStream::connect(acq).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(send(&mut s, u64::from(stan), &m));
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match read_frames(&mut s, &mut buf) {
            Some(frames) if !frames.is_empty() => return text(&frames[0].1, de::RESPONSE_CODE),
            Some(_) => {}
            None => return String::new(),
        }
    }
    String::new()
}

/// One configuration for every node of a cluster, over real processes and three real
/// `nats-server`: every node runs the same file (its own ports in `[cluster.nodes]`, named
/// by `--node`); a reload on node a is checked there, published, and reaches node b — a
/// standby that started on the file before it, and still has that file — which serves it
/// once it takes over; a revision b cannot serve (certificates its disk lacks) is refused
/// there, shown and counted, while b keeps serving the one before; a node that cannot serve
/// the cluster's configuration at all refuses to start, saying why; a file that does not
/// check is never published.
#[test]
fn a_reload_on_one_node_is_the_clusters_configuration_everywhere() {
    let nats = corridor_tests::nats::NatsCluster::start(3);
    let urls = nats.urls();
    let root = state("ops-one-config");
    let (issuer, stop) = approving_issuer();
    let ports: Vec<NodePorts> = (0..3)
        .map(|_| NodePorts { acq: common::free_port(), admin: common::free_port(), p3: common::free_port() })
        .collect();
    let nodes: Vec<(&str, &NodePorts)> = ["a", "b", "c"].into_iter().zip(&ports).collect();
    // Each node on a "machine" (directory) of its own, with its own key file and token;
    // only a's has the certificates revision 3 names.
    let dirs: Vec<std::path::PathBuf> = ["a", "b", "c"].iter().map(|n| root.join(n)).collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("pan.key"), "5a".repeat(32)).unwrap();
        std::fs::write(d.join("admin.token"), format!("{TOKEN}\n")).unwrap();
    }
    corridor_config::certs::dev(&dirs[0].join("certs"), &["p3".to_owned()], 30).unwrap();
    let t1 = cluster_file(issuer, &urls, &nodes, false, false);
    let files: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.join("cluster.toml")).collect();
    for f in &files {
        std::fs::write(f, &t1).unwrap();
    }
    let (ok, out) = common::corridor(&["check-config", files[1].to_str().unwrap(), "--node", "b"]);
    assert!(ok && out.contains("cluster: node b of stream CORRIDOR") && out.contains(", a standby"), "{out}");
    assert!(out.contains("cluster: nodes a, b, c"), "{out}");
    let acq = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i].acq).parse().unwrap() };
    let admin = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i].admin).parse().unwrap() };
    let (visa, master) = ("4761739001010010", "5555555555554444");

    // a publishes the first configuration; b, a standby, finds its file is the cluster's.
    let a = Serve::node(&files[0], "a", admin(0));
    a.wait_admin(Duration::from_secs(40));
    a.wait_ready();
    a.wait_logged("this node's file is published as the cluster's", Duration::from_secs(1));
    let b = Serve::node(&files[1], "b", admin(1));
    b.wait_logged("standby: its lease is held by a", Duration::from_secs(30));
    assert!(
        b.lines().iter().any(|l| l.contains("this node's file is the cluster's configuration")),
        "{:?}",
        b.lines()
    );
    // The standby answers on its admin address while it waits: alive, not ready (saying
    // whose shards it waits for), the cluster as NATS sees it; nothing else yet.
    b.wait_admin(Duration::from_secs(5));
    let (code, body) = http(admin(1), "GET", "/healthz", None);
    assert_eq!((code, json(&body)["standby"].as_bool()), (200, Some(true)), "{body}");
    let (code, body) = b.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("standby: waiting to take the shards over (their leases are held by a)"), "{body}");
    let (code, body) = b.get("/cluster");
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    let states: Vec<(String, String)> = v["cluster"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_owned(), n["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(states, [("a".into(), "serving".into()), ("b".into(), "standby".into())], "{body}");
    assert_eq!(v["config"]["revision"], 1, "{body}");
    let (code, m) = b.get("/metrics");
    assert_eq!((code, metric(&m, "corridor_cluster_standby", "")), (200, 1.0), "{m}");
    assert_eq!(b.get("/links").0, 503);
    assert_eq!(http(admin(1), "GET", "/cluster", None).0, 401, "the token is needed");
    // The cluster's status lists both nodes, the standby too, each with its admin address.
    let (ok, out) =
        common::corridor(&["cluster", "status", "--config", files[1].to_str().unwrap(), "--node", "b"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("node a                  serving shard(s) 0,1; admin {}", admin(0))),
        "{out}"
    );
    assert!(
        out.contains(&format!("node b                  standby, waiting for shard 0; admin {}", admin(1))),
        "{out}"
    );
    assert_eq!(pay_card(acq(0), 1, visa), "00");
    assert_eq!(pay_card(acq(0), 2, master), "92", "no route for 555555 yet");
    let status = |i: usize| {
        let (ok, out) = common::corridor(&[
            "cluster",
            "status",
            "--config",
            files[i].to_str().unwrap(),
            "--node",
            ["a", "b", "c"][i],
        ]);
        assert!(ok, "{out}");
        out
    };
    assert!(status(0).contains("configuration: revision 1 published by a"), "{}", status(0));

    // A file that does not check is refused on a and never published.
    std::fs::write(&files[0], t1.replacen("[switch]\n", "[switch]\nbogus = 1\n", 1)).unwrap();
    let (code, body) = a.post("/reload");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("bogus"), "{body}");
    assert!(status(1).contains("configuration: revision 1 published by a"), "{}", status(1));

    // Revision 2 (a route for 555555): checked on a, published, applied there.
    std::fs::write(&files[0], cluster_file(issuer, &urls, &nodes, true, false)).unwrap();
    let (code, body) = a.post("/reload");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("555555"), "{body}");
    assert_eq!(pay_card(acq(0), 3, master), "00");
    assert!(status(0).contains("configuration: revision 2 published by a"), "{}", status(0));
    // Revision 3 (a TLS participant whose certificates only a's disk holds).
    std::fs::write(&files[0], cluster_file(issuer, &urls, &nodes, true, true)).unwrap();
    let (code, body) = a.post("/reload");
    assert_eq!(code, 200, "{body}");
    let v = json(&a.get("/cluster").1);
    assert_eq!((v["config"]["revision"].as_u64(), v["config"]["by"].as_str()), (Some(3), Some("a")), "{v}");
    assert_eq!(v["cluster"]["config"]["revision"], 3, "{v}");

    // a dies. b takes over with its own, older file: it serves revision 2 (555555 routed),
    // and refuses revision 3, saying why, counting it, and keeps serving revision 2.
    drop(a); // kill -9

    b.wait_admin(Duration::from_secs(30));
    b.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v = json(&b.get("/cluster").1);
        if v["config"]["refused"] == 1 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let c = &v["config"];
    assert_eq!(
        (c["revision"].as_u64(), c["latest"].as_u64(), c["refused"].as_u64()),
        (Some(2), Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(c["applied"], 1, "{v}");
    assert_eq!(c["last_refused"][0], 3, "{v}");
    assert!(c["last_refused"][1].as_str().unwrap().contains("certs"), "{v}");
    // What a reload of b's own file would change: it lacks the route revision 2 added.
    assert!(c["file_differs"].to_string().contains("555555"), "{v}");
    assert_eq!(pay_card(acq(1), 4, master), "00", "b serves revision 2");
    assert_eq!(pay_card(acq(1), 5, visa), "00");
    let m = b.get("/metrics").1;
    assert_eq!(metric(&m, "corridor_cluster_config_revision", ""), 2.0, "{m}");
    assert_eq!(metric(&m, "corridor_cluster_config_latest_revision", ""), 3.0, "{m}");
    assert_eq!(metric(&m, "corridor_cluster_config_refused_total", ""), 1.0, "{m}");
    assert!(b.lines().iter().any(|l| l.contains("refused on this node")), "{:?}", b.lines());

    // A reload of b's own (older) file now is refused, saying why b is behind.
    let (code, body) = b.post("/reload");
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("the cluster is at revision 3 (or later), which this node could not serve"),
        "{body}"
    );
    // Given the certificates and the cluster's file, b catches up with a reload of its own:
    // nothing published, revision 3 served.
    corridor_config::certs::dev(&dirs[1].join("certs"), &["p3".to_owned()], 30).unwrap();
    std::fs::write(&files[1], std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let (code, body) = b.post("/reload");
    assert_eq!(code, 200, "{body}");
    let c = json(&b.get("/cluster").1)["config"].clone();
    assert_eq!(
        (c["revision"].as_u64(), c["by"].as_str(), c["refused"].as_u64()),
        (Some(3), Some("a"), Some(1)),
        "{c}"
    );
    assert!(status(1).contains("configuration: revision 3 published by a"), "{}", status(1));
    let m = b.get("/metrics").1;
    assert_eq!(metric(&m, "corridor_cluster_config_revision", ""), 3.0, "{m}");

    // c, without the certificates, cannot serve revision 3 at all: it refuses to start.
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["serve", "--config"])
        .arg(&files[2])
        .args(["--node", "c"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("revision 3, published by a) cannot be served by this node") && err.contains("certs"),
        "{err}"
    );

    // Clearing on c's machine — which never ran a shard — reads every shard from the stream:
    // the four approved purchases, whichever node answered them; its own journal has none.
    let today = String::from_utf8(Command::new("date").args(["-u", "+%F"]).output().unwrap().stdout).unwrap();
    let cleared = |source: &str| -> Vec<String> {
        let path = files[2].to_str().unwrap();
        let args = ["clearing", "--config", path, "--node", "c", "--date", today.trim(), "--source", source];
        let (ok, out) = common::corridor(&args);
        assert!(ok, "{out}");
        let header: Vec<&str> = out.lines().next().unwrap().split(',').collect();
        let rrn = header.iter().position(|h| *h == "rrn").unwrap();
        let mut rrns: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("transaction,"))
            .map(|l| l.split(',').nth(rrn).unwrap().to_owned())
            .collect();
        rrns.sort();
        rrns
    };
    assert_eq!(cleared("stream"), ["RRN000000001", "RRN000000003", "RRN000000004", "RRN000000005"]);
    assert!(cleared("journal").is_empty());

    drop(b);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

//! `corridor-load compare`: the same workload against several paths, interleaved and
//! repeated, with one table of medians and ratios at the end.
//!
//! Paths:
//!
//! - `direct`: the generator to a simulator.
//! - `corridor`: through a Corridor switch (the `corridor` binary, started with a config the
//!   harness writes: one acquirer link the generator connects to, one issuer link the switch
//!   dials to a simulator, a route by BIN).
//! - `haproxy`: through HAProxy in TCP mode (when installed), a plain relay: the least a hop
//!   can cost.
//!
//! Every path has its own processes, started once; runs go path after path, repetition after
//! repetition, so slow drifts of the machine fall on every path alike. Placement pins every
//! process: `shared` puts them all on one CPU, `split` puts the generator on one CPU and the
//! rest on another.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::{
    limits::READY_WAIT_MAX,
    placement::Cpus,
    report::{us, Summary},
    run::{run, wait_approved_over, Mode, RunSpec},
    secure::{ClientTls, Transport},
    wire::Wire,
};

/// A path the load can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Straight to the simulator.
    Direct,
    /// Through Corridor.
    Corridor,
    /// Through HAProxy in TCP mode.
    Haproxy,
    /// Over QUIC straight to the simulator serving QUIC: the plain quinn baseline, the least
    /// a QUIC path can cost.
    Quinn,
    /// Over QUIC into Corridor, then TCP to the simulator.
    CorridorQuic,
    /// Through Corridor with its journal on (group commit, fdatasync per batch), in a
    /// directory of the work directory.
    CorridorJournal,
    /// Through Corridor with its admin server on and `/metrics` scraped once a second, as
    /// an operator runs it.
    CorridorMetrics,
    /// Through Corridor with metrics off (`[switch] metrics = false`: no histograms, no
    /// answers by code; the plain counters stay), no admin server.
    CorridorNoMetrics,
}

impl PathKind {
    /// The path's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Corridor => "corridor",
            Self::Haproxy => "haproxy",
            Self::Quinn => "quinn",
            Self::CorridorQuic => "corridor-quic",
            Self::CorridorJournal => "corridor-journal",
            Self::CorridorMetrics => "corridor-metrics",
            Self::CorridorNoMetrics => "corridor-nometrics",
        }
    }

    /// Whether the path goes through a Corridor switch.
    #[must_use]
    pub fn is_corridor(self) -> bool {
        matches!(
            self,
            Self::Corridor
                | Self::CorridorQuic
                | Self::CorridorJournal
                | Self::CorridorMetrics
                | Self::CorridorNoMetrics
        )
    }

    /// Whether the generator speaks QUIC on this path.
    #[must_use]
    pub fn is_quic(self) -> bool {
        matches!(self, Self::Quinn | Self::CorridorQuic)
    }
}

impl FromStr for PathKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "direct" => Ok(Self::Direct),
            "corridor" => Ok(Self::Corridor),
            "haproxy" => Ok(Self::Haproxy),
            "quinn" => Ok(Self::Quinn),
            "corridor-quic" => Ok(Self::CorridorQuic),
            "corridor-journal" => Ok(Self::CorridorJournal),
            "corridor-metrics" => Ok(Self::CorridorMetrics),
            "corridor-nometrics" => Ok(Self::CorridorNoMetrics),
            _ => Err(format!(
                "unknown path `{s}`: expected direct, corridor, corridor-journal, corridor-metrics, corridor-nometrics, haproxy, quinn or corridor-quic"
            )),
        }
    }
}

/// Where the processes run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the kernel puts them.
    Unpinned,
    /// Everything on these CPUs.
    Shared(Cpus),
    /// The generator on the first set, everything else on the second.
    Split(Cpus, Cpus),
}

impl FromStr for Placement {
    type Err = String;

    /// `none`, `shared` (CPU 0), `shared:N`, `split` (generator on 0, the rest on 1),
    /// `split:A/B`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cpus = |c: &str| c.parse::<Cpus>();
        match s {
            "none" => Ok(Self::Unpinned),
            "shared" => Ok(Self::Shared(cpus("0")?)),
            "split" => Ok(Self::Split(cpus("0")?, cpus("1")?)),
            _ => {
                if let Some(c) = s.strip_prefix("shared:") {
                    Ok(Self::Shared(cpus(c)?))
                } else if let Some((a, b)) = s.strip_prefix("split:").and_then(|r| r.split_once('/')) {
                    Ok(Self::Split(cpus(a)?, cpus(b)?))
                } else {
                    Err(format!("unknown placement `{s}`: expected none, shared, shared:CPUS, split or split:CPUS/CPUS"))
                }
            }
        }
    }
}

impl Placement {
    fn generator(&self) -> Option<&Cpus> {
        match self {
            Self::Unpinned => None,
            Self::Shared(c) | Self::Split(c, _) => Some(c),
        }
    }

    fn others(&self) -> Option<&Cpus> {
        match self {
            Self::Unpinned => None,
            Self::Shared(c) | Self::Split(_, c) => Some(c),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Unpinned => "unpinned".into(),
            Self::Shared(c) => format!("every process on CPU {c}"),
            Self::Split(a, b) => format!("generator on CPU {a}, switch/relay/simulator on CPU {b}"),
        }
    }
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareSpec {
    /// The paths, in run order.
    pub paths: Vec<PathKind>,
    /// Runs per path.
    pub repeat: usize,
    /// The workload (its target is set per path).
    pub load: RunSpec,
    /// Process placement.
    pub placement: Placement,
    /// The `corridor` binary.
    pub corridor: PathBuf,
    /// The `haproxy` binary (the `haproxy` path is skipped, with a note, without one).
    pub haproxy: Option<PathBuf>,
    /// Where configs go.
    pub workdir: PathBuf,
    /// QUIC paths: lanes per connection.
    pub lanes: u16,
    /// Extra `[journal]` lines (`key = value`) for the corridor-journal path.
    pub journal_settings: Vec<String>,
    /// The switch's shards, and HAProxy's threads (`nbthread`): a comparison is N against
    /// N. With more than one, the switch has one acquirer and one issuer per shard (the
    /// generator's connections spread over the acquirers, each with its own DE 32 and BIN),
    /// so the load spreads over the shards as it does over many participants.
    pub shards: usize,
    /// With several shards, route each acquirer's traffic to the issuer of the next shard,
    /// so every request crosses a hop (the cost of the hand-off); else to its own shard's.
    pub cross: bool,
}

/// One run of one path.
#[derive(Clone, Debug, Serialize)]
pub struct PathRun {
    /// The path.
    pub path: PathKind,
    /// Which repetition.
    pub repetition: usize,
    /// Its summary.
    pub summary: Summary,
}

/// Medians of one path's runs.
#[derive(Clone, Debug, Serialize)]
pub struct PathMedian {
    /// The path.
    pub path: PathKind,
    /// Round trips per second.
    pub answered_per_s: f64,
    /// Corrected latency percentiles, µs.
    pub p50_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// 99.9th.
    pub p999_us: f64,
    /// Runs flagged invalid.
    pub invalid_runs: usize,
    /// Requests not answered approved (timeouts, unanswered, declines, errors) across runs.
    pub failures: u64,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The workload in words.
    pub workload: String,
    /// The placement in words.
    pub placement: String,
    /// Every run.
    pub runs: Vec<PathRun>,
    /// Per path.
    pub medians: Vec<PathMedian>,
    /// Paths left out, and why.
    pub skipped: Vec<String>,
}

/// A child process that is killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }
}

/// A free loopback port (bound, read, released; the caller binds it again at once).
///
/// # Errors
///
/// Loopback cannot be bound.
pub fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind loopback")?;
    Ok(l.local_addr()?)
}

fn spawn(name: &'static str, cmd: &mut Command, placement: &Placement) -> Result<Proc> {
    // A child inherits the CPU mask of the thread that starts it.
    if let Some(c) = placement.others() {
        c.pin_current_thread()?;
    }
    let child = cmd.spawn().with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
    Ok(Proc { name, child })
}

/// Starts a simulator (this binary's `respond`), serving QUIC with `quic` certificates, and
/// returns it with its address.
fn start_simulator(placement: &Placement, quic: Option<&Certs>) -> Result<(Proc, SocketAddr)> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mut cmd = Command::new(exe);
    cmd.args(["respond", "--listen", "127.0.0.1:0", "--framing", "native", "--dialect", "native"]);
    if let Some(c) = quic {
        cmd.arg("--transport")
            .arg("quic")
            .arg("--ca")
            .arg(&c.ca)
            .arg("--cert")
            .arg(&c.issuer.0)
            .arg("--key")
            .arg(&c.issuer.1);
    }
    let mut p = spawn("simulator", cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()), placement)?;
    let stdout = p.child.stdout.take().ok_or_else(|| anyhow!("simulator has no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the simulator never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx.recv_timeout(READY_WAIT_MAX).context("the simulator did not say where it listens")?;
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| anyhow!("unexpected first line from the simulator: {line}"))?;
    Ok((p, addr))
}

/// The switch config for the `corridor` path.
#[must_use]
pub fn corridor_config(
    listen: SocketAddr,
    issuer: SocketAddr,
    inflight_max: usize,
    quic: Option<QuicFiles<'_>>,
) -> String {
    // The QUIC variant: the acquirer is identified by its certificate, and its link is a QUIC
    // listener with the switch's certificate.
    let (identity, transport, tls) = match quic {
        None => (String::new(), String::new(), String::new()),
        Some(q) => (
            "tls_subject_cn = \"acquirer\"\n".to_owned(),
            "  transport = \"quic\"\n  lanes = 64\n".to_owned(),
            format!(
                "    [participant.link.tls]\n    cert = \"{}\"\n    key = \"{}\"\n    ca = [\"{}\"]\n",
                q.cert.display(),
                q.key.display(),
                q.ca.display()
            ),
        ),
    };
    format!(
        r#"# Written by corridor-load compare.
[switch]
drain_timeout_ms = 1000

[[participant]]
id = "acquirer"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
{identity}
  [[participant.link]]
  name = "acquirer-1"
  mode = "listen"
{transport}  address = "{listen}"
  framing = "native"
  dialect = "native"
  inflight_max = {inflight_max}
  connections_max = 1024
{tls}
[[participant]]
id = "issuer"
roles = ["issuer"]

  [[participant.link]]
  name = "issuer-1"
  mode = "dial"
  address = "{issuer}"
  framing = "native"
  dialect = "native"
  inflight_max = {inflight_max}

[[route]]
pan_prefix = "4"
destination = "issuer"
timeout_ms = 5000
"#
    )
}

/// DE 32 of the harness's acquirer `k` with several shards: acquirer 0 has the one the
/// readiness probe sends.
fn sharded_acquirer_id(k: usize) -> String {
    if k == 0 {
        "12345678".into()
    } else {
        format!("{}", 22_345_670 + k)
    }
}

/// A switch of `listens.len()` shards for the harness: per shard `k`, acquirer `k` (DE 32
/// [`sharded_acquirer_id`], listening on `listens[k]`) and issuer `k` (dialing `issuer`),
/// both pinned to shard `k`; BIN `476173k` goes to issuer `k`, or with `cross` to issuer
/// `k + 1` (on the next shard: every request crosses a hop); the rest of BIN 476173 (the
/// readiness probe's) to issuer 0.
#[must_use]
pub fn sharded_config(
    listens: &[SocketAddr],
    issuer: SocketAddr,
    inflight_max: usize,
    cross: bool,
) -> String {
    let n = listens.len();
    let mut s =
        format!("# Written by corridor-load compare.\n[switch]\ndrain_timeout_ms = 1000\nshards = {n}\n");
    for (k, listen) in listens.iter().enumerate() {
        let _ = write!(
            s,
            r#"
[[participant]]
id = "acquirer-{k}"
roles = ["acquirer"]
acquirer_ids = ["{id}"]
shard = {k}
  [[participant.link]]
  name = "acquirer-{k}-1"
  mode = "listen"
  address = "{listen}"
  framing = "native"
  dialect = "native"
  inflight_max = {inflight_max}
  connections_max = 1024

[[participant]]
id = "issuer-{k}"
roles = ["issuer"]
shard = {k}
  [[participant.link]]
  name = "issuer-{k}-1"
  mode = "dial"
  address = "{issuer}"
  framing = "native"
  dialect = "native"
  inflight_max = {inflight_max}
"#,
            id = sharded_acquirer_id(k)
        );
    }
    for k in 0..n {
        let to = if cross { (k + 1) % n } else { k };
        let _ = write!(
            s,
            "\n[[route]]\npan_prefix = \"476173{k}\"\ndestination = \"issuer-{to}\"\ntimeout_ms = 5000\n"
        );
    }
    s.push_str("\n[[route]]\npan_prefix = \"476173\"\ndestination = \"issuer-0\"\ntimeout_ms = 5000\n");
    s
}

/// The switch's certificate files for a QUIC acquirer link.
#[derive(Clone, Copy, Debug)]
pub struct QuicFiles<'a> {
    /// The switch's certificate.
    pub cert: &'a Path,
    /// Its key.
    pub key: &'a Path,
    /// The CA of the acquirer's certificate.
    pub ca: &'a Path,
}

/// HAProxy in TCP mode, `threads` threads, relaying `listen` to `server`.
#[must_use]
pub fn haproxy_config(listen: SocketAddr, server: SocketAddr, threads: usize) -> String {
    format!(
        "# Written by corridor-load compare.\nglobal\n    nbthread {threads}\n    maxconn 4096\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\n\
         listen relay\n    bind {listen}\n    server simulator {server}\n"
    )
}

/// Development certificates for the QUIC paths (written by `corridor certs dev`).
struct Certs {
    ca: PathBuf,
    switch: (PathBuf, PathBuf),
    acquirer: (PathBuf, PathBuf),
    issuer: (PathBuf, PathBuf),
}

impl Certs {
    fn make(corridor: &Path, dir: &Path) -> Result<Self> {
        let out = Command::new(corridor)
            .args(["certs", "dev", "--participant", "acquirer", "--participant", "issuer", "--out"])
            .arg(dir)
            .output()
            .with_context(|| format!("cannot run {}", corridor.display()))?;
        if !out.status.success() {
            bail!("corridor certs dev failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let pair = |n: &str| (dir.join(format!("{n}.pem")), dir.join(format!("{n}.key")));
        Ok(Self {
            ca: dir.join("ca.pem"),
            switch: pair("switch"),
            acquirer: pair("acquirer"),
            issuer: pair("issuer"),
        })
    }

    /// The generator's side of a QUIC path.
    fn transport(&self, lanes: u16) -> Transport {
        Transport::Quic {
            tls: ClientTls {
                ca: self.ca.clone(),
                cert: self.acquirer.0.clone(),
                key: self.acquirer.1.clone(),
                server_name: "localhost".into(),
            },
            lanes,
        }
    }
}

/// Waits until a request through `addr` is approved, checking the path's processes live.
fn wait_ready(addr: SocketAddr, transport: &Transport, procs: &mut [&mut Proc]) -> Result<()> {
    let deadline = Instant::now() + READY_WAIT_MAX;
    loop {
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        match wait_approved_over(addr, Wire::NATIVE, "476173", Duration::from_secs(1), transport) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
    }
}

/// A started path: its processes and where the generator connects.
struct Started {
    path: PathKind,
    target: SocketAddr,
    /// With several shards, the acquirers the generator spreads over.
    targets: Vec<crate::run::Target>,
    transport: Transport,
    _procs: Vec<Proc>,
    _scraper: Option<Scraper>,
}

/// Scrapes a switch's `/metrics` once a second, as Prometheus would, until dropped.
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Scraper {
    fn start(admin: SocketAddr, token: String) -> Self {
        use std::io::{Read as _, Write as _};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0u64;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut c) = std::net::TcpStream::connect(admin) {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let req = format!(
                        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                    );
                    let mut sink = Vec::new();
                    if c.write_all(req.as_bytes()).is_ok() && c.read_to_end(&mut sink).is_ok() {
                        scrapes += 1;
                    }
                }
                // Bounded by the run: one scrape a second until the path is stopped.
                #[allow(clippy::disallowed_methods)] // The scraper's own thread, not a runtime task.
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(path: PathKind, spec: &CompareSpec, certs: Option<&Certs>, lanes: u16) -> Result<Started> {
    let quic_sim = if path == PathKind::Quinn { certs } else { None };
    let (mut sim, sim_addr) = start_simulator(&spec.placement, quic_sim)?;
    let transport = match (path.is_quic(), certs) {
        (true, Some(c)) => c.transport(lanes),
        (true, None) => bail!("the QUIC paths need certificates"),
        (false, _) => Transport::Tcp,
    };
    match path {
        PathKind::Direct | PathKind::Quinn => {
            wait_ready(sim_addr, &transport, &mut [&mut sim])?;
            Ok(Started {
                path,
                target: sim_addr,
                targets: Vec::new(),
                transport,
                _procs: vec![sim],
                _scraper: None,
            })
        }
        PathKind::Corridor
        | PathKind::CorridorQuic
        | PathKind::CorridorJournal
        | PathKind::CorridorMetrics
        | PathKind::CorridorNoMetrics => {
            let listen = free_port()?;
            let inflight = (spec.load.connections * spec.load.inflight_max).clamp(256, 65_535);
            let file = spec.workdir.join(format!("{}.toml", path.name()));
            let quic = match (path, certs) {
                (PathKind::CorridorQuic, Some(c)) => {
                    Some(QuicFiles { cert: &c.switch.0, key: &c.switch.1, ca: &c.ca })
                }
                _ => None,
            };
            let mut text = corridor_config(listen, sim_addr, inflight, quic);
            let mut targets = Vec::new();
            if spec.shards > 1 && quic.is_none() {
                let mut listens = vec![listen];
                for _ in 1..spec.shards {
                    listens.push(free_port()?);
                }
                text = sharded_config(&listens, sim_addr, inflight, spec.cross);
                targets = listens
                    .iter()
                    .enumerate()
                    .map(|(k, &address)| crate::run::Target {
                        address,
                        acquirer_id: sharded_acquirer_id(k),
                        bins: vec![format!("476173{k}")],
                    })
                    .collect();
            } else {
                // The shard count always said: its default is the machine's CPUs.
                text =
                    text.replacen("[switch]\n", &format!("[switch]\nshards = {}\n", spec.shards.max(1)), 1);
            }
            if path == PathKind::CorridorJournal {
                // A fresh journal for every start, so each run measures the same work.
                let dir = spec.workdir.join(format!("journal-{}", listen.port()));
                let _ = std::fs::remove_dir_all(&dir);
                let key = spec.workdir.join("pan.key");
                std::fs::write(&key, "5a".repeat(32))
                    .with_context(|| format!("cannot write {}", key.display()))?;
                text.push_str(&format!(
                    "\n[journal]\ndir = \"{}\"\nkey_file = \"{}\"\n",
                    dir.display(),
                    key.display()
                ));
                for line in &spec.journal_settings {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            let mut admin = None;
            if path == PathKind::CorridorNoMetrics {
                text = text.replacen("[switch]\n", "[switch]\nmetrics = false\n", 1);
            }
            if path == PathKind::CorridorMetrics {
                let addr = free_port()?;
                let token = "compare-admin-token-0123456789".to_owned();
                let token_file = spec.workdir.join("admin.token");
                std::fs::write(&token_file, &token)
                    .with_context(|| format!("cannot write {}", token_file.display()))?;
                text.push_str(&format!(
                    "\n[admin]\naddress = \"{addr}\"\ntoken_file = \"{}\"\n",
                    token_file.display()
                ));
                admin = Some((addr, token));
            }
            std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
            let mut sw = spawn(
                "corridor",
                Command::new(&spec.corridor)
                    .arg("serve")
                    .arg("--config")
                    .arg(&file)
                    // What this run was asked to log (a checkpoint's line, a batch's), or
                    // only what is wrong: a line a transaction would be measured too.
                    .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit()),
                &spec.placement,
            )?;
            wait_ready(listen, &transport, &mut [&mut sim, &mut sw])?;
            let scraper = admin.map(|(addr, token)| Scraper::start(addr, token));
            Ok(Started { path, target: listen, targets, transport, _procs: vec![sim, sw], _scraper: scraper })
        }
        PathKind::Haproxy => {
            let bin = spec.haproxy.as_ref().ok_or_else(|| anyhow!("haproxy is not installed"))?;
            let listen = free_port()?;
            let file = spec.workdir.join("haproxy.cfg");
            std::fs::write(&file, haproxy_config(listen, sim_addr, spec.shards.max(1)))
                .with_context(|| format!("cannot write {}", file.display()))?;
            let mut hp = spawn(
                "haproxy",
                Command::new(bin).arg("-f").arg(&file).arg("-db").stdout(Stdio::null()).stderr(Stdio::null()),
                &spec.placement,
            )?;
            wait_ready(listen, &transport, &mut [&mut sim, &mut hp])?;
            Ok(Started {
                path,
                target: listen,
                targets: Vec::new(),
                transport,
                _procs: vec![sim, hp],
                _scraper: None,
            })
        }
    }
}

/// Finds `haproxy` on the PATH or in /usr/sbin.
#[must_use]
pub fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
}

/// The `corridor` binary next to this one (both build into the same target directory).
#[must_use]
pub fn sibling_corridor() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("corridor")))
        .unwrap_or_else(|| PathBuf::from("corridor"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The workload in words.
#[must_use]
pub fn workload(load: &RunSpec) -> String {
    let bound = match (load.duration, load.requests) {
        (Some(d), _) => format!("{:.0} s", d.as_secs_f64()),
        (None, Some(n)) => format!("{n} requests"),
        (None, None) => String::new(),
    };
    match load.mode {
        Mode::Closed { inflight } => {
            format!(
                "closed loop, {} connections × {inflight} in flight, {bound} per run ({:.0} s warm-up)",
                load.connections,
                load.warmup.as_secs_f64()
            )
        }
        Mode::Open { rate, arrivals, .. } => format!(
            "open loop, {rate:.0}/s {} over {} connections, {bound} per run ({:.0} s warm-up)",
            format!("{arrivals:?}").to_lowercase(),
            load.connections,
            load.warmup.as_secs_f64()
        ),
    }
}

/// Appends measured by [`sync_latency`].
const SYNC_SAMPLES: usize = 200;

/// This disk's `fdatasync` latency, p50 and p99 in µs: [`SYNC_SAMPLES`] appends of 4 KiB to
/// a file in `dir`, each synced.
fn sync_latency(dir: &Path) -> Result<(f64, f64)> {
    use std::io::Write as _;
    let path = dir.join("sync-probe");
    let mut f = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let block = [0x5Au8; 4096];
    let mut us = Vec::with_capacity(SYNC_SAMPLES);
    for _ in 0..SYNC_SAMPLES {
        f.write_all(&block)?;
        let t = std::time::Instant::now();
        f.sync_data()?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    us.sort_by(f64::total_cmp);
    Ok((us[SYNC_SAMPLES / 2], us[SYNC_SAMPLES * 99 / 100]))
}

/// Runs the comparison.
///
/// # Errors
///
/// A path that cannot be started or made ready, or a run that cannot connect.
pub fn compare(spec: &CompareSpec, mut on_run: impl FnMut(&PathRun)) -> Result<Comparison> {
    if spec.repeat == 0 || spec.repeat > 100 {
        bail!("repeat must be 1 to 100");
    }
    std::fs::create_dir_all(&spec.workdir)
        .with_context(|| format!("cannot create {}", spec.workdir.display()))?;
    let mut skipped = Vec::new();
    let mut started = Vec::new();
    let certs = if spec.paths.iter().any(|p| p.is_quic()) {
        Some(Certs::make(&spec.corridor, &spec.workdir.join("certs"))?)
    } else {
        None
    };
    let lanes = spec.lanes;
    for &p in &spec.paths {
        if p == PathKind::Haproxy && spec.haproxy.is_none() {
            skipped.push("haproxy: not installed (apt-get install haproxy)".to_owned());
            continue;
        }
        if p.is_corridor() && !Path::new(&spec.corridor).is_file() {
            bail!(
                "the corridor binary is not at {} (build it: cargo build --release -p corridor, or pass --corridor)",
                spec.corridor.display()
            );
        }
        started.push(
            start(p, spec, certs.as_ref(), lanes)
                .with_context(|| format!("cannot start the {} path", p.name()))?,
        );
    }
    let mut runs = Vec::new();
    for repetition in 0..spec.repeat {
        for s in &started {
            let mut load = spec.load.clone();
            load.target = s.target;
            load.targets.clone_from(&s.targets);
            load.wire = Wire::NATIVE;
            load.transport = s.transport.clone();
            load.cpus = spec.placement.generator().cloned();
            load.progress = false;
            let outcome = run(&load).with_context(|| format!("{} run {}", s.path.name(), repetition + 1))?;
            let r = PathRun { path: s.path, repetition, summary: outcome.summary(&[]) };
            on_run(&r);
            runs.push(r);
        }
    }
    let medians = started
        .iter()
        .map(|s| {
            let mine: Vec<&PathRun> = runs.iter().filter(|r| r.path == s.path).collect();
            let m = |f: fn(&Summary) -> f64| median(mine.iter().map(|r| f(&r.summary)).collect());
            PathMedian {
                path: s.path,
                answered_per_s: m(|s| s.answered_per_s),
                p50_us: m(|s| s.latency.p50_us),
                p99_us: m(|s| s.latency.p99_us),
                p999_us: m(|s| s.latency.p999_us),
                invalid_runs: mine.iter().filter(|r| !r.summary.valid).count(),
                failures: mine.iter().map(|r| r.summary.counts.sent - r.summary.counts.approved()).sum(),
            }
        })
        .collect();
    let mut described = workload(&spec.load);
    if spec.paths.contains(&PathKind::CorridorJournal) {
        let (p50, p99) = sync_latency(&spec.workdir)?;
        described.push_str(&format!(
            "; fdatasync in the work directory (the journal's disk), measured after the runs: p50 {p50:.1} µs, p99 {p99:.1} µs ({SYNC_SAMPLES} appends of 4 KiB)"
        ));
    }
    if spec.paths.iter().any(|p| p.is_quic()) {
        described.push_str(&format!(
            "; QUIC paths: {} lanes a connection, the in-flight count per lane",
            spec.lanes
        ));
    }
    let placement = format!(
        "{}; switch {} shard{}{}, HAProxy nbthread {}",
        spec.placement.describe(),
        spec.shards,
        if spec.shards == 1 { "" } else { "s" },
        if spec.shards > 1 && spec.cross { " (every request crossing a hop)" } else { "" },
        spec.shards
    );
    Ok(Comparison { workload: described, placement, runs, medians, skipped })
}

impl Comparison {
    /// The table: medians per path, throughput ratios to each other path, latency added over
    /// the direct path.
    #[must_use]
    pub fn table(&self) -> String {
        let mut s = String::new();
        let reps = self.runs.iter().filter(|r| Some(r.path) == self.medians.first().map(|m| m.path)).count();
        let _ = writeln!(s, "workload   {}", self.workload);
        let _ = writeln!(s, "placement  {}", self.placement);
        let _ = writeln!(s, "runs       {reps} per path, interleaved; figures are medians of the runs\n");
        let direct = self.medians.iter().find(|m| m.path == PathKind::Direct);
        let haproxy = self.medians.iter().find(|m| m.path == PathKind::Haproxy);
        let quinn = self.medians.iter().find(|m| m.path == PathKind::Quinn);
        let _ = writeln!(
            s,
            "{:<14}{:>14}{:>10}{:>11}{:>9}{:>10}{:>10}{:>10}{:>12}{:>12}{:>9}",
            "path",
            "round trips/s",
            "vs direct",
            "vs haproxy",
            "vs quinn",
            "p50",
            "p99",
            "p99.9",
            "+p50",
            "+p99",
            "invalid"
        );
        for m in &self.medians {
            let ratio = |b: Option<&PathMedian>| {
                b.map_or("-".to_owned(), |b| format!("{:.2}×", m.answered_per_s / b.answered_per_s))
            };
            // What a path adds: over direct for TCP paths, over the quinn baseline for QUIC.
            let base = if m.path.is_quic() { quinn } else { direct };
            let added =
                |f: fn(&PathMedian) -> f64| base.map_or("-".to_owned(), |d| format!("{:+.1}µs", f(m) - f(d)));
            let _ = writeln!(
                s,
                "{:<14}{:>14.0}{:>10}{:>11}{:>9}{:>10}{:>10}{:>10}{:>12}{:>12}{:>9}",
                m.path.name(),
                m.answered_per_s,
                ratio(direct),
                ratio(haproxy),
                ratio(quinn),
                us(m.p50_us),
                us(m.p99_us),
                us(m.p999_us),
                added(|m| m.p50_us),
                added(|m| m.p99_us),
                m.invalid_runs
            );
        }
        if quinn.is_some() {
            let _ =
                writeln!(s, "(+p50/+p99: over direct for TCP paths, over the quinn baseline for QUIC paths)");
        }
        for m in self.medians.iter().filter(|m| m.failures > 0) {
            let _ = writeln!(
                s,
                "note: {} had {} requests not approved across its runs",
                m.path.name(),
                m.failures
            );
        }
        for k in &self.skipped {
            let _ = writeln!(s, "skipped: {k}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_placements_parse() {
        assert_eq!("corridor".parse(), Ok(PathKind::Corridor));
        assert!("nginx".parse::<PathKind>().is_err());
        assert_eq!("shared".parse(), Ok(Placement::Shared("0".parse().unwrap())));
        assert_eq!("split:1/0".parse(), Ok(Placement::Split("1".parse().unwrap(), "0".parse().unwrap())));
        assert_eq!("none".parse(), Ok(Placement::Unpinned));
        assert!("split:1".parse::<Placement>().is_err());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn configs_name_their_addresses() {
        let a: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:7002".parse().unwrap();
        let c = corridor_config(a, b, 256, None);
        assert!(c.contains("address = \"127.0.0.1:7001\"") && c.contains("address = \"127.0.0.1:7002\""));
        let h = haproxy_config(a, b, 2);
        assert!(h.contains("nbthread 2"));
        assert!(h.contains("bind 127.0.0.1:7001") && h.contains("server simulator 127.0.0.1:7002"));
        assert!(h.contains("mode tcp"));
    }
}

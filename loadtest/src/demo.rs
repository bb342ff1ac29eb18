//! `corridor-load demo`: a switch, a wallet acquirer and two QR networks on loopback, a short
//! load through them, and what each side saw. Needs nothing but this binary.
//!
//! The switch runs from the embedded configuration below (addresses filled in at start, and
//! a journal in a temporary state directory with a fresh PAN key):
//! the acquirer speaks ISO 8583 (1987, ASCII) behind 2-byte length headers; the Vietnamese
//! network is reached by BIN 476173 over native frames; the Thai one by BIN 520011 over
//! ISO 8583 with hex bitmaps behind ASCII length headers. The simulated networks answer after
//! a millisecond or two, decline a few requests and acknowledge reversals.

use std::{net::SocketAddr, time::Duration};

use anyhow::{anyhow, Context, Result};
use corridor_net::Report;
use corridor_wire::ResponseCode;

use crate::{
    report::Summary,
    respond::{Latency, RespondCounts, RespondSpec, Responder},
    run::{run as run_load, wait_approved, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    traffic::TrafficSpec,
    wire::Wire,
};

/// The demo's switch configuration; `{vn}` and `{th}` become the simulators' addresses.
pub const CONFIG: &str = r#"
[switch]
institution_id = "99900001"
drain_timeout_ms = 2000

[[participant]]
id = "wallet-sg"
name = "Singapore wallet (acquirer)"
roles = ["acquirer"]
acquirer_ids = ["12345678"]

  [[participant.link]]
  name = "wallet-sg-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "bin2"
  dialect = "iso87-ascii"

[[participant]]
id = "napas-vn"
name = "Vietnam QR network"
roles = ["issuer"]

  [[participant.link]]
  name = "napas-vn-1"
  mode = "dial"
  address = "{vn}"
  framing = "native"
  dialect = "native"

[[participant]]
id = "promptpay-th"
name = "Thailand QR network"
roles = ["issuer"]

  [[participant.link]]
  name = "promptpay-th-1"
  mode = "dial"
  address = "{th}"
  framing = "ascii4"
  dialect = "iso87-hex"

[[route]]
pan_prefix = "476173"
destination = "napas-vn"
timeout_ms = 2000

[[route]]
pan_prefix = "520011"
destination = "promptpay-th"
timeout_ms = 2000
"#;

/// How hard the demo drives the switch.
#[derive(Clone, Copy, Debug)]
pub struct DemoSpec {
    /// Requests per second (Poisson arrivals).
    pub rate: f64,
    /// How long, warm-up (1 s) included.
    pub duration: Duration,
}

impl Default for DemoSpec {
    fn default() -> Self {
        Self { rate: 2000.0, duration: Duration::from_secs(5) }
    }
}

/// What the demo measured.
pub struct DemoReport {
    /// The acquirer's view.
    pub summary: Summary,
    /// The switch's view, per link.
    pub switch: Report,
    /// What each network saw, by participant id.
    pub networks: Vec<(&'static str, RespondCounts)>,
    /// The switch's journal: records and segments (read back as the demo ended).
    pub journal: Option<(usize, usize)>,
}

fn network(wire: Wire, latency: &str, approve: f64) -> Result<Responder> {
    let mut spec = RespondSpec::listen(SocketAddr::from(([127, 0, 0, 1], 0)), wire);
    spec.latency = latency.parse::<Latency>().map_err(|e| anyhow!(e))?;
    spec.approve = approve;
    spec.declines = vec![(ResponseCode::DO_NOT_HONOUR, 3), (ResponseCode(*b"51"), 1)];
    Responder::start(spec).context("cannot start a simulated network")
}

/// Runs the demo.
///
/// # Errors
///
/// Loopback ports that cannot be bound, or a switch that does not come up.
pub fn run(spec: DemoSpec) -> Result<DemoReport> {
    let vn_wire = Wire::NATIVE;
    let th_wire = Wire::parse("ascii4", "iso87-hex").map_err(|e| anyhow!(e))?;
    let vn = network(vn_wire, "lognormal:1ms,0.3", 0.95)?;
    let th = network(th_wire, "uniform:1ms..3ms", 0.9)?;
    let addr = |r: &Responder| r.local_addr().ok_or_else(|| anyhow!("a simulated network has no address"));
    let mut text = CONFIG.replace("{vn}", &addr(&vn)?.to_string()).replace("{th}", &addr(&th)?.to_string());
    // The switch journals, as a production one would, in a state directory of its own that
    // the demo removes at the end.
    let state = std::env::temp_dir().join(format!("corridor-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).with_context(|| format!("cannot create {}", state.display()))?;
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| anyhow!("no system randomness for the demo's PAN key"))?;
    let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(state.join("pan.key"), key).context("cannot write the demo's PAN key")?;
    text.push_str(&format!(
        "\n[journal]\ndir = \"{}\"\nkey_file = \"{}\"\n",
        state.join("journal").display(),
        state.join("pan.key").display()
    ));
    let loaded = corridor_config::parse(&text).context("the demo configuration")?;

    let switch = loaded.start().context("cannot start the switch")?;
    let acquirer = switch.addr("wallet-sg-1").ok_or_else(|| anyhow!("the acquirer link is not listening"))?;
    let wire = Wire::parse("bin2", "iso87-ascii").map_err(|e| anyhow!(e))?;
    for bin in ["476173", "520011"] {
        wait_approved(acquirer, wire, bin, Duration::from_secs(10))?;
    }

    let mut load = RunSpec::new(acquirer, wire);
    load.mode = Mode::Open { rate: spec.rate, arrivals: Arrivals::Poisson, pacing: Pacing::Sleep };
    load.connections = 2;
    load.duration = Some(spec.duration);
    load.warmup = Duration::from_secs(1).min(spec.duration / 2);
    load.request_timeout = Duration::from_secs(3);
    load.traffic = TrafficSpec {
        mix: "0200=85,0100=10,0420=3,0800=2".parse().map_err(|e: String| anyhow!(e))?,
        bins: vec!["476173".into(), "520011".into()],
        ..TrafficSpec::default()
    };
    let outcome = run_load(&load);
    let report = switch.stop()?;
    let outcome = outcome?;
    let journal = corridor_net::journal::Segments::read(&state.join("journal"))
        .ok()
        .and_then(|segs| segs.scan().ok().map(|scan| (scan.records(), scan.segments.len())));
    let _ = std::fs::remove_dir_all(&state);
    Ok(DemoReport {
        summary: outcome.summary(&[]),
        switch: report,
        networks: vec![("napas-vn", vn.stop()), ("promptpay-th", th.stop())],
        journal,
    })
}

impl DemoReport {
    /// The demo's printout: the acquirer's table, then per link and per network.
    #[must_use]
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("== the acquirer (corridor-load run, through the switch) ==\n");
        s.push_str(&self.summary.table());
        let _ = writeln!(s, "\n== the switch, per link ==");
        let _ = writeln!(s, "{:<16}{:>12}{:>12}{:>12}", "link", "connections", "frames in", "frames out");
        for (name, c) in &self.switch.links {
            let _ = writeln!(s, "{name:<16}{:>12}{:>12}{:>12}", c.connections, c.frames_in, c.frames_out);
        }
        let st = &self.switch.stats;
        let _ = writeln!(
            s,
            "requests in {}, forwarded {}, responses relayed {}, switch answered {} network messages, \
             timeouts {}; the acquirer's reversals stored {}, forwarded from the store {}, acknowledged {}",
            st.requests_in,
            st.forwarded,
            st.relayed,
            st.network_answered,
            st.timeouts,
            st.advices_stored,
            st.reversals_sent,
            st.reversals_acked
        );
        if let Some((records, segments)) = self.journal {
            let _ = writeln!(
                s,
                "journal: {records} records in {segments} segment(s), every answer sent after its record was synced \
                 (a temporary state directory, removed)"
            );
        }
        let _ = writeln!(s, "\n== the simulated networks ==");
        for (id, c) in &self.networks {
            let declined: u64 = c.declined.values().sum();
            let _ = writeln!(
                s,
                "{id:<14} 0100 {:>6}  0200 {:>6}  0420 {:>4}  approved {:>6}  declined {:>5}  reversals acked {:>4}",
                c.received("0100"),
                c.received("0200"),
                c.received("0420"),
                c.approved,
                declined,
                c.reversals_acked
            );
        }
        s
    }
}

//! `corridor-load demo`: a switch, two wallets and three QR networks on loopback, a short load
//! through them, three cross-border QR payments, the day's clearing totals, and what each
//! side saw. Needs nothing but this binary.
//!
//! The switch runs from the embedded configuration below (addresses filled in at start, and
//! a journal in a temporary state directory with a fresh PAN key); its market is Singapore.
//! The Singapore wallet speaks ISO 8583 (1987, ASCII) behind 2-byte length headers; the
//! Vietnamese network is reached by BIN 476173 and by VietQR codes over native frames, the
//! Thai one by BIN 520011 and PromptPay codes over ISO 8583 with hex bitmaps behind ASCII
//! length headers, Singapore's by PayNow codes. The load mixes card payments with QR payments
//! of VietQR and PromptPay codes. Then a Thai wallet pays a Singapore merchant (inbound), the
//! Singapore wallet a Vietnamese one (outbound), and the Thai wallet a Vietnamese one (third
//! market), the switch converting each into the wallet's currency and settling in USD. The
//! simulated networks answer after a millisecond or two, decline a few requests and
//! acknowledge reversals.

use std::{net::SocketAddr, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
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

/// The demo's switch configuration; `{vn}`, `{th}` and `{sg}` become the simulators'
/// addresses, and `{rates}` the rate table ([`rates`]).
pub const CONFIG: &str = r#"
[switch]
institution_id = "99900001"
drain_timeout_ms = 2000
market = "SG"

[currency]
settlement = "USD"

{rates}[[participant]]
id = "wallet-sg"
name = "Singapore wallet (acquirer)"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
market = "SG"
currency = "SGD"

  [[participant.link]]
  name = "wallet-sg-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "bin2"
  dialect = "iso87-ascii"

[[participant]]
id = "wallet-th"
name = "Thai wallet (acquirer)"
roles = ["acquirer"]
acquirer_ids = ["22345678"]
market = "TH"
currency = "THB"

  [[participant.link]]
  name = "wallet-th-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
  sign_on_required = false

[[participant]]
id = "napas-vn"
name = "Vietnam QR network"
roles = ["issuer"]
market = "VN"
currency = "VND"
networks = ["napas"]

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
market = "TH"
currency = "THB"
networks = ["promptpay"]

  [[participant.link]]
  name = "promptpay-th-1"
  mode = "dial"
  address = "{th}"
  framing = "ascii4"
  dialect = "iso87-hex"

[[participant]]
id = "paynow-sg"
name = "Singapore QR network"
roles = ["issuer"]
market = "SG"
currency = "SGD"
networks = ["paynow"]

  [[participant.link]]
  name = "paynow-sg-1"
  mode = "dial"
  address = "{sg}"
  framing = "native"
  dialect = "native"

[[route]]
pan_prefix = "476173"
destination = "napas-vn"
timeout_ms = 2000

[[route]]
pan_prefix = "520011"
destination = "promptpay-th"
timeout_ms = 2000

[[route]]
qr_network = "napas"
destination = "napas-vn"
timeout_ms = 2000

[[route]]
qr_network = "promptpay"
destination = "promptpay-th"
timeout_ms = 2000

[[route]]
qr_network = "paynow"
destination = "paynow-sg"
timeout_ms = 2000
"#;

/// The demo's rate table: VND and THB to SGD and back for the wallets, and each currency
/// to USD to settle.
#[must_use]
pub fn rates() -> String {
    use corridor_config::fixture::rate;
    [
        rate("VND", "SGD", "0.0000528", 40),
        rate("VND", "THB", "0.00137", 50),
        rate("SGD", "THB", "25.88", 50),
        rate("THB", "SGD", "0.0386", 40),
        rate("VND", "USD", "0.0000394", 0),
        rate("THB", "USD", "0.0279", 0),
        rate("SGD", "USD", "0.74", 0),
    ]
    .concat()
}

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
    /// The three cross-border QR payments, one line each.
    pub payments: Vec<String>,
    /// The day's clearing from the journal: totals, then net positions, one line each.
    pub clearing: Vec<String>,
}

/// One request and its answer over a fresh connection (signed on first: a link may require
/// it; bounded waits).
fn exchange(
    addr: SocketAddr,
    wire: Wire,
    m: &corridor_wire::OwnedMessage,
) -> Result<corridor_wire::OwnedMessage> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).context("connect")?;
    s.set_read_timeout(Some(Duration::from_millis(200))).context("socket")?;
    let mut out = bytes::BytesMut::new();
    crate::traffic::sign_on(wire, 2, &mut out).map_err(|e| anyhow!("{e}"))?;
    wire.frame(1, &mut out, |b| m.encode(wire.dialect, b)).map_err(|e| anyhow!("{e}"))?;
    s.write_all(&out).context("send")?;
    let mut buf = bytes::BytesMut::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut decoder = wire.decoder();
    while std::time::Instant::now() < deadline {
        if let Some((_, body)) = decoder.decode(&mut buf).map_err(|e| anyhow!("{e}"))? {
            let msg = corridor_wire::Message::parse(wire.dialect, body).map_err(|e| anyhow!("{e}"))?;
            if msg.mti().class() == 8 {
                continue;
            }
            return Ok(corridor_wire::OwnedMessage::from(&msg));
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => bail!("the switch closed the connection"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("read"),
        }
    }
    bail!("no answer within 5 s")
}

/// A wallet's payment of a merchant's `code`: STAN `stan`, acquirer id `acquirer`.
fn qr_payment(code: &str, stan: u32, acquirer: &str) -> Result<corridor_wire::OwnedMessage> {
    use corridor_wire::{de, Mti, OwnedMessage};
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    let now = corridor_engine::WallClock::now();
    let time = now.transmission_time(now.at);
    let e = |e: corridor_wire::EncodeError| anyhow!("{e}");
    m.set(de::PROCESSING_CODE, b"000000".to_vec()).map_err(e)?;
    m.set(de::TRANSMISSION_TIME, time.to_vec()).map_err(e)?;
    m.set(de::STAN, format!("{stan:06}").into_bytes()).map_err(e)?;
    m.set(de::ACQUIRER_ID, acquirer.as_bytes().to_vec()).map_err(e)?;
    m.set(de::RRN, format!("9{:05}{stan:06}", std::process::id() % 100_000).into_bytes()).map_err(e)?;
    m.set(de::TERMINAL_ID, b"DEMO0001".to_vec()).map_err(e)?;
    m.set(de::QR_PAYLOAD, code.as_bytes().to_vec()).map_err(e)?;
    Ok(m)
}

/// An amount field in its currency, as a decimal with the code (`342.50 THB`).
fn money(
    m: &corridor_wire::OwnedMessage,
    amount: corridor_wire::FieldId,
    currency: corridor_wire::FieldId,
) -> String {
    let text = |id| m.get(id).map(|v| String::from_utf8_lossy(v).into_owned());
    match (
        text(amount).and_then(|a| a.parse::<u64>().ok()),
        text(currency).and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(a), Some(c)) => match corridor_engine::exchange::by_numeric(c) {
            Some(cur) => format!("{} {cur}", corridor_engine::exchange::decimal_amount(a, cur.exponent)),
            None => format!("{a} ({c})"),
        },
        _ => "-".into(),
    }
}

fn rate(m: &corridor_wire::OwnedMessage, id: corridor_wire::FieldId) -> String {
    m.get(id).and_then(corridor_engine::exchange::Rate::from_n8).map_or_else(|| "-".into(), |r| r.decimal())
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
    let sg = network(Wire::NATIVE, "uniform:1ms..2ms", 1.0)?;
    let addr = |r: &Responder| r.local_addr().ok_or_else(|| anyhow!("a simulated network has no address"));
    let mut text = CONFIG
        .replace("{rates}", &rates())
        .replace("{vn}", &addr(&vn)?.to_string())
        .replace("{th}", &addr(&th)?.to_string())
        .replace("{sg}", &addr(&sg)?.to_string());
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

    let switch = corridor_ops::startup::start(loaded).context("cannot start the switch")?;
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
    // Card payments and QR payments of the VietQR and PromptPay codes (the networks the
    // switch has routes for).
    let codes: Vec<String> = crate::traffic::qr_codes().into_iter().take(2).collect();
    load.traffic = TrafficSpec {
        mix: "0200=65,qr=20,0100=10,0420=3,0800=2".parse().map_err(|e: String| anyhow!(e))?,
        bins: vec!["476173".into(), "520011".into()],
        qr_codes: codes.clone(),
        ..TrafficSpec::default()
    };
    let outcome = run_load(&load);

    // Three cross-border payments, one of each flow.
    let th_wallet =
        switch.addr("wallet-th-1").ok_or_else(|| anyhow!("the Thai wallet's link is not listening"))?;
    let paynow = corridor_qr::encode(&[
        (0, "01"),
        (1, "12"),
        (
            26,
            &corridor_qr::nested(&[(0, "SG.PAYNOW"), (1, "2"), (2, "201403121W"), (3, "0")])
                .map_err(|e| anyhow!(e))?,
        ),
        (52, "5812"),
        (53, "702"),
        (54, "12.50"),
        (58, "SG"),
        (59, "HAWKER CHAN"),
        (60, "SINGAPORE"),
    ])
    .map_err(|e| anyhow!(e))?;
    let mut payments = Vec::new();
    for (i, (flow, from, to, at, wire, code, acquirer)) in [
        ("inbound", "wallet-th (TH)", "paynow-sg (SG)", th_wallet, Wire::NATIVE, &paynow, "22345678"),
        ("outbound", "wallet-sg (SG)", "napas-vn (VN)", acquirer, wire, &codes[0], "12345678"),
        ("third-market", "wallet-th (TH)", "napas-vn (VN)", th_wallet, Wire::NATIVE, &codes[0], "22345678"),
    ]
    .into_iter()
    .enumerate()
    {
        use corridor_wire::de;
        let stan = 900_001 + u32::try_from(i).unwrap_or(0);
        let a = exchange(at, wire, &qr_payment(code, stan, acquirer)?)?;
        let code =
            a.get(de::RESPONSE_CODE).map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default();
        payments.push(format!(
            "{flow:<13} {from} -> {to}: {}; the wallet pays {} (rate {}), settled {} (rate {}); answered {code}",
            money(&a, de::AMOUNT, de::CURRENCY),
            money(&a, de::AMOUNT_BILLING, de::CURRENCY_BILLING),
            rate(&a, de::RATE_BILLING),
            money(&a, de::AMOUNT_SETTLEMENT, de::CURRENCY_SETTLEMENT),
            rate(&a, de::RATE_SETTLEMENT),
        ));
    }
    let report = switch.stop()?;
    let outcome = outcome?;
    // Every shard's journal: records and segments summed.
    let journal = corridor_net::journal::shard_dirs(&state.join("journal"))
        .iter()
        .map(|(_, d)| {
            corridor_net::journal::Segments::read(d)
                .ok()
                .and_then(|segs| segs.scan().ok().map(|scan| (scan.records(), scan.segments.len())))
        })
        .try_fold((0, 0), |(r, s), j| j.map(|(a, b)| (r + a, s + b)));
    let clearing = day_clearing(&loaded_markets(&text)?, &state.join("journal"))?;
    let _ = std::fs::remove_dir_all(&state);
    Ok(DemoReport {
        summary: outcome.summary(&[]),
        switch: report,
        networks: vec![("napas-vn", vn.stop()), ("promptpay-th", th.stop()), ("paynow-sg", sg.stop())],
        journal,
        payments,
        clearing,
    })
}

/// Each participant's market by id, and the switch's.
type Markets = (std::collections::HashMap<String, [u8; 2]>, Option<[u8; 2]>);

/// The participants' markets and the switch's, from the configuration text.
fn loaded_markets(text: &str) -> Result<Markets> {
    let loaded = corridor_config::parse(text).context("the demo configuration")?;
    let markets =
        loaded.engine.participants.iter().filter_map(|p| Some((p.id.clone(), p.directory.market?))).collect();
    Ok((markets, loaded.engine.interop.market))
}

/// Today's (UTC) clearing totals and net positions from the journal in `dir`, as
/// `corridor clearing` computes them.
fn day_clearing((markets, home): &Markets, dir: &std::path::Path) -> Result<Vec<String>> {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let ms = u64::try_from(ms).unwrap_or(0);
    let day = i64::try_from(ms / 86_400_000).unwrap_or(0) * 86_400_000;
    let date = corridor_wire::clock::utc_text(ms)[..10].to_owned();
    let setup = corridor_clearing::Setup {
        dir,
        window: (day, day + 86_400_000),
        date: &date,
        participant: None,
        markets: markets.clone(),
        home: *home,
    };
    let rows = corridor_clearing::transactions(&setup)?;
    let mut out = vec![format!("business day {date} (UTC): {} approved payments not reversed", rows.len())];
    for r in corridor_clearing::summary(&rows, None) {
        let exp = corridor_engine::exchange::by_code(&r.currency).map_or(0, |c| c.exponent);
        let dec = |v: u64| corridor_engine::exchange::decimal_amount(v, exp);
        match r.record.as_str() {
            "total" => out.push(format!(
                "  total     {:>6} payments  {:>16} {}",
                r.count.unwrap_or(0),
                dec(r.amount.unwrap_or(0)),
                r.currency
            )),
            _ => {
                let net = r.net.unwrap_or(0);
                let sign = if net < 0 { "-" } else { "" };
                out.push(format!(
                    "  position  {:<13} against {:<13} net {sign}{} {}",
                    r.participant,
                    r.counterparty,
                    dec(net.unsigned_abs()),
                    r.currency
                ));
            }
        }
    }
    Ok(out)
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
        let _ = writeln!(s, "\n== cross-border QR payments (the switch's market: SG) ==");
        for p in &self.payments {
            let _ = writeln!(s, "{p}");
        }
        let _ = writeln!(s, "\n== the day's clearing (corridor clearing, from the journal) ==");
        for l in &self.clearing {
            let _ = writeln!(s, "{l}");
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

//! The load generator against the simulator — directly and through a real switch — for short
//! bounded loads on loopback: every request ends in exactly one outcome, the simulator saw
//! what the generator sent, and every request the switch timed out was reversed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use corridor_load::{
    recorder::Counts,
    respond::{RespondSpec, Responder},
    run::{run, wait_approved, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    traffic::TrafficSpec,
    wire::Wire,
};
use corridor_tests::switch::{tcp_issuer, TestSwitch};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn assert_adds_up(c: &Counts) {
    assert_eq!(c.sent, c.answered + c.timeouts + c.unanswered, "every request ends in one outcome: {c:?}");
    assert_eq!(c.codes.values().sum::<u64>(), c.answered, "{c:?}");
}

#[test]
fn closed_loop_directly_to_the_simulator_every_request_answered() {
    let sim = Responder::start(RespondSpec::listen(loopback(), Wire::NATIVE)).unwrap();
    let mut spec = RunSpec::new(sim.local_addr().unwrap(), Wire::NATIVE);
    spec.mode = Mode::Closed { inflight: 8 };
    spec.connections = 2;
    spec.duration = None;
    spec.requests = Some(3000);
    let o = run(&spec).unwrap();
    let c = &o.recorder.counts;
    assert_adds_up(c);
    assert_eq!((c.sent, c.approved(), c.errors), (3000, 3000, 0));
    assert_eq!(o.recorder.corrected.len(), 3000);
    let seen = sim.stop();
    assert_eq!(seen.received("0200"), 3000, "the simulator saw exactly what was sent");
    assert_eq!(seen.received("0800"), 2, "and one sign-on per connection");
    assert_eq!(seen.approved, 3000);
}

#[test]
fn open_loop_keeps_its_schedule_and_counts_declines_by_code() {
    let mut rs = RespondSpec::listen(loopback(), Wire::parse("bin4", "iso87-hex").unwrap());
    rs.approve = 0.5;
    rs.declines = corridor_load::respond::parse_codes("05=1,51=1").unwrap();
    let sim = Responder::start(rs).unwrap();
    let mut spec = RunSpec::new(sim.local_addr().unwrap(), Wire::parse("bin4", "iso87-hex").unwrap());
    spec.mode = Mode::Open { rate: 2000.0, arrivals: Arrivals::Poisson, pacing: Pacing::Sleep };
    spec.duration = Some(Duration::from_millis(1500));
    spec.warmup = Duration::from_millis(500);
    spec.traffic = TrafficSpec { mix: "0200=8,0100=1,0800=1".parse().unwrap(), ..TrafficSpec::default() };
    let o = run(&spec).unwrap();
    let c = &o.recorder.counts;
    assert_adds_up(c);
    // Rates and durations are the benchmark's business, not a test's (this machine is
    // shared): the run sent, and what it counted adds up.
    assert!(c.sent > 0, "sent {}", c.sent);
    assert_eq!(c.errors, 0);
    let approved = c.approved();
    let declined = c.codes.get("05").copied().unwrap_or(0) + c.codes.get("51").copied().unwrap_or(0);
    // Echoes are always approved; about half of the rest are declined.
    assert!(declined > c.sent / 4 && approved > c.sent / 4, "{c:?}");
    let s = o.summary(&[]);
    assert!(s.run.measured_s > 0.0, "measured {}", s.run.measured_s);
    assert_eq!(s.timeline.iter().map(|r| r.sent).sum::<u64>(), c.sent, "the timeline holds every send");
    let seen = sim.stop();
    // The simulator also saw the warm-up's requests.
    assert!(seen.received("0200") + seen.received("0100") + seen.received("0800") > c.sent);
}

#[test]
fn through_the_switch_what_the_issuer_saw_adds_up_and_timeouts_are_reversed() {
    // The issuer never answers one request in ten; the switch times those out after 300 ms,
    // answers 68 and reverses them toward the issuer.
    let mut rs = RespondSpec::listen(loopback(), Wire::NATIVE);
    rs.drop = 0.1;
    rs.record = true;
    let issuer = Responder::start(rs).unwrap();
    let config = format!(
        r#"
[switch]
drain_timeout_ms = 2000
[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
  [[participant.link]]
  name = "acq-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "bin2"
  dialect = "iso87-ascii"
{}timeout_ms = 300
"#,
        // Timeouts are this test's subject, not a link's health or limit: on a starved machine
        // three timeouts in a row with nothing received between them would take the link
        // down (`timeouts_down_max`), and a stalled issuer would fill its in-flight limit;
        // either answers the requests meanwhile 91.
        tcp_issuer(issuer.local_addr().unwrap()).replacen(
            "dialect = \"native\"\n",
            "dialect = \"native\"\n  timeouts_down_max = 10000\n  inflight_max = 4096\n",
            1
        )
    );
    let switch = TestSwitch::start(&config);
    let wire = Wire::parse("bin2", "iso87-ascii").unwrap();
    let target = switch.addr("acq-1");
    // The readiness probe may itself be dropped (and then reversed): it goes before the
    // snapshot of what the issuer saw.
    wait_approved(target, wire, "476173", Duration::from_secs(10)).unwrap();
    switch.wait_quiet();
    let before = issuer.seen().len();

    let mut spec = RunSpec::new(target, wire);
    spec.mode = Mode::Open { rate: 1000.0, arrivals: Arrivals::Constant, pacing: Pacing::Sleep };
    spec.connections = 2;
    spec.duration = Some(Duration::from_secs(1));
    spec.request_timeout = Duration::from_secs(3);
    let o = run(&spec).unwrap();
    let c = &o.recorder.counts;
    assert_adds_up(c);
    assert_eq!((c.timeouts, c.unanswered, c.errors), (0, 0, 0), "the switch answers every request: {c:?}");
    let timed_out = c.codes.get("68").copied().unwrap_or(0);
    assert!(timed_out > 0 && c.approved() + timed_out == c.sent, "{c:?}");

    // Reversals go out at once: wait until the issuer acknowledged every one, and until its
    // record of them is written (it records after it answers).
    switch.wait_quiet();
    let reversals_sent =
        |seen: &[corridor_load::respond::Seen]| seen.iter().filter(|s| s.mti == "0420").count() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reversals_sent(&issuer.seen()[before..]) < timed_out && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen: Vec<_> = issuer.seen().into_iter().skip(before).collect();
    let requests: Vec<_> = seen.iter().filter(|s| s.mti == "0200").collect();
    assert_eq!(requests.len() as u64, c.sent, "the issuer saw every request sent");
    // RRNs are unique per request (STANs are per acquirer connection, so they may repeat).
    let dropped: HashSet<(String, u32)> = requests
        .iter()
        .filter(|s| s.answer.is_none())
        .map(|s| (s.rrn.clone().unwrap(), s.stan.unwrap()))
        .collect();
    assert_eq!(dropped.len() as u64, timed_out, "each 68 is a request the issuer left unanswered");
    let reversed: HashSet<(String, u32)> = seen
        .iter()
        .filter(|s| s.mti == "0420")
        .map(|s| (s.rrn.clone().unwrap(), s.original_stan.unwrap()))
        .collect();
    assert_eq!(reversed, dropped, "every timed-out request was reversed (DE 90 naming it), and nothing else");
    for s in &requests {
        let pan = s.pan.as_deref().unwrap();
        assert!(pan.starts_with("476173") && pan.contains('*'), "PANs are recorded masked: {pan}");
    }
    switch.stop();
}

#[test]
fn over_quic_and_tls_the_generator_and_simulator_agree_directly_and_through_the_switch() {
    use corridor_load::{
        respond::ServeSecure,
        secure::{ClientTls, Transport},
    };
    let certs = corridor_tests::tls::CertDir::new("load-quic");
    for (name, cn) in [("acquirer", "acquirer"), ("issuer", "issuer")] {
        certs.write(name, &certs.ca.issue(cn, 30).unwrap());
    }
    let client = |lanes: Option<u16>| {
        let tls = ClientTls {
            ca: certs.dir.join("ca.pem"),
            cert: certs.dir.join("acquirer.pem"),
            key: certs.dir.join("acquirer.key"),
            server_name: "localhost".into(),
        };
        match lanes {
            Some(lanes) => Transport::Quic { tls, lanes },
            None => Transport::Tls(tls),
        }
    };
    let serve = |quic: bool| {
        let mut rs = RespondSpec::listen(loopback(), Wire::NATIVE);
        rs.secure = Some(ServeSecure {
            quic,
            ca: certs.dir.join("ca.pem"),
            cert: certs.dir.join("issuer.pem"),
            key: certs.dir.join("issuer.key"),
        });
        Responder::start(rs).unwrap()
    };
    // Directly: QUIC with 3 lanes, then TLS.
    for quic in [true, false] {
        let sim = serve(quic);
        let mut spec = RunSpec::new(sim.local_addr().unwrap(), Wire::NATIVE);
        spec.transport = client(quic.then_some(3));
        spec.mode = Mode::Closed { inflight: 4 };
        spec.connections = 2;
        spec.duration = None;
        spec.requests = Some(2000);
        let o = run(&spec).unwrap();
        let c = &o.recorder.counts;
        assert_adds_up(c);
        assert_eq!((c.sent, c.approved(), c.errors), (2000, 2000, 0), "quic {quic}: {c:?}");
        let seen = sim.stop();
        assert_eq!(seen.received("0200"), 2000, "quic {quic}");
        let sign_ons = if quic { 6 } else { 2 };
        assert_eq!(seen.received("0800"), sign_ons, "one sign-on per lane (quic {quic})");
    }
    // Through the switch: QUIC in, TCP out.
    let issuer = Responder::start(RespondSpec::listen(loopback(), Wire::NATIVE)).unwrap();
    let config = format!(
        r#"
[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
tls_subject_cn = "acquirer"
  [[participant.link]]
  name = "acq-quic"
  mode = "listen"
  transport = "quic"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
{tls}{iss}"#,
        tls = certs.tls_table(),
        iss = tcp_issuer(issuer.local_addr().unwrap()),
    );
    let switch = TestSwitch::start(&config);
    let target = switch.addr("acq-quic");
    corridor_load::run::wait_approved_over(
        target,
        Wire::NATIVE,
        "476173",
        Duration::from_secs(10),
        &client(Some(1)),
    )
    .unwrap();
    let before = issuer.counts().received("0200");
    let mut spec = RunSpec::new(target, Wire::NATIVE);
    spec.transport = client(Some(4));
    spec.mode = Mode::Open { rate: 2000.0, arrivals: Arrivals::Poisson, pacing: Pacing::Sleep };
    spec.duration = Some(Duration::from_secs(1));
    let o = run(&spec).unwrap();
    let c = &o.recorder.counts;
    assert_adds_up(c);
    assert_eq!((c.answered, c.approved(), c.errors), (c.sent, c.sent, 0), "{c:?}");
    switch.wait_quiet();
    assert_eq!(issuer.counts().received("0200") - before, c.sent, "the issuer saw every request");
    switch.stop();
}

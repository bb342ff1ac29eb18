//! A switch of two shards over real loopback sockets, with each participant pinned to a
//! shard so that traffic crosses between them: every request answered once, counted once;
//! a destination on the other shard that stalls, an originator on the other shard that goes
//! with approvals on their way to it, a retransmission on another connection, and a reload
//! that adds a participant, all across the hop.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code; threads, not tasks

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use corridor_tests::{
    peer::{purchase, Behaviour, Conn, Issuer, Wire, WAIT_MAX},
    switch::TestSwitch,
};
use corridor_wire::{de, Mti};

const VISA: &str = "4761739001010010";
const MASTER: &str = "5100000000000008";

/// acq and iss2 on shard 0, acq2 and iss on shard 1: acq → iss and acq2 → iss2 cross,
/// acq → iss2 and acq2 → iss do not.
fn config(iss: SocketAddr, iss2: SocketAddr, timeout_ms: u64) -> String {
    format!(
        r#"
[switch]
shards = 2
reversal_retry_ms = 60000

[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
shard = 0
  [[participant.link]]
  name = "acq-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
  sign_on_required = false
  inflight_max = 512

[[participant]]
id = "acq2"
roles = ["acquirer"]
acquirer_ids = ["87654321"]
shard = 1
  [[participant.link]]
  name = "acq2-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "bin2"
  dialect = "iso87-ascii"
  sign_on_required = false
  inflight_max = 512

[[participant]]
id = "iss"
roles = ["issuer"]
shard = 1
  [[participant.link]]
  name = "iss-1"
  mode = "dial"
  address = "{iss}"
  framing = "native"
  dialect = "native"
  inflight_max = 4096
  # Its timeouts are a test's subject here, not the link's health.
  timeouts_down_max = 10000

[[participant]]
id = "iss2"
roles = ["issuer"]
shard = 0
  [[participant.link]]
  name = "iss2-1"
  mode = "dial"
  address = "{iss2}"
  framing = "native"
  dialect = "native"
  inflight_max = 4096

[[route]]
pan_prefix = "476173"
destination = "iss"
timeout_ms = {timeout_ms}

[[route]]
pan_prefix = "51"
destination = "iss2"
timeout_ms = {timeout_ms}
"#
    )
}

fn stan(i: usize) -> String {
    format!("{:06}", i + 1)
}

/// Sends `n` purchases for `pan` as `acq_id` on `conns` connections to `addr` (round
/// robin), then reads every answer; the DE 39 of each STAN, as many times as it came.
fn drive(
    addr: SocketAddr,
    wire: Wire,
    pan: &str,
    acq_id: &str,
    first: usize,
    n: usize,
) -> HashMap<String, Vec<String>> {
    let mut conns: Vec<Conn> = (0..2).map(|_| Conn::connect(addr, wire)).collect();
    for i in first..first + n {
        let c = i % conns.len();
        conns[c].send(i as u64 + 1, &purchase(pan, &stan(i), acq_id));
    }
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    let deadline = Instant::now() + WAIT_MAX;
    while got.values().map(Vec::len).sum::<usize>() < n && Instant::now() < deadline {
        for c in &mut conns {
            while let Some((_, m)) = c.recv_app_within(Duration::from_millis(20)) {
                let s = String::from_utf8_lossy(m.get(de::STAN).unwrap()).into_owned();
                let code = String::from_utf8_lossy(m.get(de::RESPONSE_CODE).unwrap()).into_owned();
                got.entry(s).or_default().push(code);
            }
        }
    }
    // Nothing more comes: one answer each.
    std::thread::sleep(Duration::from_millis(100));
    for c in &mut conns {
        assert!(c.recv_app_within(Duration::from_millis(20)).is_none(), "a second answer");
    }
    got
}

fn wait_signed_on(switch: &TestSwitch) {
    switch.wait_signed_on(&["iss-1", "iss2-1"]);
}

#[test]
fn traffic_crossing_shards_gets_one_answer_a_request_and_is_counted_once() {
    let iss = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let iss2 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(iss.addr, iss2.addr, 5000));
    wait_signed_on(&switch);
    assert_eq!(switch.handle().shards(), 2);
    const N: usize = 400;
    let (a, a2) = (switch.addr("acq-1"), switch.addr("acq2-1"));
    let ascii = Wire::parse("bin2", "iso87-ascii").unwrap();
    // Four flows at once: two cross the hop (each way), two stay on their shard.
    let flows = [
        std::thread::spawn(move || drive(a, Wire::NATIVE, VISA, "12345678", 0, N)),
        std::thread::spawn(move || drive(a, Wire::NATIVE, MASTER, "12345678", N, N)),
        std::thread::spawn(move || drive(a2, ascii, MASTER, "87654321", 2 * N, N)),
        std::thread::spawn(move || drive(a2, ascii, VISA, "87654321", 3 * N, N)),
    ];
    for (k, f) in flows.into_iter().enumerate() {
        let got = f.join().unwrap();
        assert_eq!(got.len(), N, "flow {k}: every request answered");
        assert!(got.values().all(|c| c == &["00"]), "flow {k}: once, approved: {got:?}");
    }
    switch.wait_quiet();
    let r = switch.handle().report_blocking().unwrap();
    let total = 4 * N as u64;
    assert_eq!(r.stats.requests_in, total, "counted once, where they came in: {:?}", r.stats);
    assert_eq!(r.stats.forwarded, total, "forwarded once, where they left: {:?}", r.stats);
    assert_eq!(r.stats.relayed, total, "relayed once, to their originator: {:?}", r.stats);
    assert_eq!(r.stats.hop_requests_in, 2 * N as u64, "half crossed a hop: {:?}", r.stats);
    let hops: Vec<_> = r.links.iter().filter(|(n, _)| n.starts_with("hop:")).collect();
    assert!(hops.iter().all(|(_, c)| c.frames_in > 0 && c.frames_out > 0), "{hops:?}");
    assert_eq!(iss.seen_mti(200).len() + iss2.seen_mti(200).len(), 4 * N, "each reached its issuer once");
    let r = switch.stop();
    assert_eq!(r.requests_pending, 0);
}

#[test]
fn a_stalled_destination_on_the_other_shard_is_timed_out_and_reversed_once() {
    let iss = Issuer::start(Wire::NATIVE, Behaviour::Silent);
    let iss2 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(iss.addr, iss2.addr, 300));
    wait_signed_on(&switch);
    const N: usize = 20;
    let got = drive(switch.addr("acq-1"), Wire::NATIVE, VISA, "12345678", 0, N);
    assert_eq!(got.len(), N);
    assert!(got.values().all(|c| c == &["68"]), "timed out, answered once: {got:?}");
    // Reversed by the issuer's shard, once each; the acquirer's shard (waiting longer) made
    // none of its own.
    assert!(
        iss.wait_for(WAIT_MAX, |seen| seen.iter().filter(|m| m.mti() == Mti::REVERSAL_ADVICE).count() >= N),
        "{:?} {:?}",
        iss.seen().iter().map(|m| m.mti().value()).collect::<Vec<_>>(),
        switch.handle().report_blocking().map(|r| r.stats)
    );
    std::thread::sleep(corridor_engine::shards::HOP_MARGIN * 2);
    let reversals = iss.seen_mti(420);
    assert_eq!(reversals.len(), N, "one reversal each, not one per shard");
    let mut originals: Vec<_> =
        reversals.iter().map(|m| m.get(de::ORIGINAL_DATA).unwrap()[4..10].to_vec()).collect();
    originals.sort();
    originals.dedup();
    assert_eq!(originals.len(), N, "each names its own original");
    // The other flows were not disturbed by the stalled one.
    let other = drive(switch.addr("acq-1"), Wire::NATIVE, MASTER, "12345678", 100, 50);
    assert!(other.values().all(|c| c == &["00"]) && other.len() == 50);
    let r = switch.handle().report_blocking().unwrap();
    assert_eq!(r.stats.timeouts, N as u64, "timed out on one shard only: {:?}", r.stats);
}

#[test]
fn approvals_an_originator_on_the_other_shard_never_got_are_reversed() {
    let iss = Issuer::start(Wire::NATIVE, Behaviour::ApproveAfter(Duration::from_millis(400)));
    let iss2 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(iss.addr, iss2.addr, 5000));
    wait_signed_on(&switch);
    const N: usize = 10;
    let mut c = Conn::connect(switch.addr("acq-1"), Wire::NATIVE);
    for i in 0..N {
        c.send(i as u64 + 1, &purchase(VISA, &stan(i), "12345678"));
    }
    assert!(
        iss.wait_for(WAIT_MAX, |seen| seen.iter().filter(|m| m.mti() == Mti::FINANCIAL_REQUEST).count() == N)
    );
    // The acquirer goes before the approvals come back over the hop.
    c.close();
    assert!(
        iss.wait_for(WAIT_MAX, |seen| seen.iter().filter(|m| m.mti() == Mti::REVERSAL_ADVICE).count() >= N),
        "every approval reversed toward the issuer: {:?}",
        iss.seen().iter().map(|m| m.mti().value()).collect::<Vec<_>>()
    );
    switch.wait_quiet();
    assert_eq!(iss.seen_mti(420).len(), N, "once each");
    let r = switch.handle().report_blocking().unwrap();
    assert_eq!(r.stats.approvals_reversed, N as u64, "{:?}", r.stats);
    assert_eq!(r.reversals_pending, 0, "acknowledged on both shards");
}

#[test]
fn a_retransmission_on_another_connection_is_answered_from_its_outcome_not_sent_across_again() {
    let iss = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let iss2 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(iss.addr, iss2.addr, 5000));
    wait_signed_on(&switch);
    let req = purchase(VISA, "000777", "12345678");
    let mut first = Conn::connect(switch.addr("acq-1"), Wire::NATIVE);
    first.send(1, &req);
    let (_, a) = first.recv_app_within(WAIT_MAX).expect("answered");
    assert_eq!(a.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    first.close();
    let mut again = Conn::connect(switch.addr("acq-1"), Wire::NATIVE);
    again.send(2, &req);
    let (_, b) = again.recv_app_within(WAIT_MAX).expect("answered again");
    assert_eq!(b.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    assert_eq!(b.get(de::AUTH_ID), a.get(de::AUTH_ID), "the same outcome");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(iss.seen_mti(200).len(), 1, "charged once");
    assert_eq!(switch.handle().report_blocking().unwrap().stats.duplicates_replayed, 1);
}

#[test]
fn a_reload_adds_a_participant_on_the_other_shard_and_routes_to_it_across_the_hop() {
    let iss = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let iss2 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let iss3 = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let dir = std::env::temp_dir().join(format!("corridor-shards-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switch.toml");
    let a = config(iss.addr, iss2.addr, 5000);
    std::fs::write(&path, &a).unwrap();
    let loaded = corridor_config::load(&path).unwrap();
    let current = corridor_config::reload::Current::of(&loaded);
    let switch = TestSwitch::start(&a);
    wait_signed_on(&switch);
    let b = format!(
        "{a}\n[[participant]]\nid = \"iss3\"\nroles = [\"issuer\"]\nshard = 1\n  [[participant.link]]\n  \
         name = \"iss3-1\"\n  mode = \"dial\"\n  address = \"{}\"\n  framing = \"native\"\n  dialect = \"native\"\n\n\
         [[route]]\npan_prefix = \"411111\"\ndestination = \"iss3\"\n",
        iss3.addr
    );
    std::fs::write(&path, &b).unwrap();
    let r = corridor_config::reload::reload(&current, &path, None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let done = rt.block_on(switch.handle().reconfigure(r.reconfigure)).unwrap();
    assert!(done.is_ok(), "{done:?}");
    switch.wait_signed_on(&["iss3-1"]);
    let got = drive(switch.addr("acq-1"), Wire::NATIVE, "4111111111111111", "12345678", 0, 20);
    assert!(got.len() == 20 && got.values().all(|c| c == &["00"]), "{got:?}");
    assert_eq!(iss3.seen_mti(200).len(), 20, "the new issuer, on shard 1, got them");
    // The old routes still work on both shards.
    let old =
        drive(switch.addr("acq2-1"), Wire::parse("bin2", "iso87-ascii").unwrap(), MASTER, "87654321", 50, 20);
    assert!(old.values().all(|c| c == &["00"]) && old.len() == 20);
    // A participant moved to another shard by a reload is refused, and changes nothing.
    let moved = b.replacen(
        "shard = 1\n  [[participant.link]]\n  name = \"iss3-1\"",
        "shard = 0\n  [[participant.link]]\n  name = \"iss3-1\"",
        1,
    );
    std::fs::write(&path, &moved).unwrap();
    let r = corridor_config::reload::reload(&r.next, &path, None).unwrap();
    let refused = rt.block_on(switch.handle().reconfigure(r.reconfigure)).unwrap();
    assert!(
        matches!(
            &refused,
            Err(corridor_net::ReconfigureError::Shards(corridor_engine::shards::PlanError::Moves { participant, .. }))
                if participant == "iss3"
        ),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().to_string().contains("needs a restart"));
    let still = drive(switch.addr("acq-1"), Wire::NATIVE, "4111111111111111", "12345678", 100, 5);
    assert!(still.values().all(|c| c == &["00"]) && still.len() == 5);
    let _ = std::fs::remove_dir_all(&dir);
}

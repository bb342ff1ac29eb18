//! A switch that is a node of a cluster: each shard's journal replicated in the stream of a
//! real JetStream cluster (three pinned `nats-server` processes on loopback). Every record
//! the node journals is in the stream once, in order and byte for byte as the local journal
//! has it; a restart goes on from there; killing the stream's leader under load delays
//! answers (none leaves without its record in the stream) and loses nothing; checkpoints go
//! into the stream, what is before them is purged, and a takeover reads from the last one.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::time::{Duration, Instant};

use corridor_cluster::{stream::read, Tail};
use corridor_tests::{
    nats::NatsCluster,
    peer::{purchase, Behaviour, Conn, Issuer, Wire, WAIT_MAX},
    switch::{tcp_issuer, TestSwitch},
};
use corridor_wire::{de, Mti};

const PAN: &str = "4761739001010010";
const SHARDS: usize = 2;

/// A node of the cluster in `nats`: an acquirer, an issuer `iss` behind a route whose
/// timeout (20 s) outlasts an election of the stream's leader, two shards.
fn config(state: &std::path::Path, issuer: std::net::SocketAddr, nats: &NatsCluster) -> String {
    config_of("node-1", state, issuer, nats)
}

/// [`config`] for node `node`.
fn config_of(
    node: &str,
    state: &std::path::Path,
    issuer: std::net::SocketAddr,
    nats: &NatsCluster,
) -> String {
    let servers: Vec<String> = nats.urls().iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[switch]\nshards = {SHARDS}\n\n\
         [[participant]]\nid = \"acq\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\n  \
         [[participant.link]]\n  name = \"acq-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:0\"\n  \
         framing = \"native\"\n  dialect = \"native\"\n  sign_on_required = false\n\n{}timeout_ms = 20000\n\n\
         [journal]\ndir = \"{}\"\nkey_file = \"{}\"\ngroup_wait_us = 100\n\n\
         [cluster]\nnode = \"{node}\"\nnats = [{}]\n",
        tcp_issuer(issuer),
        state.join("journal").display(),
        state.join("pan.key").display(),
        servers.join(", ")
    )
}

fn state_dir(name: &str) -> corridor_tests::scratch::Scratch {
    corridor_tests::scratch::Scratch::with_pan_key(&format!("cluster-{name}"))
}

/// Pays `stans` through the switch, each answered 00; how long each answer took.
fn pay(switch: &TestSwitch, stans: std::ops::RangeInclusive<u32>) -> Vec<Duration> {
    pay_allowing(switch, stans, &[b"00"]).into_iter().map(|(took, _)| took).collect()
}

/// Pays `stans` through the switch, each answered with one of `codes`; how long each
/// answer took, and its code.
fn pay_allowing(
    switch: &TestSwitch,
    stans: std::ops::RangeInclusive<u32>,
    codes: &[&[u8; 2]],
) -> Vec<(Duration, [u8; 2])> {
    let mut acq = Conn::connect(switch.addr("acq-1"), Wire::NATIVE);
    let mut took = Vec::new();
    for stan in stans {
        let start = Instant::now();
        acq.send(u64::from(stan), &purchase(PAN, &format!("{stan:06}"), "12345678"));
        let (_, r) = acq.recv_app_within(WAIT_MAX * 3).unwrap_or_else(|| panic!("{stan} answered"));
        let code: [u8; 2] = r.get(de::RESPONSE_CODE).and_then(|c| c.try_into().ok()).unwrap_or(*b"--");
        assert_eq!(r.mti(), Mti::FINANCIAL_RESPONSE, "{stan}");
        assert!(codes.contains(&&code), "{stan}: {:?}", String::from_utf8_lossy(&code));
        took.push((start.elapsed(), code));
    }
    took
}

/// Pays `stans` through the switch with up to `window` in flight at once, each answered 00.
fn pay_pipelined(switch: &TestSwitch, stans: std::ops::RangeInclusive<u32>, window: usize) {
    let mut acq = Conn::connect(switch.addr("acq-1"), Wire::NATIVE);
    let (mut next, last) = (*stans.start(), *stans.end());
    let mut open = 0usize;
    while next <= last || open > 0 {
        while open < window && next <= last {
            acq.send(u64::from(next), &purchase(PAN, &format!("{next:06}"), "12345678"));
            (next, open) = (next + 1, open + 1);
        }
        let (stan, r) = acq.recv_app_within(WAIT_MAX * 3).expect("an answer");
        assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]), "{stan}");
        open -= 1;
    }
}

/// Each shard's local journal and its subject in the stream, read in order with no gap:
/// the stream holds the journal's records byte for byte, up to those the node made while it
/// stopped (its links going down, after the drain's last sync), which the next start refills.
/// Per shard: the bytes the stream holds and the journal's.
fn stream_and_journal(state: &std::path::Path, nats: &NatsCluster) -> Vec<(usize, usize)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    (0..SHARDS)
        .map(|k| {
            let dir =
                if k == 0 { state.join("journal") } else { state.join("journal").join(format!("shard-{k}")) };
            let local: Vec<u8> = corridor_net::journal::records_from(&dir, 1, usize::MAX)
                .unwrap()
                .into_iter()
                .flat_map(|(_, _, b)| b)
                .collect();
            // Read as a takeover reads, waiting out an election still settling (bounded).
            let batches = rt.block_on(async {
                let c = async_nats::connect(nats.urls()).await.unwrap();
                let start = Instant::now();
                loop {
                    match read(c.clone(), "CORRIDOR", u16::try_from(k).unwrap(), Tail::default()).await {
                        Ok(b) => break b,
                        Err(e) if start.elapsed() < Duration::from_secs(30) => {
                            eprintln!("reading shard {k}'s subject again: {e}");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => panic!("shard {k}'s subject: {e}"),
                    }
                }
            });
            let streamed: Vec<u8> = batches.iter().flat_map(|b| b.records.iter().copied()).collect();
            assert!(!streamed.is_empty(), "shard {k} replicated");
            // Either may begin later than record 1: the stream purged before a checkpoint,
            // the journal rebuilt from one. Side by side from the later beginning.
            let local_first = corridor_net::journal::first_segment(&dir).unwrap().unwrap_or(1);
            let from = local_first.max(batches[0].first_seq);
            let streamed =
                corridor_journal::records_since(&streamed, batches[0].first_seq, from).unwrap().to_vec();
            let local = corridor_journal::records_since(&local, local_first, from).unwrap().to_vec();
            assert!(local.starts_with(&streamed), "shard {k}: the stream's records are the journal's");
            let tail = corridor_journal::segment::scan_segment(
                &[
                    corridor_journal::SegmentHeader { first_seq: from, created_unix_ms: 0 }
                        .to_bytes()
                        .as_slice(),
                    &local[streamed.len()..],
                ]
                .concat(),
                from,
                true,
            )
            .map(|s| s.records.iter().map(|f| f.record.kind).collect::<Vec<_>>())
            .unwrap_or_default();
            assert!(
                tail.iter().all(|k| *k == corridor_journal::Kind::LinkEvent),
                "shard {k}: only the links' going down may wait for the next start: {tail:?}"
            );
            (streamed.len(), local.len())
        })
        .collect()
}

/// How many messages of the stream are compressed batches ("CRB2"), and how many plain
/// ("CRB1"), every shard's stream's, read one by one.
fn batch_kinds(nats: &NatsCluster) -> (usize, usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(nats.urls()).await.unwrap());
        let (mut compressed, mut plain) = (0, 0);
        for shard in 0..SHARDS {
            let shard = u16::try_from(shard).unwrap();
            let stream = corridor_cluster::stream::shard_stream("CORRIDOR", shard);
            let mut s = js.get_stream(stream).await.unwrap();
            let last = s.info().await.unwrap().state.last_sequence;
            for seq in 1..=last {
                let Ok(m) = s.get_raw_message(seq).await else { continue };
                match &m.payload[..4] {
                    b"CRB2" => compressed += 1,
                    b"CRB1" => plain += 1,
                    _ => {}
                }
            }
        }
        (compressed, plain)
    })
}

#[test]
fn every_record_is_in_the_stream_once_in_order_as_the_journal_has_it_and_a_restart_goes_on() {
    let nats = NatsCluster::start(3);
    let state = state_dir("steady");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let mut before: Vec<(usize, usize)> = Vec::new();
    let mut kinds = (0, 0);
    for (round, stans) in [(0, 1..=30u32), (1, 31..=40)] {
        // The restart appends plain messages (`compress = false`, as while a build before
        // compression may read the stream): a subject of both kinds reads as the journal has it.
        let plain = if round == 1 { "compress = false\n" } else { "" };
        let switch = TestSwitch::start(&format!("{}{plain}", config(&state, issuer.addr, &nats)));
        switch.wait_replicating();
        switch.wait_signed_on(&["iss-1"]);
        pay(&switch, stans);
        switch.stop();
        let (compressed, plain) = batch_kinds(&nats);
        if round == 0 {
            assert!(
                compressed > 0,
                "a switch's batches go compressed ({compressed} compressed, {plain} plain)"
            );
            kinds = (compressed, plain);
        } else {
            assert_eq!(compressed, kinds.0, "the restart's batches all went plain");
            assert!(plain > kinds.1, "the restart appended");
        }
        let now = stream_and_journal(&state, &nats);
        for (k, ((was_streamed, was_local), (streamed, _))) in before.iter().zip(&now).enumerate() {
            assert!(
                streamed > was_local && was_local >= was_streamed,
                "shard {k}: the restart refilled the stream"
            );
        }
        eprintln!("round {round}: (bytes in the stream, in the journal) per shard: {now:?}");
        before = now;
    }
}

/// A burst of large requests — 8 KB each, eight private fields of 999 characters — gathered
/// into one group commit (the batch waits 50 ms for more) of more records than one stream
/// message holds: the batch goes in cut between records, every request is answered 00, and
/// the stream holds the journal byte for byte. (Until the batch was cut, its append
/// panicked on the message's bound and the node stopped.)
#[test]
fn a_group_commit_larger_than_a_stream_message_is_replicated_whole_and_answered() {
    let nats = NatsCluster::start(3);
    let state = state_dir("large");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let conf = config(&state, issuer.addr, &nats).replace("group_wait_us = 100", "group_wait_us = 50000");
    let switch = TestSwitch::start(&conf);
    switch.wait_replicating();
    switch.wait_signed_on(&["iss-1"]);
    let mut acq = Conn::connect(switch.addr("acq-1"), Wire::NATIVE);
    let burst = 200u32;
    for stan in 1..=burst {
        let mut m = purchase(PAN, &format!("{stan:06}"), "12345678");
        for f in [48, 61, 62, 63, 120, 121, 122, 123] {
            m.set(corridor_wire::FieldId::new(f).unwrap(), vec![b'A' + f % 26; 999]).unwrap();
        }
        acq.send(u64::from(stan), &m);
    }
    let mut answered = std::collections::BTreeSet::new();
    for _ in 1..=burst {
        let (stan, r) = acq.recv_app_within(WAIT_MAX * 3).expect("an answer");
        assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]), "{stan}");
        answered.insert(stan);
    }
    assert_eq!(answered.len(), burst as usize, "each once");
    switch.stop();
    let held = stream_and_journal(&state, &nats);
    let streamed: usize = held.iter().map(|(s, _)| s).sum();
    assert!(streamed > corridor_cluster::limits::BATCH_BYTES_MAX, "{streamed} bytes in the stream");
}

#[test]
fn killing_the_streams_leader_under_load_delays_answers_and_loses_nothing() {
    let mut nats = NatsCluster::start(3);
    let state = state_dir("leader");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(&state, issuer.addr, &nats));
    switch.wait_replicating();
    switch.wait_signed_on(&["iss-1"]);
    let mut took = pay(&switch, 1..=20);
    // Shard 0's stream's leader (each shard's stream has its own).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let leader = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(nats.urls()).await.unwrap());
        let mut s = js.get_stream(corridor_cluster::stream::shard_stream("CORRIDOR", 0)).await.unwrap();
        s.info().await.unwrap().cluster.as_ref().and_then(|c| c.leader.clone()).unwrap()
    });
    let i: usize = leader.trim_start_matches('n').parse().unwrap();
    nats.kill(i);
    // Through the election: answered once the stream has the records — or, when the
    // election outlasts a lease (the lease bucket's leader may have been on the killed
    // server too), new requests are declined 96 until the lease is renewed again.
    let during = pay_allowing(&switch, 21..=40, &[b"00", b"96"]);
    let declined = during.iter().filter(|(_, c)| c == b"96").count();
    took.extend(during.into_iter().map(|(t, _)| t));
    nats.restart(i);
    switch.wait_replicating();
    took.extend(pay(&switch, 41..=50));
    switch.stop();
    stream_and_journal(&state, &nats);
    took.sort();
    eprintln!(
        "answers: p50 {:?}, p99 {:?}, longest {:?} (the stream's election after its leader was killed); \
         {declined} of 20 declined 96 during it",
        took[took.len() / 2],
        took[took.len() * 99 / 100],
        took.last().unwrap()
    );
}

#[test]
fn a_node_on_another_machine_takes_the_shards_over_from_the_stream_and_answers_repeats_from_their_outcomes() {
    let nats = NatsCluster::start(3);
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let state_a = state_dir("node-a");
    let a = TestSwitch::start(&config_of("node-a", &state_a, issuer.addr, &nats));
    a.wait_replicating();
    a.wait_signed_on(&["iss-1"]);
    pay(&a, 1..=20);
    a.stop();
    // The machine is lost with its disk.
    std::fs::remove_dir_all(&state_a).unwrap();
    let forwarded = issuer.seen_mti(200).len();
    assert_eq!(forwarded, 20);

    // Another node, an empty disk: it waits for node-a's leases to expire, takes each shard's
    // journal from the stream and recovers it as a restart would.
    let state_b = state_dir("node-b");
    let started = Instant::now();
    let b = TestSwitch::start(&config_of("node-b", &state_b, issuer.addr, &nats));
    b.wait_replicating();
    b.wait_signed_on(&["iss-1"]);
    let took_over = started.elapsed();
    // A repeat of a payment node-a approved is answered from its outcome, not sent again.
    let mut acq = Conn::connect(b.addr("acq-1"), Wire::NATIVE);
    acq.send(5, &purchase(PAN, "000005", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("the repeat answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    assert_eq!(issuer.seen_mti(200).len(), forwarded, "the repeat was not forwarded again");
    drop(acq);
    pay(&b, 21..=30);
    b.stop();
    let shards = stream_and_journal(&state_b, &nats);
    eprintln!("takeover by another node: serving {took_over:?} after it started; (stream, journal) bytes per shard {shards:?}");
}

#[test]
fn with_every_nats_server_killed_answers_wait_and_resume_by_themselves_and_nothing_is_lost() {
    let mut nats = NatsCluster::start(3);
    let state = state_dir("all-down");
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(&state, issuer.addr, &nats));
    switch.wait_replicating();
    switch.wait_signed_on(&["iss-1"]);
    pay(&switch, 1..=10);
    for i in 0..3 {
        nats.kill(i);
    }
    // A payment while no server runs: forwarded and answered only once its records are in
    // the stream, which comes back 2 s later and elects its leaders again.
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        for i in 0..3 {
            nats.restart(i);
        }
        nats
    });
    let waited = pay(&switch, 11..=11)[0];
    let nats = restart.join().unwrap();
    assert!(waited > Duration::from_secs(2), "the answer waited for the stream: {waited:?}");
    // The leases, unrenewed for longer than they live, are taken again once the bucket has
    // its leader; until then new requests are declined 96 (a partner tries another node).
    let answered = Instant::now();
    switch.wait_replicating();
    let declining = answered.elapsed();
    let after = pay(&switch, 12..=20);
    switch.stop();
    stream_and_journal(&state, &nats);
    eprintln!(
        "every NATS server killed, restarted 2 s later: the answer waited {waited:?}; new requests were declined 96 \
         for {declining:?} more (the leases taken again); then the next ones took up to {:?}",
        after.iter().max().unwrap()
    );
}

#[test]
fn checkpoints_go_into_the_stream_what_is_before_them_is_purged_and_a_takeover_reads_from_the_last() {
    let nats = NatsCluster::start(3);
    let issuer = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    // Segments of 1 MiB (the least), a checkpoint at each, nothing kept past one: the stream
    // is purged at every checkpoint.
    let small = |c: String| {
        c.replace(
            "group_wait_us = 100\n",
            "group_wait_us = 100\nsegment_bytes = 1048576\ncheckpoint_segments = 1\nretain_hours = 0\n",
        )
    };
    let state_a = state_dir("checkpoint-a");
    let a = TestSwitch::start(&small(config_of("node-a", &state_a, issuer.addr, &nats)));
    a.wait_replicating();
    a.wait_signed_on(&["iss-1"]);
    // Enough for several segments on each shard (a purchase is a few records on each).
    let mut paid = 0u32;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(async { async_nats::connect(nats.urls()).await.unwrap() });
    let deadline = Instant::now() + Duration::from_secs(90);
    let purged = loop {
        pay_pipelined(&a, paid + 1..=paid + 1_000, 64);
        paid += 1_000;
        let snap = a.handle().snapshot_blocking().unwrap();
        let shards: Vec<(u64, u64, u64)> =
            snap.journal.replicas.iter().map(|m| (m.checkpoint, m.checkpoints, m.purged)).collect();
        // (The participants' shard: the other holds only its start's records.)
        if shards.iter().any(|&(_, n, purged)| n >= 2 && purged > 0) {
            break shards;
        }
        assert!(Instant::now() < deadline, "checkpoints and purges after {paid} purchases: {shards:?}");
    };
    // What the stream holds of each shard no longer begins at record 1, and its last
    // checkpoint is where a takeover reads from.
    for (k, &(covers, _, _)) in purged.iter().enumerate().filter(|(_, &(_, _, purged))| purged > 0) {
        let shard = u16::try_from(k).unwrap();
        let kept = rt
            .block_on(corridor_cluster::stream::records_after(client.clone(), "CORRIDOR", shard, 0))
            .unwrap();
        let took =
            rt.block_on(corridor_cluster::stream::take_read(client.clone(), "CORRIDOR", shard)).unwrap();
        let (first, _) = kept.records.expect("records after the checkpoint");
        assert!(first > 1, "shard {k}: the stream was purged (it begins at record {first})");
        let ck = took.checkpoint.expect("a checkpoint in the stream");
        assert!(ck.covers >= covers && first <= ck.covers + 1, "shard {k}: {first} {}", ck.covers);
    }
    a.stop();
    std::fs::remove_dir_all(&state_a).unwrap();
    let forwarded = issuer.seen_mti(200).len();
    assert_eq!(forwarded, paid as usize);

    // Another node, an empty disk: its journal is the stream's last checkpoint and the
    // records after it — not the whole history.
    let state_b = state_dir("checkpoint-b");
    let started = Instant::now();
    let b = TestSwitch::start(&small(config_of("node-b", &state_b, issuer.addr, &nats)));
    b.wait_replicating();
    b.wait_signed_on(&["iss-1"]);
    let took_over = started.elapsed();
    for (k, _) in purged.iter().enumerate().filter(|(_, &(_, _, purged))| purged > 0) {
        let dir =
            if k == 0 { state_b.join("journal") } else { state_b.join("journal").join(format!("shard-{k}")) };
        let checkpoints = corridor_net::journal::checkpoints(&dir).unwrap();
        let first = corridor_net::journal::first_segment(&dir).unwrap().unwrap();
        assert!(
            !checkpoints.is_empty() && first > 1,
            "shard {k}: checkpoints {checkpoints:?}, first segment {first}"
        );
    }
    // A repeat of the first purchase — in no message the stream still holds, only in the
    // checkpoint's outcomes — is answered from its outcome, not sent again.
    let mut acq = Conn::connect(b.addr("acq-1"), Wire::NATIVE);
    acq.send(1, &purchase(PAN, "000001", "12345678"));
    let (_, r) = acq.recv_app_within(WAIT_MAX).expect("the repeat answered");
    assert_eq!(r.get(de::RESPONSE_CODE), Some(&b"00"[..]));
    assert_eq!(issuer.seen_mti(200).len(), forwarded, "the repeat was not forwarded again");
    drop(acq);
    pay(&b, paid + 1..=paid + 10);
    b.stop();
    let shards = stream_and_journal(&state_b, &nats);
    eprintln!(
        "{paid} purchases on node-a; per shard (covers, checkpoints, purged) {purged:?}; node-b serving \
         {took_over:?} after it started, from the checkpoint; (stream, journal) bytes per shard {shards:?}"
    );
}

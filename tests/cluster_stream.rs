//! A shard's journal in a real JetStream cluster (three pinned `nats-server` processes on
//! loopback, R3, `sync_interval: always`): appends ordered and exactly once, read back
//! checked; a second writer fences the first; killing the stream's leader under appends loses
//! nothing it acknowledged; a lease is one node's while it renews it and another's once it
//! stops; a checkpoint lets a takeover read from it and what came before it be purged; a
//! release mark the bucket did not acknowledge is made again.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::{Duration, Instant};

use corridor_cluster::{
    batch::CHECKPOINT_PART_BYTES,
    stream::{self, read, take_read},
    AppendError, CheckpointPart, Hint, LeaseError, Leases, ShardLog, StreamError, Tail,
};
use corridor_tests::nats::NatsCluster;

const STREAM: &str = "CORRIDOR";

async fn client(c: &NatsCluster) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(c.urls())
        .await
        .expect("a client connects")
}

/// How long a test waits for its cluster's streams to be made: elections measured 2.3–8 s
/// with the pinned server, more on a machine running other clusters' tests beside it.
const READY_WAIT_MAX: Duration = Duration::from_secs(60);

/// The streams of `shards` made (R3), waiting out the cluster's first meta-leader election;
/// a failure names what the servers logged last.
async fn ready(cluster: &NatsCluster, client: &async_nats::Client, shards: &[u16]) {
    let js = async_nats::jetstream::new(client.clone());
    let start = Instant::now();
    for &shard in shards {
        loop {
            match stream::ensure(&js, STREAM, shard, 3).await {
                Ok(()) => break,
                Err(e) => {
                    assert!(
                        start.elapsed() < READY_WAIT_MAX,
                        "the stream cannot be made: {e}; the servers logged last:{}",
                        cluster.log_tails()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

fn records(first: u64, last: u64) -> Vec<u8> {
    (first..=last).flat_map(|s| format!("record {s};").into_bytes()).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn appends_are_ordered_exactly_once_and_read_back_checked() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[0, 1]).await;
    let mut zero = ShardLog::open(c.clone(), STREAM, 0).await.unwrap();
    let mut one = ShardLog::open(c.clone(), STREAM, 1).await.unwrap();
    let (mut next, mut other) = (1, 0);
    for i in 0..40u64 {
        let last = next + i % 3;
        zero.append(next, last, &records(next, last)).await.unwrap();
        next = last + 1;
        if i % 4 == 0 {
            // Another shard's subject in between: its own sequence, not this one's.
            other += 1;
            one.append(other, other, b"other shard").await.unwrap();
        }
    }
    let back = read(c.clone(), STREAM, 0, Tail::default()).await.unwrap();
    assert_eq!(back.len(), 40, "each append once");
    assert_eq!((back[0].first_seq, back.last().unwrap().last_seq), (1, next - 1));
    for b in &back {
        assert_eq!(b.records, records(b.first_seq, b.last_seq), "batch {} as written", b.seq);
    }
    assert_eq!(back.last().unwrap().seq, zero.last());
    // A reader that expects another start finds the gap.
    let gap = read(c.clone(), STREAM, 0, Tail::from(2)).await.unwrap_err();
    assert!(gap.to_string().contains("skips from record 2 to 1"), "{gap}");
    assert_eq!(read(c.clone(), STREAM, 1, Tail::default()).await.unwrap().len(), 10);
    // A stream per shard: shard 0's stream holds shard 0's batches only, behind its
    // writer's fence.
    let js = async_nats::jetstream::new(c.clone());
    let mut own = js.get_stream(stream::shard_stream(STREAM, 0)).await.unwrap();
    let state = own.info().await.unwrap().state.clone();
    let k = corridor_cluster::limits::APPENDS_IN_FLIGHT_MAX;
    assert_eq!((state.messages, state.first_sequence, state.last_sequence), (40 + k, 1, 40 + k));
}

/// A cluster whose stream is of the layout before a stream per shard (every shard's subject
/// in one stream named as the cluster) is told so, by name, not retried as a server error.
#[tokio::test(flavor = "current_thread")]
async fn a_stream_of_the_old_layout_is_named_in_a_clear_error() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[0]).await;
    let js = async_nats::jetstream::new(c.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "OLD".into(),
        subjects: vec!["OLD.shard.*".into()],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    match stream::ensure(&js, "OLD", 0, 3).await {
        Err(e @ StreamError::OldLayout(_)) => {
            let said = e.to_string();
            assert!(said.contains("stream OLD holds every shard's subject"), "{said}");
        }
        other => panic!("the old layout: {other:?}"),
    }
    // Another cluster's stream beside it is no old layout: its shards' streams are made.
    stream::ensure(&js, "NEW", 0, 3).await.unwrap();
    stream::ensure(&js, "NEW", 0, 3).await.unwrap();
}

/// Batches go into the stream compressed — large ones off the caller's thread — and read
/// back as the journal wrote them; records that do not compress go as they are.
#[tokio::test(flavor = "current_thread")]
async fn batches_are_stored_compressed_and_read_back_whole() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[2, 3]).await;
    let mut log = ShardLog::open(c.clone(), STREAM, 2).await.unwrap();
    // A switch's records are much alike from one to the next: 200 KiB of them.
    let alike = records(1, 20_000);
    assert!(alike.len() > corridor_cluster::limits::ENCODE_INLINE_BYTES);
    let seq = log.append_shared(1, 20_000, alike.clone()).await.unwrap();
    // Records that do not compress (no sequence repeats).
    let noise = noise(&mut 0x2545_f491, 40_000);
    log.append(20_001, 20_001, &noise).await.unwrap();
    log.append_shared(20_002, 20_003, records(20_002, 20_003)).await.unwrap();

    let js = async_nats::jetstream::new(c.clone());
    let stored =
        js.get_stream(stream::shard_stream(STREAM, 2)).await.unwrap().get_raw_message(seq).await.unwrap();
    assert!(
        stored.payload.len() * 2 < alike.len(),
        "{} bytes stored for {} of records",
        stored.payload.len(),
        alike.len()
    );
    let back = read(c.clone(), STREAM, 2, Tail::default()).await.unwrap();
    assert_eq!(back.len(), 3);
    assert!(back[0].records == alike, "the compressed batch whole");
    assert!(back[1].records == noise, "the incompressible one whole");
    assert_eq!(back[2].records, records(20_002, 20_003));

    // Told not to (`[cluster] compress = false`: a build before compression may read the
    // stream), the same records go plain.
    let mut plain = ShardLog::open(c.clone(), STREAM, 3).await.unwrap();
    plain.set_compress(false);
    let seq = plain.append_shared(1, 20_000, alike.clone()).await.unwrap();
    let stored =
        js.get_stream(stream::shard_stream(STREAM, 3)).await.unwrap().get_raw_message(seq).await.unwrap();
    assert!(stored.payload.len() > alike.len(), "{} bytes stored", stored.payload.len());
    assert_eq!(&stored.payload[..4], b"CRB1");
    assert!(read(c.clone(), STREAM, 3, Tail::default()).await.unwrap()[0].records == alike);
}

/// `n` bytes that do not compress (xorshift from `x`, which goes on from where they end).
fn noise(x: &mut u32, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *x ^= *x << 13;
            *x ^= *x >> 17;
            *x ^= *x << 5;
            *x as u8
        })
        .collect()
}

/// Journal records `first..=last` of `bytes` each that do not compress.
fn noisy_journal_records(first: u64, last: u64, bytes: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32 ^ u32::try_from(first).unwrap();
    let mut out = Vec::new();
    for seq in first..=last {
        corridor_journal::encode(
            seq,
            corridor_journal::Kind::RequestAccepted,
            &noise(&mut x, bytes),
            &mut out,
        );
    }
    out
}

/// The records of `batches`, one after another.
fn joined(batches: &[stream::ReadBatch]) -> Vec<u8> {
    batches.iter().flat_map(|b| b.records.iter().copied()).collect()
}

/// A group commit can gather more records than one message holds (a burst of large
/// requests): the batch goes in as several messages, cut between records, and is read back
/// whole; asked again after part of it went in, it goes on after that part. Records one
/// message cannot hold, appended as one, are refused with nothing appended — not a panic.
#[tokio::test(flavor = "current_thread")]
async fn a_batch_larger_than_a_message_goes_in_as_several_and_is_read_back_whole() {
    use corridor_cluster::limits::{BATCH_BYTES_MAX, MESSAGE_RECORDS_BYTES};
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[8]).await;
    let mut log = ShardLog::open(c.clone(), STREAM, 8).await.unwrap();
    let big = noisy_journal_records(1, 200, 13_000);
    assert!(big.len() > 2 * BATCH_BYTES_MAX);
    match log.append_shared(1, 200, big.clone()).await {
        Err(AppendError::TooLarge { bytes }) => assert_eq!(bytes, big.len()),
        other => panic!("records past a message appended as one: {other:?}"),
    }
    assert_eq!(log.last(), 0, "nothing appended");

    let first = log.append_journal(1, 200, big.clone()).await.unwrap();
    let back = read(c.clone(), STREAM, 8, Tail::default()).await.unwrap();
    assert!(back.len() >= 5, "{} messages for {} bytes", back.len(), big.len());
    assert_eq!(back[0].seq, first, "where the batch begins");
    assert_eq!(log.last(), back.last().unwrap().seq);
    assert!(joined(&back) == big, "the batch whole, in order");
    let js = async_nats::jetstream::new(c.clone());
    let stream = js.get_stream(stream::shard_stream(STREAM, 8)).await.unwrap();
    for b in &back {
        let stored = stream.get_raw_message(b.seq).await.unwrap();
        assert!(stored.payload.len() <= BATCH_BYTES_MAX, "message {}: {} bytes", b.seq, stored.payload.len());
    }

    // The next batch's first message went in, and the append's answer did not come (an
    // error): asked again, the batch goes on after it — the reader finds no record twice.
    let next = noisy_journal_records(201, 300, 13_000);
    let pieces = corridor_journal::record::pieces(&next, MESSAGE_RECORDS_BYTES).unwrap();
    assert!(pieces.len() > 2);
    log.append(201, pieces[0].last_seq, &next[pieces[0].bytes.clone()]).await.unwrap();
    let at = log.last();
    assert_eq!(
        log.append_journal(201, 300, next.clone()).await.unwrap(),
        at,
        "the batch begins where it began"
    );
    assert!(log.last() > at + 1, "the rest went in after it");
    let back = read(c.clone(), STREAM, 8, Tail::default()).await.unwrap();
    assert!(joined(&back) == [big.clone(), next.clone()].concat(), "both batches once, in order");
    let took = take_read(c.clone(), STREAM, 8).await.unwrap();
    assert!(took.records == Some((1, [big, next].concat())), "a takeover reads them whole");
}

/// The cluster's bucket, where a checkpoint's hint lives (every node makes it at start).
async fn cluster_bucket(client: &async_nats::Client) -> async_nats::jetstream::kv::Store {
    let js = async_nats::jetstream::new(client.clone());
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: corridor_cluster::cluster_bucket(STREAM),
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .expect("the cluster's bucket")
}

/// Journal records `first..=last` as a journal has them on disk (what a takeover parses).
fn journal_records(first: u64, last: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in first..=last {
        corridor_journal::encode(
            seq,
            corridor_journal::Kind::LinkEvent,
            format!("record {seq}").as_bytes(),
            &mut out,
        );
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn a_takeover_reads_from_the_last_checkpoint_and_what_is_before_it_can_be_purged() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[5]).await;
    cluster_bucket(&c).await;
    let mut log = ShardLog::open(c.clone(), STREAM, 5).await.unwrap();
    let mut seqs = Vec::new();
    for i in 0..10u64 {
        seqs.push(log.append(3 * i + 1, 3 * i + 3, &journal_records(3 * i + 1, 3 * i + 3)).await.unwrap());
    }
    // The state of records 1..=24 — the journal's last closed segments — in three parts,
    // appended when the subject held 30; a reader of it starts at the batch of 25..=27.
    let state: Vec<u8> = (0..CHECKPOINT_PART_BYTES * 5 / 2).map(|i| (i % 251) as u8).collect();
    let first_part = log.append_checkpoint(24, 30, state.clone()).await.unwrap();
    assert_eq!(log.last(), first_part + 2, "three parts, one after another");
    log.publish_hint(Hint { from: seqs[8], covers: 24 }).await.unwrap();
    for i in 10..12u64 {
        log.append(3 * i + 1, 3 * i + 3, &journal_records(3 * i + 1, 3 * i + 3)).await.unwrap();
    }
    assert_eq!(
        log.purge_before(seqs[8]).await.unwrap(),
        8 + corridor_cluster::limits::APPENDS_IN_FLIGHT_MAX,
        "the batches the checkpoint holds, and the writer's fence before them"
    );

    let took = take_read(c.clone(), STREAM, 5).await.unwrap();
    let ck = took.checkpoint.expect("the checkpoint is read");
    assert_eq!((ck.seq, ck.covers, ck.through), (first_part, 24, 30));
    assert!(ck.state == state, "the state as written, from its three parts");
    assert_eq!(
        took.records,
        Some((25, journal_records(25, 36))),
        "the records it does not cover, and those after"
    );
    assert_eq!(took.subject_last, log.last());
    // An older hint (a deposed owner's) never replaces it.
    log.publish_hint(Hint { from: seqs[0], covers: 12 }).await.unwrap();
    assert_eq!(take_read(c.clone(), STREAM, 5).await.unwrap().checkpoint.unwrap().covers, 24);
    // Clearing reads what the subject still holds, from its first message.
    let kept = stream::records_after(c.clone(), STREAM, 5, 0).await.unwrap();
    assert_eq!(kept.records, Some((25, journal_records(25, 36))));

    // A purge past what the checkpoint covers would lose records 25..=27: every reader sees it.
    log.purge_before(seqs[9]).await.unwrap();
    match take_read(c.clone(), STREAM, 5).await {
        Err(StreamError::Gap(g)) => assert_eq!((g.expected, g.found), (25, 28), "{g}"),
        other => panic!("records 25..=27 are gone: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_checkpoint_cut_short_is_passed_over_and_a_stale_hint_falls_back_to_the_whole_subject() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[6]).await;
    let kv = cluster_bucket(&c).await;
    let mut log = ShardLog::open(c.clone(), STREAM, 6).await.unwrap();
    log.append(1, 6, &journal_records(1, 6)).await.unwrap();
    // The first part of two, then its writer died: what a reader must pass over.
    let js = async_nats::jetstream::new(c.clone());
    let mut cut = Vec::new();
    CheckpointPart { shard: 6, covers: 6, through: 6, part: 0, parts: 2, bytes: b"half" }.encode(&mut cut);
    js.publish(stream::subject(STREAM, 6), cut.into()).await.unwrap().await.unwrap();
    let mut log = ShardLog::open(c.clone(), STREAM, 6).await.unwrap();
    log.append(7, 9, &journal_records(7, 9)).await.unwrap();
    let took = take_read(c.clone(), STREAM, 6).await.unwrap();
    assert_eq!(took.checkpoint, None, "a checkpoint cut short is none");
    assert_eq!(took.records, Some((1, journal_records(1, 9))));

    // A whole one (of records 1..=9, all the subject holds: a reader starts at it), the
    // subject purged before it, then a hint that points at a message purged since (a bucket
    // restored from an older copy, say): the takeover reads the subject whole instead.
    let at = log.append_checkpoint(9, 9, &b"state of 1..=9"[..]).await.unwrap();
    log.append(10, 10, &journal_records(10, 10)).await.unwrap();
    log.purge_before(at).await.unwrap();
    kv.put("checkpoint.6", "from=1 covers=6".into()).await.unwrap();
    let took = take_read(c.clone(), STREAM, 6).await.unwrap();
    let ck = took.checkpoint.expect("the checkpoint, read from the subject's first message");
    assert_eq!((ck.seq, ck.covers, ck.state.as_slice()), (at, 9, b"state of 1..=9".as_slice()));
    assert_eq!(took.records, Some((10, journal_records(10, 10))));
    // A hint past the subject's end (a stream made anew): the same.
    kv.put("checkpoint.6", format!("from={} covers=9", log.last() + 100).into()).await.unwrap();
    assert_eq!(take_read(c.clone(), STREAM, 6).await.unwrap().records, Some((10, journal_records(10, 10))));
}

#[tokio::test(flavor = "current_thread")]
async fn a_new_owners_first_append_fences_the_old_one_and_nothing_of_the_old_one_goes_in() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[2]).await;
    let mut old = ShardLog::open(c.clone(), STREAM, 2).await.unwrap();
    old.append(1, 2, &records(1, 2)).await.unwrap();
    // The new owner reads the subject (recovery) and appends its takeover record.
    let mut new = ShardLog::open(c.clone(), STREAM, 2).await.unwrap();
    assert_eq!(new.last(), old.last());
    new.append(3, 3, b"takeover").await.unwrap();
    match old.append(3, 4, &records(3, 4)).await {
        Err(AppendError::Fenced { expected, found }) => assert!(found > expected),
        other => panic!("the old owner's append must be fenced: {other:?}"),
    }
    let back = read(c.clone(), STREAM, 2, Tail::default()).await.unwrap();
    let firsts: Vec<(u64, u64)> = back.iter().map(|b| (b.first_seq, b.last_seq)).collect();
    assert_eq!(firsts, [(1, 2), (3, 3)]);
    assert_eq!(back[1].records, b"takeover".as_slice());
    // Fenced for good: every later try of the old owner fails the same way.
    assert!(matches!(old.append(5, 5, b"x").await, Err(AppendError::Fenced { .. })));
}

/// A takeover fences the subject before it reads it (`fence_taken`), so a message the last
/// owner had in flight is in what the takeover reads (it arrived first) or never in the
/// subject (it arrived after): the new owner's first append expects what it read, with no
/// fence of its own, and goes in. Read first and fenced at the first append, a message
/// arriving between the two would be in the subject and not in what was recovered.
#[tokio::test(flavor = "current_thread")]
async fn a_takeover_fences_before_it_reads_so_what_was_in_flight_is_read_or_refused() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[9]).await;
    let k = corridor_cluster::limits::APPENDS_IN_FLIGHT_MAX;
    let mut old = ShardLog::open(c.clone(), STREAM, 9).await.unwrap();
    old.append(1, 2, &journal_records(1, 2)[..]).await.unwrap();
    // In flight as the old owner dies: one arrives before the takeover fences...
    let mut first = old.send_journal(3, 3, journal_records(3, 3)).await.unwrap();
    let stored = old.settle_batch(&mut first).await.unwrap();
    let fenced_at = stream::fence_taken(c.clone(), STREAM, 9).await.unwrap();
    assert_eq!(fenced_at, stored + k, "the fence's markers follow what arrived");
    // ... one after: refused.
    let mut second = old.send_journal(4, 4, journal_records(4, 4)).await.unwrap();
    match old.settle_batch(&mut second).await {
        Err(AppendError::Fenced { expected, found }) => assert_eq!((expected, found), (stored, stored + 1)),
        other => panic!("what arrives after the takeover's fence is refused: {other:?}"),
    }
    // The takeover reads what arrived first, and the subject's last sequence past the fence.
    let took = take_read(c.clone(), STREAM, 9).await.unwrap();
    assert_eq!(took.records, Some((1, journal_records(1, 3))));
    assert_eq!(took.subject_last, fenced_at);
    // The new owner's first append expects that, and goes in right after the fence.
    let mut new = ShardLog::open_at(c.clone(), STREAM, 9, took.subject_last);
    assert_eq!(new.append(4, 4, &journal_records(4, 4)[..]).await.unwrap(), fenced_at + 1);
    let back = read(c.clone(), STREAM, 9, Tail::default()).await.unwrap();
    let spans: Vec<(u64, u64)> = back.iter().map(|b| (b.first_seq, b.last_seq)).collect();
    assert_eq!(spans, [(1, 2), (3, 3), (4, 4)]);
    // A second fence after the read (another node that took the lease meanwhile) fences
    // the new owner: it does not fence again at its next append.
    let again = stream::fence_taken(c.clone(), STREAM, 9).await.unwrap();
    match new.append(5, 5, &journal_records(5, 5)[..]).await {
        Err(AppendError::Fenced { expected, found }) => {
            assert!(
                expected == fenced_at + 1 && found > expected && again > found,
                "{expected} {found} {again}"
            );
        }
        other => panic!("the new owner is fenced in its turn: {other:?}"),
    }
}

/// Several batches in flight at once, each fenced by its sequence: in order, once each. A
/// writer's first append fences the stream ahead of it (markers readers pass over), so a
/// writer that lost the shard has every message it still has in flight refused, and a new
/// writer that read the stream before another's append is refused.
#[tokio::test(flavor = "current_thread")]
async fn batches_in_flight_together_go_in_in_order_once_each_and_are_fenced_each() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[4]).await;
    let js = async_nats::jetstream::new(c.clone());
    let k = corridor_cluster::limits::APPENDS_IN_FLIGHT_MAX;
    let mut log = ShardLog::open(c.clone(), STREAM, 4).await.unwrap();
    // 40 batches, as many in flight as a writer may have, one of them cut in three
    // messages (large); the first behind the writer's fence.
    let big = noisy_journal_records(11, 40, 45_000);
    let mut sent = std::collections::VecDeque::new();
    let mut firsts = Vec::new();
    let mut most = 0;
    for seq in (1..=10).chain([11]).chain(41..=69) {
        let b = if seq == 11 {
            log.send_journal(11, 40, big.clone()).await.unwrap()
        } else {
            log.send_journal(seq, seq, journal_records(seq, seq)).await.unwrap()
        };
        sent.push_back(b);
        most = most.max(log.in_flight());
        // Room for the next (at most three messages).
        while log.in_flight() + 3 > k && !sent.is_empty() {
            firsts.push(log.settle_batch(&mut sent.pop_front().unwrap()).await.unwrap());
        }
    }
    for mut b in sent {
        firsts.push(log.settle_batch(&mut b).await.unwrap());
    }
    assert!(most >= 2, "batches were in flight together: {most}");
    assert_eq!(log.in_flight(), 0);
    let expected: Vec<u64> = (k + 1..=k + 11).chain(k + 14..=k + 42).collect();
    assert_eq!(firsts, expected, "each batch's first message, numbered as sent after the fence");
    let back = read(c.clone(), STREAM, 4, Tail::default()).await.unwrap();
    assert_eq!(back.len(), 42, "the fence's markers passed over");
    assert_eq!(joined(&back[10..13]), big, "the large batch whole, in its place");
    for b in back.iter().filter(|b| b.first_seq == b.last_seq) {
        assert_eq!(b.records, journal_records(b.first_seq, b.first_seq), "batch {}", b.first_seq);
    }
    let last = log.last();
    assert_eq!(last, k + 42);

    // A new writer (a new owner) appends its takeover record: behind its own fence.
    let mut new = ShardLog::open(c.clone(), STREAM, 4).await.unwrap();
    assert_eq!(new.append(70, 70, &journal_records(70, 70)[..]).await.unwrap(), last + k + 1);
    // The old writer sends as many as it may have in flight: by their numbers alone, all
    // but the first would follow some message; the fence put the stream past them all.
    let mut late = Vec::new();
    for seq in 70..70 + k {
        late.push(log.send_journal(seq, seq, journal_records(seq, seq)).await.unwrap());
    }
    let stream_last = |js: async_nats::jetstream::Context| async move {
        let mut s = js.get_stream(stream::shard_stream(STREAM, 4)).await.unwrap();
        s.info().await.unwrap().state.last_sequence
    };
    match log.settle_batch(&mut late[0]).await {
        Err(AppendError::Fenced { expected, found }) => assert_eq!((expected, found), (last, last + 1)),
        other => panic!("the old writer's first in flight must be fenced: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stream_last(js.clone()).await, last + k + 1, "nothing of the old writer's went in");
    let back = read(c.clone(), STREAM, 4, Tail::default()).await.unwrap();
    assert_eq!(back.len(), 43);
    assert_eq!(back.last().unwrap().records, journal_records(70, 70));

    // A writer that read the stream before another appended is refused at its fence.
    let mut stale = ShardLog::open(c.clone(), STREAM, 4).await.unwrap();
    assert_eq!(new.append(71, 71, &journal_records(71, 71)[..]).await.unwrap(), last + k + 2);
    match stale.append(71, 71, &journal_records(71, 71)[..]).await {
        Err(AppendError::Fenced { expected, found }) => {
            assert_eq!((expected, found), (last + k + 1, last + k + 2));
        }
        other => panic!("a writer behind the stream must be fenced: {other:?}"),
    }
    assert_eq!(stream_last(js).await, last + k + 2);
}

#[tokio::test(flavor = "current_thread")]
async fn killing_the_streams_leader_under_appends_loses_nothing_acknowledged() {
    let mut cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[0]).await;
    let mut log = ShardLog::open(c.clone(), STREAM, 0).await.unwrap();
    let js = async_nats::jetstream::new(c.clone());
    let mut acknowledged = 0u64;
    let mut waits = Vec::new();
    let mut killed = None;
    // As many batches in flight as a writer may have, each settled oldest first: the kill
    // leaves some sent to the dead leader, refused for want of one, or stored with their
    // replies lost.
    let mut in_flight = std::collections::VecDeque::new();
    for seq in 1..=128u64 {
        if seq == 40 {
            let mut s = js.get_stream(stream::shard_stream(STREAM, 0)).await.unwrap();
            let leader = s.info().await.unwrap().cluster.as_ref().and_then(|c| c.leader.clone()).unwrap();
            let i: usize = leader.trim_start_matches('n').parse().unwrap();
            cluster.kill(i);
            killed = Some(i);
        }
        if seq == 80 {
            cluster.restart(killed.unwrap());
        }
        let sent = log.send_journal(seq, seq, journal_records(seq, seq)).await.unwrap();
        in_flight.push_back((seq, Instant::now(), sent));
        while log.in_flight() >= corridor_cluster::limits::APPENDS_IN_FLIGHT_MAX
            || (seq == 128 && !in_flight.is_empty())
        {
            let (at, start, mut b) = in_flight.pop_front().unwrap();
            log.settle_batch(&mut b).await.unwrap_or_else(|e| panic!("append {at}: {e}"));
            waits.push(start.elapsed());
            acknowledged = at;
        }
    }
    let k = corridor_cluster::limits::APPENDS_IN_FLIGHT_MAX;
    assert_eq!(
        (log.in_flight(), log.last()),
        (0, k + 128),
        "the fence, then each batch one message, in order"
    );
    // Read as a takeover reads, waiting out an election still settling after the restart
    // (bounded).
    let start = Instant::now();
    let back = loop {
        match read(c.clone(), STREAM, 0, Tail::default()).await {
            Ok(b) => break b,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(30), "the subject cannot be read: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(back.len() as u64, acknowledged, "every acknowledged append, once");
    assert!(back.iter().zip(1..).all(|(b, s)| b.first_seq == s && b.records == journal_records(s, s)));
    waits.sort();
    let longest = *waits.last().unwrap();
    eprintln!(
        "appends: p50 {:?}, longest {:?} (the election after the leader's kill)",
        waits[waits.len() / 2],
        longest
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_lease_is_one_nodes_while_it_renews_and_anothers_once_it_stops() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[0]).await;
    let ttl = Duration::from_secs(2);
    let open = |node: &'static str| {
        let c = c.clone();
        async move {
            let start = Instant::now();
            loop {
                match Leases::open(c.clone(), "corridor-leases", node, 3, ttl).await {
                    Ok(l) => return l,
                    Err(e) => {
                        assert!(start.elapsed() < Duration::from_secs(30), "the lease bucket: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    };
    let (a, b) = (open("node-a").await, open("node-b").await);
    let mut lease = a.acquire(0).await.unwrap();
    assert_eq!(b.acquire(0).await, Err(LeaseError::Held { holder: Some("node-a".into()) }));
    // Renewed well inside its time to live, for longer than it: still node-a's.
    for _ in 0..6 {
        tokio::time::sleep(ttl / 4).await;
        a.renew(&mut lease).await.unwrap();
        assert!(matches!(b.acquire(0).await, Err(LeaseError::Held { .. })));
    }
    // node-a stops renewing (paused, cut off): once the time to live is past, node-b takes
    // it, and node-a's next renewal says it lost it.
    let stopped = Instant::now();
    let taken = loop {
        match b.acquire(0).await {
            Ok(l) => break l,
            Err(LeaseError::Held { .. }) => {
                assert!(stopped.elapsed() < ttl * 4, "the lease never expired");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let expired_after = stopped.elapsed();
    assert!(
        expired_after >= ttl - Duration::from_millis(300),
        "taken after {expired_after:?}, before its time to live"
    );
    assert_eq!(a.renew(&mut lease).await, Err(LeaseError::Lost));
    assert_eq!(b.holder(0).await.unwrap().as_deref(), Some("node-b"));
    // Given up, it is free at once.
    b.release(taken).await.unwrap();
    a.acquire(0).await.unwrap();
    eprintln!("lease: taken by another node {expired_after:?} after its holder stopped renewing (time to live {ttl:?})");
}

/// One process's lease keeper: leases renewed from the moment each is taken (nothing else
/// renews them here, for longer than they live), given up at once on request, and a lease
/// taken from it behind its back reported lost within a renewal; the cluster's shard count
/// recorded by the first node and refused to a node with another.
#[test]
#[allow(clippy::disallowed_methods)] // the keeper's calls block: plain threads here, no runtime
fn a_keeper_renews_leases_from_the_take_gives_them_up_and_says_when_one_is_lost() {
    use corridor_cluster::{limits::LEASE_TTL, LeaseKeeper, TakeError};
    let cluster = NatsCluster::start(3);
    let keeper = |node: &str| {
        let note = format!("admin=127.0.0.1:{}", if node == "node-a" { 9101 } else { 9102 });
        LeaseKeeper::start(
            cluster.urls(),
            "keeper-leases".into(),
            node.into(),
            3,
            Duration::from_secs(30),
            note,
        )
        .expect("the keeper starts")
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // What a node says of itself in the bucket (its presence), as the status reads it.
    let said = |node: &str| -> String {
        rt.block_on(async {
            let c = client(&cluster).await;
            let kv = async_nats::jetstream::new(c).get_key_value("keeper-leases").await.unwrap();
            kv.get(format!("node.{node}")).await.unwrap().map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .unwrap_or_default()
    };
    let a = keeper("node-a");
    a.take(0, false, Duration::from_secs(20)).unwrap();
    a.take(1, false, Duration::from_secs(20)).unwrap();
    let b = keeper("node-b");
    // The cluster's shard count: the first node records it, the next must match it.
    a.agree_shards("keeper", 3, 2).unwrap();
    b.agree_shards("keeper", 3, 2).unwrap();
    let e = b.agree_shards("keeper", 3, 3).unwrap_err();
    assert!(e.contains("runs 2 shard(s) and this node 3"), "{e}");
    // Longer than a lease lives, with nothing but the keeper renewing: still node-a's.
    std::thread::sleep(LEASE_TTL + Duration::from_millis(1_500));
    match b.take(0, false, Duration::ZERO) {
        Err(TakeError::Held(Some(holder))) => assert_eq!(holder, "node-a"),
        other => panic!("shard 0 should still be node-a's: {other:?}"),
    }
    assert!(a.held(0).unwrap().renewed.elapsed() < LEASE_TTL);
    assert_eq!(said("node-a"), "held=0,1 waiting= admin=127.0.0.1:9101");
    assert_eq!(said("node-b"), "held= waiting= admin=127.0.0.1:9102");
    // node-b waits for shard 0 as a standby does, and says so; given up by node-a, it is
    // node-b's at once.
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| b.take(0, true, Duration::from_secs(20)));
        let start = Instant::now();
        while said("node-b") != "held= waiting=0 admin=127.0.0.1:9102" {
            assert!(start.elapsed() < Duration::from_secs(5), "node-b says it waits: {:?}", said("node-b"));
            std::thread::sleep(Duration::from_millis(50));
        }
        rt.block_on(a.release(0));
        assert!(a.held(0).is_none());
        waiting.join().unwrap().expect("free at once once given up");
    });
    let start = Instant::now();
    while said("node-b") != "held=0 waiting= admin=127.0.0.1:9102" {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "node-b says it holds shard 0: {:?}",
            said("node-b")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Taken from node-a behind its back (its key deleted, as an expiry would, and node-b
    // takes it): node-a says so within a renewal, and no longer holds it.
    rt.block_on(async {
        let c = client(&cluster).await;
        let kv = async_nats::jetstream::new(c).get_key_value("keeper-leases").await.unwrap();
        kv.delete("shard.1").await.unwrap();
    });
    b.take(1, false, Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    while a.lost(1).is_none() {
        assert!(start.elapsed() < LEASE_TTL, "node-a never noticed it lost shard 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(a.lost(1).unwrap().contains("taken by node-b"), "{:?}", a.lost(1));
    assert!(a.held(1).is_none());
    assert!(a.lost(0).is_none(), "a lease given up is not lost");
}

/// The cluster's configuration bucket: the first publication is made once (a second node
/// publishing "the first" at the same moment is told another did); a publication over a
/// revision another node has published since is refused, so no node overwrites another's
/// unseen; every node's watch sees each revision in order, and the bucket's poll answers
/// too; a configuration larger than the bucket carries is refused before it is sent.
#[tokio::test(flavor = "current_thread")]
async fn the_configuration_is_published_over_the_revision_served_and_watched_by_every_node() {
    use corridor_cluster::{config::ConfigError, limits::CONFIG_BYTES_MAX, ConfigStore};
    use futures_util::StreamExt;
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[0]).await;
    let bucket = corridor_cluster::config_bucket(STREAM);
    let a = ConfigStore::open(c.clone(), &bucket, "a", 3).await.unwrap();
    let b = ConfigStore::open(c.clone(), &bucket, "b", 3).await.unwrap();
    assert_eq!(a.current().await.unwrap(), None);
    let first = a.publish(b"one", None).await.unwrap();
    assert_eq!(b.publish(b"one'", None).await, Err(ConfigError::Conflict { expected: None }));
    let seen = b.current().await.unwrap().unwrap();
    assert_eq!((seen.revision, seen.by.as_str(), &seen.body[..]), (first, "a", &b"one"[..]));

    // b publishes over what it serves; a, still serving the first, is refused.
    let second = b.publish(b"two", Some(first)).await.unwrap();
    assert!(second > first);
    assert_eq!(a.publish(b"two'", Some(first)).await, Err(ConfigError::Conflict { expected: Some(first) }));
    let third = a.publish(b"three", Some(second)).await.unwrap();

    // A watch from the first sees the second and the third, in order (the poll may repeat
    // the current one).
    let watched = a.watch(first, Duration::from_millis(200)).await.unwrap();
    let mut watched = std::pin::pin!(watched);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.last().map(|p: &corridor_cluster::Published| p.revision) != Some(third) {
        assert!(Instant::now() < deadline, "watched {got:?}");
        let p = tokio::time::timeout(Duration::from_secs(5), watched.next()).await.unwrap().unwrap();
        got.push(p);
    }
    assert_eq!(got[0].revision, second, "{got:?}");
    assert_eq!((&got[0].body[..], got[0].by.as_str()), (&b"two"[..], "b"));
    assert_eq!(&got.last().unwrap().body[..], b"three");
    // A later publication reaches the watch that is already running (and how soon: the
    // time two nodes serve different configurations, beside a reload's own).
    let published = Instant::now();
    let fourth = b.publish(b"four", Some(third)).await.unwrap();
    let p = tokio::time::timeout(Duration::from_secs(5), watched.next()).await.unwrap().unwrap();
    assert_eq!((p.revision, &p.body[..]), (fourth, &b"four"[..]));
    eprintln!("publish to watch: {:?} (the publication's own acknowledgement included)", published.elapsed());

    let big = vec![b'x'; CONFIG_BYTES_MAX + 1];
    assert_eq!(
        a.publish(&big, Some(fourth)).await,
        Err(ConfigError::TooLarge { bytes: CONFIG_BYTES_MAX + 1 })
    );
    // The largest that is carried is.
    let largest = vec![b'x'; CONFIG_BYTES_MAX];
    let fifth = a.publish(&largest, Some(fourth)).await.unwrap();
    assert_eq!(b.current().await.unwrap().unwrap().revision, fifth);
}

/// A release mark goes to the bucket of marks, and a takeover reads it from the bucket's
/// leader. A mark the bucket does not acknowledge (here: no bucket yet) makes the next batch
/// released marked, whatever it holds — and is published again by itself until the bucket
/// takes it, with no batch after it: an idle shard's last mark does not stay lost (a
/// takeover would reverse the approvals it covers, which left).
#[tokio::test(flavor = "current_thread")]
async fn a_release_mark_the_bucket_did_not_acknowledge_is_made_again_by_itself() {
    let cluster = NatsCluster::start(3);
    let c = client(&cluster).await;
    ready(&cluster, &c, &[7]).await;
    let mut log = ShardLog::open(c.clone(), STREAM, 7).await.unwrap();
    log.append(1, 3, &journal_records(1, 3)).await.unwrap();
    assert!(log.must_mark(false), "the first batch released on a connection is marked");
    log.mark_released(3).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log.must_mark(false) {
        assert!(Instant::now() < deadline, "a mark no bucket took is not taken as made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The cluster's bucket, where marks live, made (every node makes it at start); the
    // shard idle: no batch, no mark_released.
    cluster_bucket(&c).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let taken = take_read(c.clone(), STREAM, 7).await.unwrap();
        if taken.released == Some(3) && !log.must_mark(false) {
            break;
        }
        assert!(Instant::now() < deadline, "the lost mark made again by itself: {:?}", taken.released);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = log.marks_again().load(std::sync::atomic::Ordering::Relaxed);
    assert!(again >= 1, "counted for operations: {again}");
    log.append(4, 5, &journal_records(4, 5)).await.unwrap();
    log.mark_released(5).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!log.must_mark(false), "acknowledged: a batch relaying no approval needs no mark");
    assert!(log.must_mark(true), "a batch relaying an approval is marked");
    let taken = take_read(c.clone(), STREAM, 7).await.unwrap();
    assert_eq!(taken.released, Some(5), "the takeover reads the last mark");
}

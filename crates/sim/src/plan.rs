//! A seed's plan: its topology and its faults, drawn from the seed, and a plan with some
//! faults left out (to find which one a failure needs).

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

impl Sim {
    /// The world of `seed` with the faults numbered in `left_out` taken out of its plan (the
    /// plan lists the seed's crashes, drops, stalls, garbage, disk faults, clock jumps and
    /// reloads in the order drawn): how a failing seed is shrunk.
    #[must_use]
    pub fn without(seed: u64, left_out: &[usize]) -> Self {
        let mut rng = Rng::new(seed);
        let topology = Topology {
            acq: WIRES[rng.below(WIRES.len() as u64) as usize],
            iss: WIRES[rng.below(WIRES.len() as u64) as usize],
            echo: if rng.chance(30) { rng.micros(300_000, 2_000_000) } else { Duration::from_secs(30) },
            sign_on: rng.chance(40),
        };
        let forgets = rng.chance(30);
        let fragments = rng.chance(30);
        // The shards, from a stream of their own (the plans seeds had before shards are
        // unchanged): one, or two with each participant on either.
        let mut sh = Rng::new(seed ^ 0x7368_6172_6473);
        let shards = if sh.chance(50) { 2 } else { 1 };
        let owners = [sh.below(2) as usize, sh.below(2) as usize, sh.below(2) as usize];
        let mut s = Self {
            seed,
            rng,
            t0: Instant::now(),
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            engine: None,
            life: 0,
            shard_runs: vec![0; shards],
            shards,
            owners,
            net: network::Network { fragments, ..network::Network::default() },
            timer_at: None,
            disks: (0..shards).map(|_| Disk::default()).collect(),
            terminal: Terminal { forgets, side: Some(Side::Acq), ..Terminal::default() },
            parked: Terminal { forgets, side: Some(Side::Net), next: NET_FIRST, ..Terminal::default() },
            issuer: Issuer::default(),
            history: BTreeMap::new(),
            world: Vec::new(),
            out: Outcome::default(),
            load_over: false,
            faults: true,
            stuck: None,
            broken: None,
            topology,
            wall_offset_ms: 0,
            without: left_out.to_vec(),
            plan_len: 0,
            durable_at_crash: None,
            cluster: None,
            paused_until: None,
            crash_at_answer: false,
            held_at_crash: BTreeSet::new(),
            synced_at: Vec::new(),
            unsynced: Vec::new(),
        };
        // A cluster's node, on a third of the seeds, from a stream of its own (the plans seeds
        // had before clusters are unchanged; its faults come after every other).
        let mut cl = Rng::new(seed ^ 0x0063_6c75_7374_6572);
        let clustered = cl.chance(33);
        let downs: Vec<(Duration, u64)> = (0..cl.below(3))
            .map(|_| (cl.micros(100_000, LOAD.as_micros() as u64), cl.below(2_700_000) + 300_000))
            .collect();
        // A pause of the node now and then: shorter than its lease, past it, or about as long
        // (where the node's own clock, skewed, must still judge its lease stale in time).
        let pause = cl.chance(40).then(|| {
            let when = cl.micros(100_000, LOAD.as_micros() as u64);
            let ev = match cl.below(4) {
                0 => Ev::Pause(cl.micros(200_000, 2_500_000).as_micros() as u64),
                1 => Ev::Pause(cl.micros(3_200_000, 6_000_000).as_micros() as u64),
                _ => Ev::PauseNearLease(cl.below(200_001) as i64 - 100_000),
            };
            (when, ev)
        });
        if clustered {
            s.cluster = Some(cluster::Cluster::new(shards, cl));
            s.world("a cluster's node: each shard's journal replicated in a stream; a standby takes over 3 s after a crash");
        }
        s.world(format!(
            "acquirer {}, issuer {} (two links), echo every {:?}, {}",
            topology.acq,
            topology.iss,
            topology.echo,
            if fragments { "bytes in 1-7-byte pieces" } else { "bytes whole" }
        ));
        if shards > 1 {
            s.world(format!("two shards: acq on {}, iss on {}, net on {}", owners[0], owners[1], owners[2]));
        }
        s.start_switch();
        for side in [Side::Acq, Side::Net] {
            s.at(Duration::from_millis(1), Ev::Send(side));
            s.at(Duration::from_millis(50), Ev::TerminalTick(side));
        }
        let load = LOAD.as_micros() as u64;
        let mut plan = Vec::new();
        for _ in 0..s.rng.below(4) {
            plan.push((s.rng.micros(100_000, load), Ev::Crash));
        }
        for side in SIDES {
            for _ in 0..s.rng.below(3) {
                plan.push((s.rng.micros(100_000, load), Ev::Drop(side)));
            }
            if s.rng.chance(25) {
                let d = s.rng.below(2_500_000);
                plan.push((s.rng.micros(100_000, load), Ev::Stall(side, d)));
            }
            // (Garbage on a classic acquirer link shifts its length framing: the switch
            // answers what it then parses, which a terminal correlating by STAN cannot
            // tell from its own answers. On a native link the frame header catches it.)
            if !side.issuer() && topology.sign_on && s.rng.chance(30) {
                plan.push((s.rng.micros(100_000, load), Ev::SignOff(side)));
            }
            let garbage_ok = side.issuer() || topology.acq == Wire::NATIVE;
            if s.rng.chance(if side.issuer() { 20 } else { 10 }) && garbage_ok {
                plan.push((s.rng.micros(100_000, load), Ev::Garbage(side)));
            }
        }
        if s.rng.chance(20) {
            let d = s.rng.below(DISK_FULL_MAX.as_micros() as u64);
            plan.push((s.rng.micros(100_000, load), Ev::DiskFull(d)));
        }
        if s.rng.chance(10) {
            plan.push((s.rng.micros(100_000, load), Ev::Eio));
        }
        if s.rng.chance(20) {
            let jump = s.rng.below(7_200_000) as i64 - 3_600_000;
            plan.push((s.rng.micros(100_000, load), Ev::ClockJump(jump)));
        }
        if s.rng.chance(20) {
            let t = 1_500 + s.rng.below(1_000);
            plan.push((s.rng.micros(100_000, load), Ev::Reload(t)));
        }
        // Reloads of the whole configuration, drawn from a stream of their own after every
        // other fault, so the plans seeds had before reloads existed are unchanged. Limits
        // only rise (the bound checker holds each link to the limit in force).
        let mut r = Rng::new(seed ^ 0x7265_6c6f_6164);
        if r.chance(25) {
            let mut times: Vec<Duration> = (0..1 + r.below(3)).map(|_| r.micros(100_000, load)).collect();
            times.sort();
            let mut limit = ACQ_INFLIGHT_MAX;
            for when in times {
                limit += 16 * (1 + r.below(2)) as u32;
                let retire = match r.below(3) {
                    0 => None,
                    1 => Some(Side::Iss2),
                    _ => Some(Side::Net),
                };
                plan.push((when, Ev::Reconfigure(limit, retire)));
            }
        }
        // On two shards, now and then a crash aimed at the new order of a hop's hand-off, from
        // a stream of its own (the plans seeds had before it are unchanged but for it).
        let mut at = Rng::new(seed ^ 0x616e_7377_6572);
        if shards > 1 && at.chance(33) {
            plan.push((at.micros(100_000, load), Ev::CrashAtAnswer));
            // One shard's disk slow: its records trail the other's by milliseconds.
            let k = at.below(2) as usize;
            s.disks[k].slow = true;
            s.world(format!("disk {k} is slow (syncs of 2–16 ms); a crash as the terminal gets an answer"));
        }
        // On two shards, now and then the hop between them breaks for up to 3 s, as a hop
        // between nodes would — from a stream of its own (the plans seeds had before it are
        // unchanged but for it).
        let mut hc = Rng::new(seed ^ 0x686f_7063_7574);
        if shards > 1 && hc.chance(40) {
            for _ in 0..1 + hc.below(2) {
                plan.push((hc.micros(100_000, load), Ev::HopCut(hc.below(3_000_000))));
            }
        }
        // On two shards without a cluster, now and then the node running one of them dies
        // and starts again on its disk while the other runs on (shards split between
        // nodes) — from a stream of its own.
        let mut sc = Rng::new(seed ^ 0x7368_6172_6464);
        if shards > 1 && s.cluster.is_none() && sc.chance(30) {
            for _ in 0..1 + sc.below(2) {
                plan.push((sc.micros(100_000, load), Ev::ShardCrash(sc.below(2) as usize)));
            }
        }
        // A terminal that forgets is protected by the switch's own reversals of approvals
        // it could not deliver; a crash before such a reversal is durable loses it (no
        // record says whether an answer left), so on a seed with crashes the terminal
        // reverses what it got no answer to, as ISO 8583 has it.
        let crashes =
            plan.iter().any(|(_, ev)| matches!(ev, Ev::Crash | Ev::CrashAtAnswer | Ev::ShardCrash(_)));
        if plan.iter().any(|(_, ev)| matches!(ev, Ev::Eio)) || (crashes && s.cluster.is_none()) {
            s.terminal.forgets = false;
            s.parked.forgets = false;
        }
        s.world(format!(
            "terminal {}",
            if s.terminal.forgets {
                "forgets what it got no answer to"
            } else {
                "reverses what it got no answer to"
            }
        ));
        if s.cluster.is_some() {
            plan.extend(downs.into_iter().map(|(when, micros)| (when, Ev::StreamDown(micros))));
            plan.extend(pause);
        }
        s.plan_len = plan.len();
        for (i, (when, ev)) in plan.into_iter().enumerate() {
            if !left_out.contains(&i) {
                s.at(when, ev);
            }
        }
        s
    }

    /// How many faults the plan of `seed` has (for shrinking).
    #[must_use]
    pub fn plan_len(seed: u64) -> usize {
        Self::new(seed).plan_len
    }
}

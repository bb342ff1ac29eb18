//! The simulated network: connections with latency, fragments, stalls and drops, what
//! the switch writes on its way to a peer, and a peer's bytes on their way to the switch.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// The simulated network's state: each side's connection and its generation, what is on
/// its way in each direction, the peers' read buffers, stalls, and the hop's order.
#[derive(Default)]
pub(crate) struct Network {
    /// Each side's connection: its link in the switch, and its generation.
    pub(crate) links: BTreeMap<Side, (LinkId, u64)>,
    pub(crate) generation: u64,
    /// When each connection (by generation) ended, or stopped carrying messages (garbage
    /// was sent on it).
    pub(crate) ended: BTreeMap<u64, Duration>,
    /// The connections (by generation) the switch's crashes ended.
    pub(crate) crashed: BTreeSet<u64>,
    /// Bytes read from a link that its engine has not taken yet.
    pub(crate) inbuf: BTreeMap<LinkId, BytesMut>,
    /// Bytes a peer has read and not yet framed.
    pub(crate) peer_buf: BTreeMap<Side, BytesMut>,
    /// When the last bytes on each connection arrive (in order).
    pub(crate) last_delivery: BTreeMap<Side, Duration>,
    /// Bytes the switch took out for a side and has not written yet.
    pub(crate) unwritten: BTreeMap<Side, Vec<u8>>,
    /// A side that does not read until this time.
    pub(crate) stalled: BTreeMap<Side, Duration>,
    /// Whether this seed's links deliver in small pieces.
    pub(crate) fragments: bool,
    /// What the switch wrote to each side, on its way: it arrives even when the connection
    /// closes behind it (the reader reads up to the end of the stream; a process that
    /// dies leaves what it wrote in the kernel to send).
    pub(crate) in_flight: BTreeMap<Side, VecDeque<Vec<u8>>>,
    /// When the last bytes on each shard's hop toward the other arrive (in order).
    pub(crate) hop_last: [Duration; 2],
}

impl Sim {
    /// An event of the simulated network: bytes arriving, a peer reading, a connection
    /// dropped or made, a stall, garbage.
    pub(crate) fn network_event(&mut self, ev: Ev) {
        match ev {
            Ev::ToSwitch(side, generation, bytes) => {
                let Some(&(link, g)) = self.net.links.get(&side) else { return };
                if g != generation || self.engine.is_none() {
                    return;
                }
                self.net.inbuf.entry(link).or_default().extend_from_slice(&bytes);
                self.feed(link);
            }
            Ev::ToPeer(side, generation) => {
                if self.net.links.get(&side).is_some_and(|l| l.1 == generation) {
                    if let Some(bytes) = self.net.in_flight.get_mut(&side).and_then(VecDeque::pop_front) {
                        self.peer_receives(side, &bytes);
                    }
                }
            }
            Ev::Drop(side) => {
                if self.faults && self.engine.is_some() {
                    self.disconnect(side);
                }
            }
            Ev::Connect(side) => self.connect(side),
            Ev::Stall(side, micros) => {
                if self.faults && self.net.links.contains_key(&side) {
                    let until = self.now + Duration::from_micros(micros);
                    self.world(format!("{side:?} stops reading for {:?}", Duration::from_micros(micros)));
                    self.net.stalled.insert(side, until);
                }
            }
            Ev::Writable(side, generation) => {
                if self.net.links.get(&side).is_some_and(|l| l.1 == generation) {
                    self.write(side);
                }
            }
            Ev::Garbage(side) => {
                if self.faults {
                    if let Some(&(_, generation)) = self.net.links.get(&side) {
                        self.world(format!("{side:?} sends garbage"));
                        let bytes: Vec<u8> =
                            (0..1 + self.rng.below(40)).map(|_| self.rng.below(256) as u8).collect();
                        let at = self.now.max(self.net.last_delivery.get(&side).copied().unwrap_or_default());
                        self.at(at, Ev::ToSwitch(side, generation, bytes));
                        // Nothing after the garbage is read as a message on this connection.
                        self.net.ended.entry(generation).or_insert(at);
                    }
                }
            }
            _ => unreachable!("`step` hands this handler its own events only"),
        }
    }

    pub(crate) fn connect(&mut self, side: Side) {
        let now = self.instant();
        let Some(engine) = self.engine.as_mut() else { return };
        if self.net.links.contains_key(&side) {
            return;
        }
        if let Some(id) = engine.link_up(side.spec(), now) {
            self.net.generation += 1;
            self.net.links.insert(side, (id, self.net.generation));
            self.net.peer_buf.insert(side, BytesMut::new());
            if !side.issuer() {
                self.activate(side);
                self.terminal.signed_on = !self.topology.sign_on;
                if self.topology.sign_on {
                    let d = self.rng.micros(100, 20_000);
                    self.at(self.now + d, Ev::SignOn(side));
                }
            }
        }
    }

    /// A side's connection is gone (the peer dropped it, the switch closed it, or the
    /// switch died): what each end had in flight on it is lost.
    pub(crate) fn disconnect(&mut self, side: Side) {
        if !self.net.links.contains_key(&side) {
            return;
        }
        // What was written arrives before the end of the stream.
        while let Some(bytes) = self.net.in_flight.get_mut(&side).and_then(VecDeque::pop_front) {
            self.peer_receives(side, &bytes);
        }
        let Some((id, generation)) = self.net.links.remove(&side) else { return };
        self.net.ended.entry(generation).or_insert(self.now);
        self.world(format!("{side:?} connection gone"));
        let now = self.instant();
        if let Some(e) = self.engine.as_mut() {
            e.link_down(id, now);
        }
        self.net.inbuf.remove(&id);
        // What the switch had not written is gone with the connection.
        self.net.unwritten.remove(&side);
        self.net.stalled.remove(&side);
        if !side.issuer() {
            self.activate(side);
            // Every purchase without an answer is reversed (or forgotten); reversals in
            // flight go again.
            let lost: Vec<u32> =
                std::mem::take(&mut self.terminal.purchases).into_iter().map(|(_, (n, _))| n).collect();
            for n in lost {
                self.give_up(n, "connection lost with no answer");
            }
            let lost: Vec<u32> =
                std::mem::take(&mut self.terminal.repeats).into_values().map(|(n, _)| n).collect();
            for n in lost {
                self.repeat_lost(n);
            }
            self.terminal.reversals_out.clear();
        }
        let delay = self.rng.micros(5_000, 300_000);
        self.at(self.now + delay, Ev::Connect(side));
    }

    pub(crate) fn side_of(&self, link: LinkId) -> Option<Side> {
        self.net.links.iter().find(|(_, (id, _))| *id == link).map(|(s, _)| *s)
    }

    /// The switch writes what it has for `side`: nothing while the peer does not read, and
    /// on a seed with slow readers sometimes only part of it (the rest when the socket is
    /// writable again). What is written is reported to the engine and reaches the peer.
    pub(crate) fn write(&mut self, side: Side) {
        let Some(&(link, generation)) = self.net.links.get(&side) else { return };
        let len = self.net.unwritten.get(&side).map_or(0, Vec::len);
        if len == 0 {
            return;
        }
        if let Some(&until) = self.net.stalled.get(&side) {
            if until > self.now {
                self.at(until, Ev::Writable(side, generation));
                return;
            }
            self.net.stalled.remove(&side);
        }
        let k = if self.net.fragments && self.rng.chance(30) {
            1 + self.rng.below(len as u64) as usize
        } else {
            len
        };
        let bytes: Vec<u8> =
            self.net.unwritten.get_mut(&side).map(|u| u.drain(..k).collect()).unwrap_or_default();
        if let Some(e) = self.engine.as_mut() {
            e.handle_written(link, k);
        }
        let lat = self.rng.micros(20, 2_000);
        let at = (self.now + lat).max(self.net.last_delivery.get(&side).copied().unwrap_or_default());
        self.net.last_delivery.insert(side, at);
        self.net.in_flight.entry(side).or_default().push_back(bytes);
        self.at(at, Ev::ToPeer(side, generation));
        if k < len {
            let d = self.rng.micros(100, 5_000);
            self.at(self.now + d, Ev::Writable(side, generation));
        }
    }

    pub(crate) fn feed(&mut self, link: LinkId) {
        let now = self.instant();
        let Some(engine) = self.engine.as_mut() else { return };
        let mut buf = self.net.inbuf.remove(&link).unwrap_or_default();
        engine.handle_read(link, &mut buf, now);
        if !buf.is_empty() {
            self.net.inbuf.insert(link, buf);
        }
    }

    /// A peer sends `bytes` on its connection: they reach the switch after the link's
    /// latency, in order.
    pub(crate) fn send_to_switch(&mut self, side: Side, bytes: Vec<u8>) {
        let Some(&(_, generation)) = self.net.links.get(&side) else { return };
        let lat = self.rng.micros(20, 2_000);
        let at = (self.now + lat).max(self.net.last_delivery.get(&side).copied().unwrap_or_default());
        self.send_at(side, generation, at, bytes);
    }

    /// `bytes` reach the switch at `at`: whole, or on a seed whose links fragment, in
    /// pieces of 1–7 bytes read one by one.
    pub(crate) fn send_at(&mut self, side: Side, generation: u64, at: Duration, bytes: Vec<u8>) {
        if self.net.fragments && self.rng.chance(50) {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let k = (1 + self.rng.below(7) as usize).min(rest.len());
                self.at(at, Ev::ToSwitch(side, generation, rest[..k].to_vec()));
                rest = &rest[k..];
            }
        } else {
            self.at(at, Ev::ToSwitch(side, generation, bytes));
        }
    }

    // ----- the peers -----

    pub(crate) fn wire(&self, side: Side) -> Wire {
        if side.issuer() {
            self.topology.iss
        } else {
            self.topology.acq
        }
    }

    pub(crate) fn peer_receives(&mut self, side: Side, bytes: &[u8]) {
        let mut buf = self.net.peer_buf.remove(&side).unwrap_or_default();
        buf.extend_from_slice(bytes);
        let msgs = frames_on(self.wire(side), &mut buf);
        self.net.peer_buf.insert(side, buf);
        for (corr, m) in msgs {
            if side.issuer() {
                self.issuer_gets(side, corr, &m);
            } else {
                self.activate(side);
                self.terminal_gets(corr, &m);
            }
        }
    }
}

//! An engine in memory with a manual clock, and peers that speak to it in bytes.

#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)] // shared by several test files

use std::time::{Duration, Instant};

use bytes::BytesMut;
use corridor_engine::{
    driver, AtLimit, Config, Engine, Framing, LinkId, LinkSpec, Participant, ReadState, Roles, Route,
    RouteKey, RouteTable, Settings, WallClock,
};
use corridor_wire::{
    de, Dialect, FieldId, InstitutionId, LengthDelimited, LengthHeader, Message, Mti, NativeFramer,
    OwnedMessage, FRAME_BYTES_MAX,
};

pub const ACQ: usize = 0;
pub const ACQ2: usize = 1;
pub const ISSUER_A: usize = 2;
pub const ISSUER_B: usize = 3;

/// Link specs, by index.
pub const L_ACQ: usize = 0; // acquirer, iso87-ascii, bin2, sign-on required
pub const L_ACQ2: usize = 1; // second acquirer, native, no sign-on
pub const L_ISS_A1: usize = 2; // issuer A, native, dialed by the switch
pub const L_ISS_A2: usize = 3; // issuer A's second link
pub const L_ISS_B: usize = 4; // issuer B, iso87-ascii, ascii4

pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const ECHO: Duration = Duration::from_secs(30);
pub const RETRY: Duration = Duration::from_secs(10);
pub const SIGN_ON_TIMEOUT: Duration = Duration::from_secs(10);
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

pub fn id(s: &str) -> InstitutionId {
    InstitutionId::from_ascii(s.as_bytes()).unwrap()
}

fn participant(name: &str, acquirer: &[&str]) -> Participant {
    Participant {
        id: name.into(),
        name: name.into(),
        roles: Roles { acquirer: !acquirer.is_empty(), issuer: acquirer.is_empty(), network: false },
        acquirer_ids: acquirer.iter().map(|s| id(s)).collect(),
        forwarder_ids: Vec::new(),
        directory: Default::default(),
        hop: None,
        via: None,
        shard: None,
    }
}

fn link(
    name: &str,
    participant: usize,
    dial: bool,
    framing: Framing,
    dialect: Dialect,
    sign_on: bool,
) -> LinkSpec {
    LinkSpec {
        name: name.into(),
        participant,
        dial,
        framing,
        dialect,
        frame_bytes_max: FRAME_BYTES_MAX,
        inflight_max: 4,
        sign_on_required: sign_on,
        echo_interval: ECHO,
        echo_missed_max: 2,
        at_limit: AtLimit::Backpressure,
        sign_on_timeout: SIGN_ON_TIMEOUT,
        frame_timeout: FRAME_TIMEOUT,
        timeouts_down_max: 3,
    }
}

pub fn config() -> Config {
    let routes = RouteTable::new(vec![
        Route {
            key: RouteKey::PanPrefix(b"476173".to_vec()),
            mti_classes: None,
            destination: ISSUER_A,
            timeout: TIMEOUT,
        },
        Route {
            key: RouteKey::Receiver(id("44556677")),
            mti_classes: None,
            destination: ISSUER_B,
            timeout: TIMEOUT,
        },
        Route {
            key: RouteKey::PanPrefix(b"5".to_vec()),
            mti_classes: None,
            destination: ISSUER_B,
            timeout: TIMEOUT,
        },
    ])
    .unwrap();
    Config {
        participants: vec![
            participant("acq", &["12345678"]),
            participant("acq2", &["87654321"]),
            participant("issuer-a", &[]),
            participant("issuer-b", &[]),
        ],
        links: vec![
            link("acq-1", ACQ, false, Framing::Length(LengthHeader::Bin2), Dialect::Iso87Ascii, true),
            link("acq2-1", ACQ2, false, Framing::Native, Dialect::Native, false),
            link("iss-a-1", ISSUER_A, true, Framing::Native, Dialect::Native, true),
            link("iss-a-2", ISSUER_A, true, Framing::Native, Dialect::Native, true),
            link(
                "iss-b-1",
                ISSUER_B,
                false,
                Framing::Length(LengthHeader::Ascii4),
                Dialect::Iso87Ascii,
                false,
            ),
        ],
        routes,
        settings: Settings {
            institution_id: None,
            reversal_retry: RETRY,
            reversal_repeats_max: 2,
            saf_age_max: Duration::from_secs(86_400),
            late_window: Duration::from_secs(120),
            duplicate_window: Duration::from_secs(86_400),
            metrics: true,
            // Room for every test's transactions, reserved at each engine's start.
            duplicate_window_entries: 1 << 16,
        },
        interop: Default::default(),
    }
}

pub struct Harness {
    pub engine: Engine,
    pub now: Instant,
    /// Everything each link was sent, not yet read by the test.
    inbox: std::collections::HashMap<LinkId, BytesMut>,
    /// Bytes each link's peer sent that the engine has not taken yet (its reader paused).
    unread: std::collections::HashMap<LinkId, BytesMut>,
    /// Links whose reader the engine paused, and not yet resumed.
    pub paused: std::collections::HashSet<LinkId>,
    /// Links whose peer reads nothing: their output stays in the engine.
    pub stalled: std::collections::HashSet<LinkId>,
    pub closed: Vec<(LinkId, corridor_engine::CloseReason)>,
}

/// A message received by a peer: its native correlation (0 on classic links) and body.
#[derive(Debug, Clone)]
pub struct Got {
    pub correlation: u64,
    pub flags: u8,
    pub msg: OwnedMessage,
}

impl Got {
    pub fn field(&self, n: u8) -> Option<String> {
        self.msg.get(FieldId::new(n).unwrap()).map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with(config())
    }

    pub fn with(config: Config) -> Self {
        let now = Instant::now();
        let engine = Engine::new(config, WallClock { at: now, unix_secs: 1_795_644_930 });
        Self::with_engine(engine, now)
    }

    /// A harness around `engine`, whose clock starts at `now`.
    pub fn with_engine(engine: Engine, now: Instant) -> Self {
        Self {
            engine,
            now,
            inbox: Default::default(),
            unread: Default::default(),
            paused: Default::default(),
            stalled: Default::default(),
            closed: Vec::new(),
        }
    }

    /// Syncs whatever journal batch is due (as the I/O layer would after its fdatasync),
    /// appending its bytes to `log`: the number of records it held.
    pub fn sync(&mut self, log: &mut Vec<u8>) -> usize {
        self.now += Duration::from_micros(200);
        // A batch nobody waits for is due later (GROUP_WAIT_UNAWAITED): the journal's loop
        // sleeps until then, and so does this.
        if let Some(due) = self.engine.journal_timeout().filter(|&t| t > self.now) {
            self.now = due;
            self.engine.handle_timeout(self.now);
            self.pump();
        }
        let Some(b) = self.engine.poll_journal(self.now, 0) else { return 0 };
        if let Some(header) = b.new_segment {
            log.extend_from_slice(&header.to_bytes());
        }
        log.extend_from_slice(&b.bytes);
        self.engine.handle_journal_synced(b.last_seq);
        self.pump();
        usize::try_from(b.last_seq - b.first_seq + 1).expect("a batch's record count")
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.engine.handle_timeout(self.now);
        self.pump();
    }

    /// Moves the engine's output into the peers' inboxes (all of it written at once, but
    /// for stalled peers), closes what the engine closes, resumes what it resumes: the
    /// driver's flush, until nothing more is raised.
    pub fn pump(&mut self) {
        loop {
            let mut io = Raised {
                stalled: &self.stalled,
                inbox: &mut self.inbox,
                close: Vec::new(),
                resume: Vec::new(),
            };
            driver::flush(&mut self.engine, &mut io);
            let Raised { close, resume, .. } = io;
            if close.is_empty() && resume.is_empty() {
                return;
            }
            for (link, reason) in close {
                self.closed.push((link, reason));
                self.engine.link_down(link, self.now);
            }
            for link in resume {
                self.paused.remove(&link);
                self.feed(link);
            }
        }
    }

    /// Hands `link`'s unread bytes to the engine, as a reader would.
    fn feed(&mut self, link: LinkId) {
        if self.paused.contains(&link) {
            return;
        }
        let mut buf = self.unread.remove(&link).unwrap_or_default();
        match self.engine.handle_read(link, &mut buf, self.now) {
            ReadState::Paused => {
                self.paused.insert(link);
            }
            ReadState::Open | ReadState::Closed => {}
        }
        if !buf.is_empty() {
            self.unread.insert(link, buf);
        }
    }

    /// Bytes `link`'s peer sent that the engine has not taken.
    pub fn unread_bytes(&self, link: LinkId) -> usize {
        self.unread.get(&link).map_or(0, BytesMut::len)
    }

    pub fn up(&mut self, spec: usize) -> LinkId {
        let l = self.engine.link_up(spec, self.now).expect("room for a link");
        self.pump();
        l
    }

    /// The issuer's first link and the acquirer's link up, in that order: (issuer,
    /// acquirer).
    pub fn both_up(&mut self) -> (LinkId, LinkId) {
        let iss = self.issuer_up(L_ISS_A1);
        let acq = self.acquirer_up(L_ACQ);
        (iss, acq)
    }

    /// [`Harness::both_up`], then the acquirer's purchase of `pan` with STAN `stan` (terminal
    /// 12345678), forwarded: (issuer, acquirer, what the issuer got).
    pub fn forwarded(&mut self, pan: &str, stan: &str) -> (LinkId, LinkId, Got) {
        let (iss, acq) = self.both_up();
        self.send(acq, 0, &purchase(pan, stan, "12345678"));
        let fwd = self.recv(iss).pop().expect("the purchase is forwarded");
        (iss, acq, fwd)
    }

    /// Brings a dialed issuer link up and answers its sign-on.
    pub fn issuer_up(&mut self, spec: usize) -> LinkId {
        let l = self.up(spec);
        let got = self.recv(l);
        assert_eq!(got.len(), 1, "the switch signs on to a link it dials");
        assert_eq!(got[0].msg.mti(), Mti::NETWORK_REQUEST);
        assert_eq!(got[0].field(70).as_deref(), Some("001"));
        self.answer(l, &got[0], "00");
        l
    }

    /// An acquirer link that has signed on.
    pub fn acquirer_up(&mut self, spec: usize) -> LinkId {
        let l = self.up(spec);
        let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
        m.set(de::TRANSMISSION_TIME, "1125221500")
            .unwrap()
            .set(de::STAN, "000001")
            .unwrap()
            .set(de::NETWORK_CODE, "001")
            .unwrap();
        self.send(l, 1, &m);
        let got = self.recv(l);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].field(39).as_deref(), Some("00"));
        l
    }

    fn spec(&self, link: LinkId) -> LinkSpec {
        let s = self.engine.link_status(link).expect("link is open").spec;
        self.engine.config().links[s].clone()
    }

    /// Frames `m` as `link`'s peer would and feeds it to the engine.
    pub fn send(&mut self, link: LinkId, correlation: u64, m: &OwnedMessage) {
        let mut wire = BytesMut::new();
        self.frame(link, correlation, m, &mut wire);
        self.send_raw(link, &wire);
    }

    /// Appends `m` to `wire` framed as `link`'s peer would frame it.
    pub fn frame(&self, link: LinkId, correlation: u64, m: &OwnedMessage, wire: &mut BytesMut) {
        let spec = self.spec(link);
        let body = m.to_bytes(spec.dialect).unwrap();
        match spec.framing {
            Framing::Native => {
                NativeFramer::new(FRAME_BYTES_MAX).encode(0, correlation, &body, wire).unwrap()
            }
            Framing::Length(h) => LengthDelimited::new(h, FRAME_BYTES_MAX).encode(&body, wire).unwrap(),
        }
    }

    /// Everything `link`'s peer has received since the last call, as bytes.
    pub fn take_raw(&mut self, link: LinkId) -> BytesMut {
        self.inbox.remove(&link).unwrap_or_default()
    }

    pub fn send_raw(&mut self, link: LinkId, bytes: &[u8]) {
        self.unread.entry(link).or_default().extend_from_slice(bytes);
        self.feed(link);
        self.pump();
    }

    /// Everything `link`'s peer has received since the last call.
    pub fn recv(&mut self, link: LinkId) -> Vec<Got> {
        let Some(mut buf) = self.inbox.remove(&link) else { return Vec::new() };
        let spec = self.spec(link);
        let mut out = Vec::new();
        loop {
            let (correlation, flags, body) = match spec.framing {
                Framing::Native => match NativeFramer::new(FRAME_BYTES_MAX).decode(&mut buf).unwrap() {
                    Some(f) => (f.correlation(), f.flags(), f.into_body()),
                    None => break,
                },
                Framing::Length(h) => {
                    match LengthDelimited::new(h, FRAME_BYTES_MAX).decode(&mut buf).unwrap() {
                        Some(b) => (0, 0, b.freeze()),
                        None => break,
                    }
                }
            };
            let m = Message::parse(spec.dialect, body).expect("the switch sends valid messages");
            out.push(Got { correlation, flags, msg: OwnedMessage::from(&m) });
        }
        assert!(buf.is_empty(), "whole frames only");
        out
    }

    /// Like [`Harness::recv`], but answers the switch's echoes and leaves them out.
    pub fn recv_app(&mut self, link: LinkId) -> Vec<Got> {
        let mut out = Vec::new();
        for g in self.recv(link) {
            if g.msg.mti() == Mti::NETWORK_REQUEST {
                self.answer(link, &g, "00");
            } else {
                out.push(g);
            }
        }
        out
    }

    /// Answers a request received on `link` with `code`, echoing its fields.
    pub fn answer(&mut self, link: LinkId, req: &Got, code: &str) {
        let mut m = req.msg.clone();
        m.set_mti(req.msg.mti().response().unwrap());
        m.set(de::RESPONSE_CODE, code.as_bytes().to_vec()).unwrap();
        m.remove(de::PIN_BLOCK);
        self.send(link, req.correlation, &m);
    }
}

/// A purchase request from acquirer `acq_id` with `stan`, for `pan`.
pub fn purchase(pan: &str, stan: &str, acq_id: &str) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    m.set(de::PAN, pan.as_bytes().to_vec()).unwrap();
    m.set(de::PROCESSING_CODE, "000000").unwrap();
    m.set(de::AMOUNT, "000000012500").unwrap();
    m.set(de::TRANSMISSION_TIME, "1125221530").unwrap();
    m.set(de::STAN, stan.as_bytes().to_vec()).unwrap();
    m.set(de::ACQUIRER_ID, acq_id.as_bytes().to_vec()).unwrap();
    m.set(de::RRN, "533022000042").unwrap();
    m.set(de::TERMINAL_ID, "TERM0001").unwrap();
    m.set(de::CURRENCY, "702").unwrap();
    m.set(de::PIN_BLOCK, vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]).unwrap();
    m
}

/// The acquirer's own reversal of `original`, sent with STAN `stan` and its own DE 7, DE 90
/// naming the original.
#[allow(dead_code)] // not every test binary reverses
pub fn reversal_of(original: &OwnedMessage, stan: &str) -> OwnedMessage {
    let mut m = original.clone();
    m.set_mti(Mti::REVERSAL_ADVICE);
    m.remove(de::PIN_BLOCK);
    m.set(de::STAN, stan.as_bytes().to_vec()).unwrap();
    m.set(de::TRANSMISSION_TIME, "1125221610").unwrap();
    let mut data = Vec::new();
    data.extend_from_slice(b"0200");
    data.extend_from_slice(original.get(de::STAN).unwrap());
    data.extend_from_slice(original.get(de::TRANSMISSION_TIME).unwrap());
    data.extend_from_slice(b"00012345678");
    data.extend_from_slice(b"00000000000");
    m.set(de::ORIGINAL_DATA, data).unwrap();
    m
}

/// The harness's side of the driver: output goes to the peers' inboxes at once (but for
/// stalled peers), closes and resumes are acted on after the flush.
struct Raised<'a> {
    stalled: &'a std::collections::HashSet<LinkId>,
    inbox: &'a mut std::collections::HashMap<LinkId, BytesMut>,
    close: Vec<(LinkId, corridor_engine::CloseReason)>,
    resume: Vec<LinkId>,
}

impl driver::Io for Raised<'_> {
    fn writable(&mut self, engine: &mut Engine, link: LinkId) {
        if self.stalled.contains(&link) {
            return;
        }
        if let Some(out) = engine.take_output(link) {
            engine.handle_written(link, out.len());
            self.inbox.entry(link).or_default().extend_from_slice(&out);
        }
    }

    fn close(&mut self, _: &mut Engine, link: LinkId, reason: corridor_engine::CloseReason) {
        self.close.push((link, reason));
    }

    fn resume(&mut self, _: &mut Engine, link: LinkId) {
        self.resume.push(link);
    }

    fn deadline(&mut self, _: Option<Instant>) {}

    fn journal_due(&mut self) {}
}

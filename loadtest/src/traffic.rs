//! The traffic a run sends: a weighted mix of message kinds with realistic fields, PANs drawn
//! from configured BIN lists (so routes are exercised), a unique STAN per connection and a
//! unique RRN per request.
//!
//! Each kind is a template encoded once; a request is the template derived with its own PAN,
//! track 2, STAN, RRN and transmission time, written straight into the connection's batch.

use std::{fmt, str::FromStr};

use bytes::{Bytes, BytesMut};
use corridor_engine::WallClock;
use corridor_wire::{de, Dialect, EncodeError, FieldId, FieldSet, Message, Mti, OwnedMessage, Stan};
use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::limits::PANS_PER_BIN;

/// A kind of request the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// 0100 authorization request.
    Authorization,
    /// 0200 financial request (a purchase).
    Financial,
    /// 0420 acquirer reversal advice.
    Reversal,
    /// 0800 echo test (DE 70 = 301).
    Echo,
    /// A wallet's QR payment: a 0200 with no card, the merchant's EMV QR code in DE 126
    /// (one of [`TrafficSpec::qr_codes`], drawn per request), amount and currency its own.
    Qr,
}

impl Kind {
    /// Every kind, in mix order.
    pub const ALL: [Self; 5] = [Self::Authorization, Self::Financial, Self::Reversal, Self::Echo, Self::Qr];

    /// The request's MTI.
    #[must_use]
    pub fn mti(self) -> Mti {
        match self {
            Self::Authorization => Mti::AUTHORIZATION_REQUEST,
            Self::Financial | Self::Qr => Mti::FINANCIAL_REQUEST,
            Self::Reversal => Mti::REVERSAL_ADVICE,
            Self::Echo => Mti::NETWORK_REQUEST,
        }
    }

    /// The MTI as four digits.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Authorization => "0100",
            Self::Financial => "0200",
            Self::Reversal => "0420",
            Self::Echo => "0800",
            Self::Qr => "qr",
        }
    }
}

/// Weights of each kind in the traffic, e.g. `0200=90,0100=5,0420=3,0800=2` (`qr` for QR
/// payments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 5],
}

impl Mix {
    /// Only 0200s.
    pub const FINANCIAL: Self = Self { weights: [0, 1, 0, 0, 0] };

    /// The weight of `kind`.
    #[must_use]
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights[kind as usize]
    }

    /// The kind for a uniform draw `x` in `0..total`.
    fn pick(&self, mut x: u32) -> Kind {
        for k in Kind::ALL {
            let w = self.weights[k as usize];
            if x < w {
                return k;
            }
            x -= w;
        }
        Kind::Financial
    }

    fn total(&self) -> u32 {
        self.weights.iter().sum()
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = [0u32; 5];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (mti, w) =
                part.split_once('=').ok_or_else(|| format!("mix entry `{part}`: expected MTI=WEIGHT"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == mti.trim())
                .ok_or_else(|| format!("mix entry `{part}`: MTI must be 0100, 0200, 0420 or 0800, or qr"))?;
            let w: u32 =
                w.trim().parse().ok().filter(|w| *w <= 1_000_000).ok_or_else(|| {
                    format!("mix entry `{part}`: weight must be a whole number up to 1000000")
                })?;
            weights[kind as usize] += w;
        }
        if weights.iter().sum::<u32>() == 0 {
            return Err(format!("mix `{s}` has no weight above zero"));
        }
        Ok(Self { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for k in Kind::ALL.into_iter().filter(|k| self.weight(*k) > 0) {
            write!(f, "{}{}={}", if first { "" } else { "," }, k.name(), self.weight(k))?;
            first = false;
        }
        Ok(())
    }
}

/// What a run's traffic looks like.
#[derive(Clone, Debug)]
pub struct TrafficSpec {
    /// The kinds and their weights.
    pub mix: Mix,
    /// BINs (4-11 digits) the PANs start with, one drawn at random per request.
    pub bins: Vec<String>,
    /// DE 32, the acquiring institution id the requests carry.
    pub acquirer_id: String,
    /// Seed of every random draw (kinds, BINs, PANs), so a run can be repeated.
    pub seed: u64,
    /// The merchants' EMV QR codes `qr` requests pay, one drawn at random per request
    /// ([`qr_codes`] by default: several networks and currencies).
    pub qr_codes: Vec<String>,
}

impl Default for TrafficSpec {
    fn default() -> Self {
        Self {
            mix: Mix::FINANCIAL,
            bins: vec!["476173".into()],
            acquirer_id: "12345678".into(),
            seed: 1,
            qr_codes: qr_codes(),
        }
    }
}

/// Merchants' codes over several networks and currencies: a Hanoi shop's VietQR (NAPAS, VND),
/// a Bangkok stall's PromptPay (THB), a Beijing restaurant's UnionPay code (CNY) and a Phnom
/// Penh café's KHQR (KHR), each with an amount.
///
/// # Panics
///
/// Never: the objects are valid.
#[must_use]
pub fn qr_codes() -> Vec<String> {
    use corridor_qr::{encode, nested};
    let n = |objs: &[(u8, &str)]| nested(objs).unwrap_or_default();
    let napas = n(&[(0, "A000000727"), (1, &n(&[(0, "970436"), (1, "0123456789")])), (2, "QRPUSH")]);
    let promptpay = n(&[(0, "A000000677010111"), (1, "0066812345678")]);
    let khqr = n(&[(0, "cafe@abaa"), (1, "MERCHANT01"), (2, "ABA Bank")]);
    let codes: [&[(u8, &str)]; 4] = [
        &[
            (0, "01"),
            (1, "12"),
            (38, &napas),
            (52, "5411"),
            (53, "704"),
            (54, "250000"),
            (58, "VN"),
            (59, "CO OP MART"),
            (60, "HANOI"),
        ],
        &[
            (0, "01"),
            (1, "12"),
            (29, &promptpay),
            (52, "5812"),
            (53, "764"),
            (54, "150.00"),
            (58, "TH"),
            (59, "SOM TAM"),
            (60, "BANGKOK"),
        ],
        &[
            (0, "01"),
            (1, "12"),
            (15, "6250012362500456123456789012345"),
            (52, "5812"),
            (53, "156"),
            (54, "100.00"),
            (58, "CN"),
            (59, "BEIJING DUCK"),
            (60, "BEIJING"),
        ],
        &[
            (0, "01"),
            (1, "12"),
            (30, &khqr),
            (52, "5814"),
            (53, "116"),
            (54, "20000"),
            (58, "KH"),
            (59, "CAFE"),
            (60, "PHNOM PENH"),
        ],
    ];
    codes.iter().filter_map(|c| encode(c).ok()).collect()
}

impl TrafficSpec {
    /// Checks the BINs and the acquirer id.
    ///
    /// # Errors
    ///
    /// A BIN that is not 4-11 digits, no BIN, or an acquirer id that is not 1-11 digits.
    pub fn check(&self) -> Result<(), String> {
        if self.bins.is_empty() {
            return Err("at least one BIN is needed".into());
        }
        for b in &self.bins {
            if !(4..=11).contains(&b.len()) || !b.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!("BIN `{b}` must be 4 to 11 digits"));
            }
        }
        let a = &self.acquirer_id;
        if !(1..=11).contains(&a.len()) || !a.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("acquirer id `{a}` must be 1 to 11 digits"));
        }
        if self.mix.weight(Kind::Qr) > 0 && self.qr_codes.is_empty() {
            return Err("a mix with qr needs at least one QR code".into());
        }
        for c in &self.qr_codes {
            if c.is_empty() || c.len() > 499 {
                return Err(format!("QR code `{c}`: 1 to 499 bytes (DE 126)"));
            }
        }
        Ok(())
    }
}

/// Appends a framed sign-on (0800, DE 70 = 001) to `out`, DE 7 from the wall clock.
///
/// # Errors
///
/// Never for a valid wire (the message fits any frame).
pub fn sign_on(wire: crate::wire::Wire, correlation: u64, out: &mut BytesMut) -> Result<(), EncodeError> {
    let time = WallClock::now().transmission_time(std::time::Instant::now());
    // STAN 1: the first trace number of the connection.
    const FIRST: Stan = match Stan::new(1) {
        Some(s) => s,
        None => panic!("1 is a STAN"),
    };
    wire.frame(correlation, out, |o| {
        corridor_engine::network_request(corridor_wire::NetworkCode::SIGN_ON, FIRST, time, wire.dialect, o)
    })
}

/// A 16-digit PAN starting with `bin`, with `n` as its account digits and a valid Luhn check
/// digit.
#[must_use]
pub fn pan(bin: &str, n: u64) -> [u8; 16] {
    let mut out = [b'0'; 16];
    out[..bin.len()].copy_from_slice(bin.as_bytes());
    let mut n = n;
    for d in out[bin.len()..15].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out[15] = luhn_digit(&out[..15]);
    out
}

/// The Luhn check digit for `digits`.
#[must_use]
pub fn luhn_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let v = u32::from(d - b'0');
            if i % 2 == 0 {
                let x = v * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                v
            }
        })
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// Whether `pan` passes the Luhn check.
#[must_use]
pub fn luhn_valid(pan: &[u8]) -> bool {
    pan.len() >= 2 && luhn_digit(&pan[..pan.len() - 1]) == pan[pan.len() - 1]
}

/// Makes the requests of one connection.
pub struct Traffic {
    mix: Mix,
    total: u32,
    templates: [Message<Bytes>; 5],
    pans: Vec<Vec<[u8; 16]>>,
    qr_codes: Vec<Vec<u8>>,
    acquirer_id: String,
    rng: SmallRng,
    connection: u32,
    /// Which generator of this process (mixed with the process id), 0-999: in DE 41.
    generation: u32,
    sequence: u64,
    stan: Stan,
    clock: WallClock,
}

/// Generators made by this process: each takes the next number for its terminal ids.
static GENERATIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// DE 55 of a chip purchase: ARQC (9F26), cryptogram information (9F27) and issuer
/// application data (9F10), as a terminal sends them.
const ICC_DATA: [u8; 36] = [
    0x9F, 0x26, 0x08, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x08, 0x9F, 0x27, 0x01, 0x80, 0x9F, 0x10,
    0x12, 0x01, 0x10, 0xA0, 0x00, 0x03, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xFF,
];

/// The fields every request's template carries, by kind.
fn template(kind: Kind, acquirer_id: &str) -> OwnedMessage {
    let mut m = OwnedMessage::new(kind.mti());
    let common: &[(FieldId, &[u8])] = &[(de::TRANSMISSION_TIME, b"1125221530"), (de::STAN, b"000001")];
    let card: &[(FieldId, &[u8])] = &[
        (de::PAN, b"4761739001010010"),
        (de::PROCESSING_CODE, b"000000"),
        (de::AMOUNT, b"000000012500"),
        (de::LOCAL_TIME, b"221530"),
        (de::LOCAL_DATE, b"1125"),
        (de::RRN, b"000000000001"),
        (de::TERMINAL_ID, b"TERM0001"),
        (de::MERCHANT_ID, b"MERCHANT0000001"),
        (de::CURRENCY, b"702"),
    ];
    let purchase: &[(FieldId, &[u8])] = &[
        (de::EXPIRY, b"2812"),
        (de::MERCHANT_TYPE, b"5999"),
        (de::POS_ENTRY_MODE, b"051"),
        (de::POS_CONDITION, b"00"),
        (de::TRACK2, b"4761739001010010=28122011234567890"),
        (de::MERCHANT_NAME, b"CORRIDOR TEST SHOP       SINGAPORE    SG"),
        (de::PIN_BLOCK, &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]),
        (de::ICC_DATA, &ICC_DATA),
    ];
    let mut fields: Vec<(FieldId, &[u8])> = common.to_vec();
    match kind {
        Kind::Echo => fields.push((de::NETWORK_CODE, b"301")),
        Kind::Qr => {
            fields.extend_from_slice(&[
                (de::PROCESSING_CODE, b"000000"),
                (de::RRN, b"000000000001"),
                (de::TERMINAL_ID, b"TERM0001"),
                (de::ACQUIRER_ID, acquirer_id.as_bytes()),
                (de::QR_PAYLOAD, b"0002010102"),
            ]);
        }
        Kind::Reversal => {
            fields.extend_from_slice(card);
            fields.push((de::ORIGINAL_DATA, &[b'0'; 42]));
            fields.push((de::ACQUIRER_ID, acquirer_id.as_bytes()));
        }
        Kind::Authorization | Kind::Financial => {
            fields.extend_from_slice(card);
            fields.extend_from_slice(purchase);
            fields.push((de::ACQUIRER_ID, acquirer_id.as_bytes()));
        }
    }
    for (id, v) in fields {
        // The values above fit their fields (the unit tests encode every template).
        let _ = m.set(id, v.to_vec());
    }
    m
}

impl Traffic {
    /// The traffic of connection number `connection` (0-9999; it keeps RRNs unique across
    /// connections).
    ///
    /// # Errors
    ///
    /// A spec that fails [`TrafficSpec::check`].
    pub fn new(spec: &TrafficSpec, connection: u32, clock: WallClock) -> Result<Self, String> {
        spec.check()?;
        let mut templates = Vec::with_capacity(Kind::ALL.len());
        for k in Kind::ALL {
            let body = template(k, &spec.acquirer_id)
                .to_bytes(Dialect::Native)
                .map_err(|e| format!("template {}: {e}", k.name()))?;
            templates.push(Message::parse(Dialect::Native, body).map_err(|e| format!("template: {e}"))?);
        }
        let Ok(templates) = <[Message<Bytes>; 5]>::try_from(templates) else {
            return Err("five templates".into());
        };
        let mut rng = SmallRng::seed_from_u64(spec.seed ^ (u64::from(connection) << 32));
        let pans =
            spec.bins.iter().map(|b| (0..PANS_PER_BIN).map(|_| pan(b, rng.random())).collect()).collect();
        Ok(Self {
            total: spec.mix.total(),
            mix: spec.mix.clone(),
            templates,
            pans,
            qr_codes: spec.qr_codes.iter().map(|c| c.as_bytes().to_vec()).collect(),
            acquirer_id: spec.acquirer_id.clone(),
            rng,
            connection: connection % 10_000,
            generation: (std::process::id() % 1000
                + GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                % 1000,
            sequence: 0,
            // The first request gets STAN 000001.
            stan: Stan::new(0).ok_or("STAN 0 is in range")?,
            clock,
        })
    }

    /// The next STAN of this connection (six digits, wrapping).
    pub fn next_stan(&mut self) -> Stan {
        self.stan = self.stan.next();
        self.stan
    }

    /// Picks the next request's kind.
    pub fn next_kind(&mut self) -> Kind {
        let x = self.rng.random_range(0..self.total);
        self.mix.pick(x)
    }

    /// Writes request `kind` with `stan` in `dialect` to `out`; `now` sets DE 7.
    ///
    /// # Errors
    ///
    /// Never for the built-in templates; an [`EncodeError`] would be a template bug.
    pub fn write(
        &mut self,
        kind: Kind,
        stan: Stan,
        dialect: Dialect,
        now: std::time::Instant,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.sequence += 1;
        let time = self.clock.transmission_time(now);
        let stan_ascii = stan.to_ascii();
        let t = &self.templates[kind as usize];
        if kind == Kind::Echo {
            return t.derive(
                t.mti(),
                FieldSet::VALUES,
                &[(de::TRANSMISSION_TIME, &time), (de::STAN, &stan_ascii)],
                dialect,
                out,
            );
        }
        let bin = self.rng.random_range(0..self.pans.len());
        let pan = self.pans[bin][self.rng.random_range(0..PANS_PER_BIN)];
        let mut rrn = [b'0'; 12];
        write_digits(&mut rrn[..4], u64::from(self.connection));
        write_digits(&mut rrn[4..], self.sequence);
        // DE 41: one terminal per connection and per generator (`T`, three digits of the
        // generator, four of the connection), so that STANs — which start again at every
        // run — never look like repeats to a switch that answers repeats from their outcome.
        let mut terminal = *b"T0000000";
        write_digits(&mut terminal[1..4], u64::from(self.generation));
        write_digits(&mut terminal[4..], u64::from(self.connection));
        if kind == Kind::Qr {
            let code = &self.qr_codes[self.rng.random_range(0..self.qr_codes.len())];
            return t.derive(
                t.mti(),
                FieldSet::VALUES,
                &[
                    (de::TRANSMISSION_TIME, &time),
                    (de::STAN, &stan_ascii),
                    (de::RRN, &rrn),
                    (de::TERMINAL_ID, &terminal),
                    (de::QR_PAYLOAD, code),
                ],
                dialect,
                out,
            );
        }
        if kind == Kind::Reversal {
            // DE 90: the reversed request's MTI, STAN, DE 7 and acquirer id (11 digits).
            let mut original = [b'0'; 42];
            original[..4].copy_from_slice(b"0200");
            write_digits(&mut original[4..10], u64::from(stan.value().saturating_sub(1)));
            original[10..20].copy_from_slice(&time);
            let acq = self.acquirer_id.as_bytes();
            original[31 - acq.len()..31].copy_from_slice(acq);
            return t.derive(
                t.mti(),
                FieldSet::VALUES,
                &[
                    (de::PAN, &pan),
                    (de::TRANSMISSION_TIME, &time),
                    (de::STAN, &stan_ascii),
                    (de::RRN, &rrn),
                    (de::TERMINAL_ID, &terminal),
                    (de::ORIGINAL_DATA, &original),
                ],
                dialect,
                out,
            );
        }
        let mut track2 = [0u8; 34];
        track2[..16].copy_from_slice(&pan);
        track2[16..].copy_from_slice(b"=28122011234567890");
        t.derive(
            t.mti(),
            FieldSet::VALUES,
            &[
                (de::PAN, &pan),
                (de::TRANSMISSION_TIME, &time),
                (de::STAN, &stan_ascii),
                (de::TRACK2, &track2),
                (de::RRN, &rrn),
                (de::TERMINAL_ID, &terminal),
            ],
            dialect,
            out,
        )
    }
}

/// Writes `n` as decimal digits filling `dst` (the high digits that do not fit are dropped).
fn write_digits(dst: &mut [u8], mut n: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, time::Instant};

    use super::*;

    fn clock() -> WallClock {
        WallClock { at: Instant::now(), unix_secs: 1_795_644_930 }
    }

    #[test]
    fn mixes_parse_print_and_refuse_nonsense() {
        let m: Mix = "0200=90, 0100=5,0420=3,0800=2".parse().unwrap();
        assert_eq!(m.to_string(), "0100=5,0200=90,0420=3,0800=2");
        assert!("0200".parse::<Mix>().unwrap_err().contains("MTI=WEIGHT"));
        assert!("0210=1".parse::<Mix>().unwrap_err().contains("must be 0100"));
        assert_eq!("qr=2,0200=1".parse::<Mix>().unwrap().to_string(), "0200=1,qr=2");
        assert!("0200=0".parse::<Mix>().unwrap_err().contains("no weight"));
        assert!("0200=-1".parse::<Mix>().is_err());
        let m: Mix = "0200=1,0800=3".parse().unwrap();
        assert_eq!([0, 1, 2, 3].map(|x| m.pick(x)), [Kind::Financial, Kind::Echo, Kind::Echo, Kind::Echo]);
    }

    #[test]
    fn pans_carry_their_bin_and_pass_luhn() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert_eq!(luhn_digit(b"7992739871"), b'3');
        for n in [0, 1, 123_456_789, u64::MAX] {
            let p = pan("476173", n);
            assert!(p.starts_with(b"476173"));
            assert!(luhn_valid(&p), "{}", String::from_utf8_lossy(&p));
        }
    }

    #[test]
    fn requests_decode_with_their_own_fields_in_every_dialect() {
        let spec = TrafficSpec {
            mix: "0100=1,0200=1,0420=1,0800=1,qr=1".parse().unwrap(),
            bins: vec!["476173".into(), "52000011".into()],
            ..TrafficSpec::default()
        };
        let codes: HashSet<Vec<u8>> = spec.qr_codes.iter().map(|c| c.as_bytes().to_vec()).collect();
        assert_eq!(codes.len(), 4);
        let mut t = Traffic::new(&spec, 7, clock()).unwrap();
        let mut rrns = HashSet::new();
        let mut kinds = HashSet::new();
        let mut bins = HashSet::new();
        for dialect in Dialect::ALL {
            for _ in 0..200 {
                let kind = t.next_kind();
                let stan = t.next_stan();
                let mut out = BytesMut::new();
                t.write(kind, stan, dialect, Instant::now(), &mut out).unwrap();
                let m = Message::parse(dialect, out.freeze()).unwrap();
                assert_eq!(m.mti(), kind.mti());
                assert_eq!(m.stan(), Some(stan));
                assert_eq!(m.transmission_time().map(|t| t.value()), Some(1_125_221_530));
                kinds.insert(kind);
                if kind == Kind::Echo {
                    assert_eq!(m.network_code().map(|c| c.0), Some(301));
                    continue;
                }
                if kind == Kind::Qr {
                    // A QR payment: no card, one of the codes, every code valid.
                    assert!(m.field(de::PAN).is_none() && m.field(de::TRACK2).is_none());
                    let code = m.field(de::QR_PAYLOAD).unwrap().to_vec();
                    assert!(codes.contains(&code));
                    assert!(corridor_qr::Registry::builtin()
                        .decode(std::str::from_utf8(&code).unwrap())
                        .is_ok());
                    assert!(rrns.insert(m.rrn().unwrap().to_vec()), "RRNs are unique");
                    continue;
                }
                let pan = m.field(de::PAN).unwrap().to_vec();
                assert!(luhn_valid(&pan));
                bins.insert(if pan.starts_with(b"52000011") { 1 } else { 0 });
                let rrn = m.rrn().unwrap().to_vec();
                assert!(rrn.starts_with(b"0007"), "the connection number leads the RRN");
                assert!(rrns.insert(rrn), "RRNs are unique");
                let terminal = m.terminal_id().unwrap();
                assert!(
                    terminal.starts_with(b"T") && terminal.ends_with(b"0007"),
                    "one terminal per connection"
                );
                assert_eq!(m.acquirer_id().unwrap().as_str(), "12345678");
                if kind == Kind::Reversal {
                    let data = m.field(de::ORIGINAL_DATA).unwrap().to_vec();
                    assert!(data.starts_with(b"0200"));
                    assert_eq!(&data[20..31], b"00012345678");
                } else {
                    let track2 = m.field(de::TRACK2).unwrap().to_vec();
                    assert!(track2.starts_with(&pan), "track 2 carries the same PAN");
                }
            }
        }
        assert_eq!(kinds.len(), 5, "every kind of the mix was drawn");
        assert_eq!(bins.len(), 2, "every BIN was drawn");
    }

    #[test]
    fn a_typical_purchase_is_the_size_of_the_golden_vector() {
        let mut t = Traffic::new(&TrafficSpec::default(), 0, clock()).unwrap();
        let mut out = BytesMut::new();
        let stan = t.next_stan();
        t.write(Kind::Financial, stan, Dialect::Iso87Ascii, Instant::now(), &mut out).unwrap();
        assert!((200..=300).contains(&out.len()), "{} bytes", out.len());
        let mut native = BytesMut::new();
        t.write(Kind::Financial, stan, Dialect::Native, Instant::now(), &mut native).unwrap();
        // The purchase_0200 golden vector's size: 258 bytes iso87-ascii, 212 native (232 with
        // the native frame header).
        assert_eq!((out.len(), native.len()), (258, 212));
    }

    #[test]
    fn specs_are_checked() {
        let bad = |bins: &[&str], acq: &str| TrafficSpec {
            bins: bins.iter().map(|s| s.to_string()).collect(),
            acquirer_id: acq.into(),
            ..TrafficSpec::default()
        };
        assert!(bad(&[], "1").check().is_err());
        assert!(bad(&["47a173"], "1").check().unwrap_err().contains("4 to 11 digits"));
        assert!(bad(&["476173"], "").check().is_err());
        assert!(bad(&["476173"], "123456789012").check().is_err());
        assert!(bad(&["476173"], "1234").check().is_ok());
    }
}

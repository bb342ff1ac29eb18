//! The configuration file: one TOML document, unknown keys refused, checked whole before the
//! switch starts. `corridor check-config` runs exactly this.

use std::{collections::HashSet, net::SocketAddr, path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use corridor_engine::{Config, Framing, LinkSpec, Participant, Roles, Route, RouteKey, RouteTable, Settings};
use corridor_net::{Dial, Identity, LinkTls, Listen, NetConfig, QuicLink, QuicSettings, TlsFiles};
use corridor_wire::{Dialect, InstitutionId, FRAME_BYTES_MAX};
use serde::Deserialize;

/// Largest in-flight limit a link may be given.
pub const INFLIGHT_MAX: u32 = 65_535;
/// Longest timeout a route may be given.
pub const ROUTE_TIMEOUT_MAX: Duration = Duration::from_secs(600);
/// Shortest echo interval.
pub const ECHO_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// Most connections a listening link may accept at once.
pub const CONNECTIONS_MAX: usize = 1_024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    switch: SwitchSection,
    #[serde(default, rename = "participant")]
    participants: Vec<ParticipantSection>,
    #[serde(default, rename = "route")]
    routes: Vec<RouteSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchSection {
    institution_id: Option<String>,
    #[serde(default = "default_drain_ms")]
    drain_timeout_ms: u64,
    #[serde(default = "default_reversal_retry_ms")]
    reversal_retry_ms: u64,
    #[serde(default = "default_reversal_repeats")]
    reversal_repeats_max: u32,
    #[serde(default = "default_late_window_ms")]
    late_window_ms: u64,
}

impl Default for SwitchSection {
    fn default() -> Self {
        Self {
            institution_id: None,
            drain_timeout_ms: default_drain_ms(),
            reversal_retry_ms: default_reversal_retry_ms(),
            reversal_repeats_max: default_reversal_repeats(),
            late_window_ms: default_late_window_ms(),
        }
    }
}

fn default_drain_ms() -> u64 {
    5_000
}
fn default_reversal_retry_ms() -> u64 {
    10_000
}
fn default_reversal_repeats() -> u32 {
    5
}
fn default_late_window_ms() -> u64 {
    120_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantSection {
    id: String,
    name: Option<String>,
    roles: Vec<String>,
    #[serde(default)]
    acquirer_ids: Vec<String>,
    #[serde(default)]
    forwarder_ids: Vec<String>,
    /// TLS identity: the subject common name of the participant's certificate.
    tls_subject_cn: Option<String>,
    /// TLS identity: SHA-256 pins (hex) of its certificates' public keys.
    #[serde(default)]
    tls_spki_sha256: Vec<String>,
    #[serde(default, rename = "link")]
    links: Vec<LinkSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: String,
    key: String,
    ca: Vec<String>,
    #[serde(default)]
    crl: Vec<String>,
    server_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkSection {
    name: String,
    mode: String,
    address: String,
    framing: String,
    dialect: String,
    #[serde(default = "default_inflight")]
    inflight_max: u32,
    #[serde(default = "default_true")]
    sign_on_required: bool,
    #[serde(default = "default_echo_ms")]
    echo_interval_ms: u64,
    #[serde(default = "default_echo_missed")]
    echo_missed_max: u32,
    #[serde(default = "default_frame_max")]
    frame_bytes_max: usize,
    connections_max: Option<usize>,
    connect_timeout_ms: Option<u64>,
    reconnect_min_ms: Option<u64>,
    reconnect_max_ms: Option<u64>,
    tls: Option<TlsSection>,
    /// "tcp" (default) or "quic".
    transport: Option<String>,
    /// QUIC: lanes opened (dial) or accepted per connection (listen).
    lanes: Option<u16>,
    /// QUIC: a connection silent this long is closed.
    idle_timeout_ms: Option<u64>,
    /// QUIC: keep-alive interval.
    keep_alive_ms: Option<u64>,
}

fn default_inflight() -> u32 {
    256
}
fn default_true() -> bool {
    true
}
fn default_echo_ms() -> u64 {
    30_000
}
fn default_echo_missed() -> u32 {
    3
}
fn default_frame_max() -> usize {
    FRAME_BYTES_MAX
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    pan_prefix: Option<String>,
    receiver_id: Option<String>,
    #[serde(default)]
    default: bool,
    mti_classes: Option<Vec<u8>>,
    destination: String,
    #[serde(default = "default_route_timeout_ms")]
    timeout_ms: u64,
}

fn default_route_timeout_ms() -> u64 {
    5_000
}

/// A checked configuration: the engine's part and the network's part.
pub struct Loaded {
    /// For the engine.
    pub engine: Config,
    /// For the network layer.
    pub net: NetConfig,
}

/// Reads and checks a configuration file.
///
/// # Errors
///
/// The file cannot be read, is not valid TOML, has an unknown key, or breaks a rule; the
/// message names the place and the rule.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse_in(&text, base).with_context(|| format!("{}", path.display()))
}

fn institution(s: &str, what: &str) -> Result<InstitutionId> {
    InstitutionId::from_ascii(s.as_bytes()).with_context(|| format!("{what} {s:?} must be 1-11 digits"))
}

fn millis(ms: u64, what: &str) -> Result<Duration> {
    if ms == 0 {
        bail!("{what} must be more than 0 ms");
    }
    Ok(Duration::from_millis(ms))
}

/// The participant ids a configuration names, without checking the rest (for `certs dev`,
/// which runs before the certificates the file names exist).
///
/// # Errors
///
/// Text that is not TOML with `[[participant]]` tables.
pub fn participant_ids(text: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Ids {
        #[serde(default)]
        participant: Vec<IdOnly>,
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }
    let ids: Ids = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    Ok(ids.participant.into_iter().map(|p| p.id).collect())
}

/// Parses and checks configuration text; relative file names (TLS certificates and keys) are
/// taken from the working directory.
///
/// # Errors
///
/// See [`load`].
pub fn parse(text: &str) -> Result<Loaded> {
    parse_in(text, Path::new("."))
}

fn pin(hex: &str, what: &str) -> Result<[u8; 32]> {
    let hex = hex.trim();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<_>>()
        .with_context(|| format!("{what} {hex:?} is not hex"))?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("{what} {hex:?} must be 64 hex digits (SHA-256)"))
}

/// Parses and checks configuration text; relative file names are taken from `base`.
///
/// # Errors
///
/// See [`load`].
pub fn parse_in(text: &str, base: &Path) -> Result<Loaded> {
    let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    let switch_id =
        file.switch.institution_id.as_deref().map(|s| institution(s, "switch.institution_id")).transpose()?;
    let settings = Settings {
        institution_id: switch_id,
        reversal_retry: millis(file.switch.reversal_retry_ms, "switch.reversal_retry_ms")?,
        reversal_repeats_max: file.switch.reversal_repeats_max,
        late_window: millis(file.switch.late_window_ms, "switch.late_window_ms")?,
    };
    if file.participants.is_empty() {
        bail!("no [[participant]]: a switch needs at least one");
    }
    let mut participants = Vec::new();
    let mut links = Vec::new();
    let mut net = NetConfig {
        drain_timeout: millis(file.switch.drain_timeout_ms, "switch.drain_timeout_ms")?,
        ..NetConfig::default()
    };
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    let mut owners: std::collections::HashMap<InstitutionId, String> = Default::default();
    let mut subjects: std::collections::HashMap<String, String> = Default::default();
    let mut pins: std::collections::HashMap<[u8; 32], String> = Default::default();
    for (pi, p) in file.participants.iter().enumerate() {
        let at = format!("participant {:?}", p.id);
        if p.id.is_empty() || !p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("{at}: id must be letters, digits, '-' or '_'");
        }
        if participants.iter().any(|q: &Participant| q.id == p.id) {
            bail!("{at}: defined twice");
        }
        let mut roles = Roles::default();
        for r in &p.roles {
            match r.as_str() {
                "acquirer" => roles.acquirer = true,
                "issuer" => roles.issuer = true,
                "network" => roles.network = true,
                other => bail!("{at}: unknown role {other:?} (expected acquirer, issuer or network)"),
            }
        }
        if p.roles.is_empty() {
            bail!("{at}: roles must name at least one of acquirer, issuer, network");
        }
        let acquirer_ids = p
            .acquirer_ids
            .iter()
            .map(|s| institution(s, &format!("{at}: acquirer id")))
            .collect::<Result<Vec<_>>>()?;
        let forwarder_ids = p
            .forwarder_ids
            .iter()
            .map(|s| institution(s, &format!("{at}: forwarder id")))
            .collect::<Result<Vec<_>>>()?;
        if !forwarder_ids.is_empty() && !roles.network {
            bail!("{at}: forwarder_ids (DE 33) need the network role");
        }
        for id in &acquirer_ids {
            if let Some(other) = owners.insert(*id, p.id.clone()) {
                bail!("{at}: acquirer id {id} is already owned by participant {other:?}");
            }
        }
        if p.links.is_empty() {
            bail!("{at}: no [[participant.link]]");
        }
        let identity = Identity {
            participant: p.id.clone(),
            subject_cn: p.tls_subject_cn.clone(),
            spki_sha256: p
                .tls_spki_sha256
                .iter()
                .map(|h| pin(h, &format!("{at}: tls_spki_sha256")))
                .collect::<Result<Vec<_>>>()?,
        };
        // A certificate maps to exactly one participant.
        if let Some(cn) = &identity.subject_cn {
            if let Some(other) = subjects.insert(cn.clone(), p.id.clone()) {
                bail!("{at}: tls_subject_cn {cn:?} is already participant {other:?}'s");
            }
        }
        for k in &identity.spki_sha256 {
            if let Some(other) = pins.insert(*k, p.id.clone()) {
                bail!("{at}: a tls_spki_sha256 pin is already participant {other:?}'s");
            }
        }
        for l in &p.links {
            let lat = format!("{at}, link {:?}", l.name);
            if !names.insert(l.name.clone()) {
                bail!("{lat}: link names must be unique");
            }
            let address: SocketAddr = l
                .address
                .parse()
                .with_context(|| format!("{lat}: address {:?} is not host:port", l.address))?;
            let (framing, dialect) =
                framing_and_dialect(&l.framing, &l.dialect).with_context(|| lat.clone())?;
            if l.inflight_max == 0 || l.inflight_max > INFLIGHT_MAX {
                bail!("{lat}: inflight_max must be 1-{INFLIGHT_MAX}");
            }
            if l.frame_bytes_max < 64 || l.frame_bytes_max > FRAME_BYTES_MAX {
                bail!("{lat}: frame_bytes_max must be 64-{FRAME_BYTES_MAX}");
            }
            let echo_interval = Duration::from_millis(l.echo_interval_ms);
            if echo_interval < ECHO_INTERVAL_MIN {
                bail!("{lat}: echo_interval_ms must be at least {}", ECHO_INTERVAL_MIN.as_millis());
            }
            if l.echo_missed_max == 0 {
                bail!("{lat}: echo_missed_max must be at least 1");
            }
            let spec = links.len();
            let quic_wanted = match l.transport.as_deref().unwrap_or("tcp") {
                "tcp" => {
                    if l.lanes.is_some() || l.idle_timeout_ms.is_some() || l.keep_alive_ms.is_some() {
                        bail!("{lat}: lanes, idle_timeout_ms and keep_alive_ms are for transport = \"quic\"");
                    }
                    false
                }
                "quic" => {
                    if !matches!(framing, Framing::Native) {
                        bail!("{lat}: QUIC links carry native frames: framing = \"native\", dialect = \"native\"");
                    }
                    if l.tls.is_none() {
                        bail!(
                            "{lat}: QUIC links need a [participant.link.tls] table (mutual TLS is always on)"
                        );
                    }
                    true
                }
                other => bail!("{lat}: transport {other:?} must be \"tcp\" or \"quic\""),
            };
            // Certificate paths are relative to the configuration file.
            let files = l.tls.as_ref().map(|t| {
                let path = |f: &str| base.join(f);
                TlsFiles {
                    cert: path(&t.cert),
                    key: path(&t.key),
                    ca: t.ca.iter().map(|c| path(c)).collect(),
                    crl: t.crl.iter().map(|c| path(c)).collect(),
                    server_name: t.server_name.clone(),
                }
            });
            if files.as_ref().is_some_and(|f| f.server_name.is_some()) && l.mode != "dial" {
                bail!("{lat}: tls.server_name is for mode = \"dial\"");
            }
            let (mut tls, mut quic) = (None, None);
            if let Some(files) = &files {
                if quic_wanted {
                    let defaults = QuicSettings::default();
                    let settings = QuicSettings {
                        lanes: l.lanes.unwrap_or(if l.mode == "dial" { defaults.lanes } else { 16 }),
                        idle_timeout: millis(
                            l.idle_timeout_ms.unwrap_or(30_000),
                            &format!("{lat}: idle_timeout_ms"),
                        )?,
                        keep_alive: millis(
                            l.keep_alive_ms.unwrap_or(5_000),
                            &format!("{lat}: keep_alive_ms"),
                        )?,
                    };
                    quic = Some(
                        QuicLink::new(files, l.mode == "dial", identity.clone(), settings)
                            .map_err(|e| anyhow::anyhow!("{lat}: quic: {e}"))?,
                    );
                } else {
                    tls = Some(
                        LinkTls::new(files, l.mode == "dial", identity.clone())
                            .map_err(|e| anyhow::anyhow!("{lat}: tls: {e}"))?,
                    );
                }
            }
            let dial = match l.mode.as_str() {
                "listen" => {
                    if l.connect_timeout_ms.is_some()
                        || l.reconnect_min_ms.is_some()
                        || l.reconnect_max_ms.is_some()
                    {
                        bail!("{lat}: connect_timeout_ms and reconnect_*_ms are for mode = \"dial\"");
                    }
                    if address.port() != 0 && !addresses.insert(address) {
                        bail!("{lat}: address {address} is already used by another listening link");
                    }
                    let connections_max = l.connections_max.unwrap_or(16);
                    if connections_max == 0 || connections_max > CONNECTIONS_MAX {
                        bail!("{lat}: connections_max must be 1-{CONNECTIONS_MAX}");
                    }
                    net.listens.push(Listen {
                        spec,
                        name: l.name.clone(),
                        address,
                        connections_max,
                        tls: tls.clone(),
                        quic: quic.clone(),
                    });
                    false
                }
                "dial" => {
                    if l.connections_max.is_some() {
                        bail!("{lat}: connections_max is for mode = \"listen\"");
                    }
                    let backoff_min =
                        millis(l.reconnect_min_ms.unwrap_or(100), &format!("{lat}: reconnect_min_ms"))?;
                    let backoff_max =
                        millis(l.reconnect_max_ms.unwrap_or(30_000), &format!("{lat}: reconnect_max_ms"))?;
                    if backoff_max < backoff_min {
                        bail!("{lat}: reconnect_max_ms must be at least reconnect_min_ms");
                    }
                    net.dials.push(Dial {
                        spec,
                        name: l.name.clone(),
                        address,
                        connect_timeout: millis(
                            l.connect_timeout_ms.unwrap_or(3_000),
                            &format!("{lat}: connect_timeout_ms"),
                        )?,
                        backoff_min,
                        backoff_max,
                        tls: tls.clone(),
                        quic: quic.clone(),
                    });
                    true
                }
                other => bail!("{lat}: mode {other:?} must be \"listen\" or \"dial\""),
            };
            links.push(LinkSpec {
                name: l.name.clone(),
                participant: pi,
                dial,
                framing,
                dialect,
                frame_bytes_max: l.frame_bytes_max,
                inflight_max: l.inflight_max,
                sign_on_required: l.sign_on_required,
                echo_interval,
                echo_missed_max: l.echo_missed_max,
            });
        }
        participants.push(Participant {
            id: p.id.clone(),
            name: p.name.clone().unwrap_or_else(|| p.id.clone()),
            roles,
            acquirer_ids,
            forwarder_ids,
        });
    }
    let mut routes = Vec::new();
    for (i, r) in file.routes.iter().enumerate() {
        let at = format!("route {} (destination {:?})", i + 1, r.destination);
        let key = match (&r.pan_prefix, &r.receiver_id, r.default) {
            (Some(p), None, false) => {
                if p.is_empty() || p.len() > 19 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    bail!("{at}: pan_prefix {p:?} must be 1-19 digits");
                }
                RouteKey::PanPrefix(p.as_bytes().to_vec())
            }
            (None, Some(id), false) => RouteKey::Receiver(institution(id, &format!("{at}: receiver_id"))?),
            (None, None, true) => RouteKey::Default,
            _ => bail!("{at}: give exactly one of pan_prefix, receiver_id or default = true"),
        };
        let destination = participants
            .iter()
            .position(|p| p.id == r.destination)
            .with_context(|| format!("{at}: no participant with id {:?}", r.destination))?;
        if !participants[destination].roles.issuer && !participants[destination].roles.network {
            bail!("{at}: destination {:?} has neither the issuer nor the network role", r.destination);
        }
        let mti_classes = match &r.mti_classes {
            None => None,
            Some(cs) => {
                if cs.is_empty() || cs.iter().any(|&c| c > 9) {
                    bail!("{at}: mti_classes must be digits 0-9");
                }
                Some(cs.iter().fold(0u16, |m, &c| m | 1 << c))
            }
        };
        let timeout = millis(r.timeout_ms, &format!("{at}: timeout_ms"))?;
        if timeout > ROUTE_TIMEOUT_MAX {
            bail!("{at}: timeout_ms must be at most {}", ROUTE_TIMEOUT_MAX.as_millis());
        }
        if routes.iter().any(|q: &Route| q.key == key && q.mti_classes == mti_classes) {
            bail!("{at}: the same key and classes are routed twice");
        }
        routes.push(Route { key, mti_classes, destination, timeout });
    }
    let routes = RouteTable::new(routes).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Loaded { engine: Config { participants, links, routes, settings }, net })
}

fn framing_and_dialect(framing: &str, dialect: &str) -> Result<(Framing, Dialect)> {
    let dialect: Dialect = dialect.parse()?;
    let framing: Framing = framing.parse()?;
    match framing {
        _ if framing.carries(dialect) => Ok((framing, dialect)),
        Framing::Native => bail!("framing \"native\" carries dialect \"native\" only"),
        Framing::Length(_) => bail!("dialect \"native\" needs framing \"native\""),
    }
}

/// A summary of a checked configuration, for `check-config`.
#[must_use]
pub fn summary(c: &Loaded) -> String {
    use std::fmt::Write as _;
    let e = &c.engine;
    let mut s = String::new();
    let _ = writeln!(s, "participants: {}", e.participants.len());
    for p in &e.participants {
        let roles: Vec<&str> =
            [("acquirer", p.roles.acquirer), ("issuer", p.roles.issuer), ("network", p.roles.network)]
                .into_iter()
                .filter_map(|(n, on)| on.then_some(n))
                .collect();
        let ids: Vec<String> = p.acquirer_ids.iter().map(ToString::to_string).collect();
        let _ = writeln!(s, "  {:<16} {:<24} ids [{}]", p.id, roles.join("+"), ids.join(", "));
    }
    let _ = writeln!(s, "links: {}", e.links.len());
    let addr = |spec: usize| {
        c.net
            .listens
            .iter()
            .find(|l| l.spec == spec)
            .map(|l| {
                let t = if l.quic.is_some() {
                    " quic"
                } else if l.tls.is_some() {
                    " tls"
                } else {
                    ""
                };
                format!("listen {}{t}", l.address)
            })
            .or_else(|| {
                c.net
                    .dials
                    .iter()
                    .find(|d| d.spec == spec)
                    .map(|d| format!("dial {}{}", d.address, if d.tls.is_some() { " tls" } else { "" }))
            })
            .unwrap_or_default()
    };
    for (i, l) in e.links.iter().enumerate() {
        let framing = l.framing.to_string();
        let _ = writeln!(
            s,
            "  {:<16} {:<16} {:<28} {}/{} inflight {} sign-on {}",
            l.name,
            e.participants[l.participant].id,
            addr(i),
            framing,
            l.dialect,
            l.inflight_max,
            if l.sign_on_required { "required" } else { "optional" }
        );
    }
    let _ = writeln!(s, "routes: {}", e.routes.routes().len());
    for r in e.routes.routes() {
        let key = match &r.key {
            RouteKey::PanPrefix(p) => format!("pan {}", String::from_utf8_lossy(p)),
            RouteKey::Receiver(id) => format!("DE 100 {id}"),
            RouteKey::Default => "default".to_string(),
        };
        let classes = r.mti_classes.map_or("all".to_string(), |m| {
            (0..10).filter(|c| m & (1 << c) != 0).map(|c| c.to_string()).collect::<Vec<_>>().join(",")
        });
        let _ = writeln!(
            s,
            "  {:<24} -> {:<16} classes {:<6} timeout {} ms",
            key,
            e.participants[r.destination].id,
            classes,
            r.timeout.as_millis()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../examples/switch.toml");

    #[test]
    fn the_example_is_valid() {
        let c = parse(EXAMPLE).expect("the example config is valid");
        assert_eq!(c.engine.participants.len(), 3);
        assert_eq!(c.engine.links.len(), 4);
        assert_eq!((c.net.listens.len(), c.net.dials.len()), (2, 2));
        assert_eq!(c.engine.routes.routes().len(), 3);
        let s = summary(&c);
        assert!(
            s.contains("wallet-sg-1") && s.contains("pan 47617390") && s.contains("DE 100 44556677"),
            "{s}"
        );
    }

    #[test]
    fn each_rule_is_enforced_with_a_precise_message() {
        let cases: &[(&str, &str, &str)] = &[
            ("drain_timeout_ms = 5000", "drain_timeout_ms = 5000\nbogus = 1", "unknown field `bogus`"),
            ("framing = \"bin2\"", "framing = \"bin3\"", "unknown framing \"bin3\""),
            (
                "dialect = \"iso87-ascii\"",
                "dialect = \"native\"",
                "dialect \"native\" needs framing \"native\"",
            ),
            ("address = \"127.0.0.1:9101\"", "address = \"localhost\"", "is not host:port"),
            ("address = \"127.0.0.1:9102\"", "address = \"127.0.0.1:9101\"", "already used"),
            ("acquirer_ids = [\"12345678\"]", "acquirer_ids = [\"1234x678\"]", "must be 1-11 digits"),
            (
                "mode = \"listen\"\n  address = \"127.0.0.1:9101\"",
                "mode = \"both\"\n  address = \"127.0.0.1:9101\"",
                "mode \"both\"",
            ),
            ("inflight_max = 256", "inflight_max = 0", "inflight_max must be 1-65535"),
            ("echo_interval_ms = 30000", "echo_interval_ms = 5", "echo_interval_ms must be at least 100"),
            (
                "destination = \"issuer-vn\"",
                "destination = \"issuer-xx\"",
                "no participant with id \"issuer-xx\"",
            ),
            ("pan_prefix = \"476173\"", "pan_prefix = \"47a173\"", "must be 1-19 digits"),
            ("pan_prefix = \"476173\"", "pan_prefix = \"476173\"\nreceiver_id = \"1\"", "exactly one of"),
            ("mti_classes = [1, 2]", "mti_classes = [12]", "mti_classes must be digits 0-9"),
            ("timeout_ms = 5000", "timeout_ms = 0", "timeout_ms must be more than 0"),
            ("connections_max = 4", "connections_max = 4\nconnect_timeout_ms = 5", "are for mode = \"dial\""),
            ("name = \"issuer-vn-2\"", "name = \"issuer-vn-1\"", "link names must be unique"),
            ("roles = [\"acquirer\"]", "roles = [\"bank\"]", "unknown role \"bank\""),
        ];
        for (from, to, want) in cases {
            assert!(EXAMPLE.contains(from), "the example has {from:?}");
            let text = EXAMPLE.replacen(from, to, 1);
            let err = match parse(&text) {
                Ok(_) => panic!("{to:?} should be refused"),
                Err(e) => format!("{e:#}"),
            };
            assert!(err.contains(want), "{to:?}: expected {want:?} in {err:?}");
        }
    }

    #[test]
    fn a_route_to_an_acquirer_is_refused() {
        let text = EXAMPLE.replacen(
            "destination = \"issuer-th\"\nmti_classes",
            "destination = \"wallet-sg\"\nmti_classes",
            1,
        );
        let err = format!("{:#}", parse(&text).err().expect("refused"));
        assert!(err.contains("neither the issuer nor the network role"), "{err}");
    }

    #[test]
    fn tls_links_and_certificate_identities_are_checked() {
        let dir = std::env::temp_dir().join(format!("corridor-config-tls-{}", std::process::id()));
        crate::certs::dev(&dir, &["wallet-sg".into()], 5).unwrap();
        let tls = "  [participant.link.tls]\n  cert = \"switch.pem\"\n  key = \"switch.key\"\n  ca = [\"ca.pem\"]\n";
        let with_tls = EXAMPLE.replacen(
            "  connections_max = 4         # listen only, default 16\n",
            &format!("  connections_max = 4\n{tls}"),
            1,
        );
        let identity = "acquirer_ids = [\"12345678\"]   # the DE 32 values it may send as; anything else is declined 63\n";
        assert!(EXAMPLE.contains(identity));
        let ok = with_tls.replacen(identity, &format!("{identity}tls_subject_cn = \"wallet-sg\"\n"), 1);
        let c = parse_in(&ok, &dir).expect("a TLS link with an identity");
        assert!(c.net.listens.iter().any(|l| l.tls.is_some()));
        assert!(summary(&c).contains("listen 127.0.0.1:9101 tls"), "{}", summary(&c));
        let cases: Vec<(String, &str)> = vec![
            (with_tls.clone(), "has TLS links but no certificate identity"),
            (ok.replace("cert = \"switch.pem\"", "cert = \"nowhere.pem\""), "nowhere.pem"),
            (ok.replace("ca = [\"ca.pem\"]", "ca = []"), "needs at least one CA"),
            (
                ok.replacen("tls_subject_cn = \"wallet-sg\"", "tls_spki_sha256 = [\"abcd\"]", 1),
                "must be 64 hex digits",
            ),
            (
                ok.replacen(
                    "name = \"Vietnam QR network\"",
                    "name = \"VN\"\ntls_subject_cn = \"wallet-sg\"",
                    1,
                ),
                "already participant \"wallet-sg\"'s",
            ),
        ];
        for (text, want) in cases {
            let err = match parse_in(&text, &dir) {
                Ok(_) => panic!("expected {want:?}"),
                Err(e) => format!("{e:#}"),
            };
            assert!(err.contains(want), "expected {want:?} in {err:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

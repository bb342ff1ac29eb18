//! Corridor's configuration: one TOML document (unknown keys refused) and the BIN route
//! files it names, checked whole before the switch starts, producing the engine's and the
//! network layer's configuration. `corridor check-config` runs exactly this; the switch,
//! the load tool and the tests all load configurations through it.
//!
//! # Layout
//!
//! - [`certs`]: development certificates for the participants a configuration names
//!   (`corridor certs dev`).
//! - [`fixture`]: the two-participant configuration tests, benchmarks and examples start
//!   from, written once.
//! - [`limits`]: every default and every bound of a configured value, in one place.
//! - `file`: the TOML document's shape (serde, with enums for modes, transports, roles).
//! - [`reload`]: a new file compared with the one in force, for a running switch.
//! - `routes`: routes from the document and from CSV route files, duplicates found in one
//!   pass.
//! - this module: checking each section and building the engine's and network's parts.

#![forbid(unsafe_code)]

use std::{collections::HashSet, net::SocketAddr, path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use corridor_engine::{
    AtLimit, Config, Framing, LinkSpec, Participant, Roles, Route, RouteKey, RouteTable, Settings,
};
use corridor_net::{Dial, Identity, LinkTls, Listen, NetConfig, QuicLink, QuicSettings, TlsFiles, Transport};
use corridor_wire::{Dialect, InstitutionId};

pub mod certs;
mod cluster;
mod file;
pub mod fixture;
mod interop;
pub mod limits;
pub mod reload;
mod routes;
mod source;

pub use source::Source;

pub use cluster::{ClusterSettings, RelaySettings};
use file::{File, Mode, Role, TransportKind};
use limits::*;

/// A checked configuration: the engine's part and the network's part.
pub struct Loaded {
    /// For the engine.
    pub engine: Config,
    /// For the network layer.
    pub net: NetConfig,
    /// The journal, when the configuration has one.
    pub journal: Option<JournalSettings>,
    /// The cluster this node is one of, when the configuration names one (`[cluster]`):
    /// each shard's journal is then replicated in its stream.
    pub cluster: Option<ClusterSettings>,
    /// SHA-256 of the configuration's encoding: its text and shared files (journaled at
    /// start and at each reload, for the audit trail; see [`Source::digest`]).
    pub digest: [u8; 32],
    /// What it was made from: its text and the shared files it names (a cluster carries it
    /// between its nodes).
    pub source: Source,
    /// The admin HTTP server, when the configuration has one.
    pub admin: Option<AdminSettings>,
    /// Per link (by index): what its open connections cannot take a change of (see
    /// [`reload`]).
    pub link_fingerprints: Vec<[u8; 32]>,
    /// The business day's cut-over, for clearing files.
    pub clearing: Clearing,
    /// Engine shards to run (`[switch] shards`, or the CPUs the process may use).
    pub shards: usize,
}

/// When a business day ends: `[clearing] cutover = "HH:MM±HH:MM"` (default `24:00Z`, the
/// calendar day in UTC). The business day D ends at the cut-over on D and starts at the one
/// the day before, in the cut-over's offset: with `22:00+08:00`, D is from D−1 22:00 to
/// D 22:00 Singapore time (a payment at 23:00 belongs to the next day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clearing {
    /// Minutes after local midnight.
    pub cutover_minutes: u32,
    /// The offset from UTC of that local time, in minutes.
    pub offset_minutes: i32,
}

impl Default for Clearing {
    fn default() -> Self {
        Self { cutover_minutes: 24 * 60, offset_minutes: 0 }
    }
}

impl Clearing {
    /// Business day `(year, month, day)`'s window: Unix milliseconds, start inclusive, end
    /// exclusive; `None` when there is no such day.
    #[must_use]
    pub fn window(&self, year: i32, month: u8, day: u8) -> Option<(i64, i64)> {
        let midnight = corridor_wire::clock::days_from_civil(year, month, day)? * 86_400_000;
        let end =
            midnight + i64::from(self.cutover_minutes) * 60_000 - i64::from(self.offset_minutes) * 60_000;
        Some((end - 86_400_000, end))
    }

    fn parse(s: &str) -> Result<Self> {
        let bad = || {
            anyhow::anyhow!("[clearing] cutover {s:?}: HH:MM and an offset, such as 24:00Z or 22:00+08:00")
        };
        let (time, offset) = match s.find(['Z', '+', '-']) {
            Some(i) => s.split_at(i),
            None => return Err(bad()),
        };
        let hm = |t: &str| -> Option<u32> {
            let (h, m) = t.split_once(':')?;
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (h * 60 + m <= 24 * 60 && m < 60 && t.len() == 5).then_some(h * 60 + m)
        };
        let cutover_minutes = hm(time).ok_or_else(bad)?;
        let offset_minutes = match offset {
            "Z" => 0,
            o => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let m = hm(&o[1..]).filter(|m| *m <= 14 * 60).ok_or_else(bad)?;
                sign * i32::try_from(m).unwrap_or(0)
            }
        };
        Ok(Self { cutover_minutes, offset_minutes })
    }
}

/// A checked `[admin]` section.
#[derive(Clone)]
pub struct AdminSettings {
    /// Where it listens.
    pub address: SocketAddr,
    /// The bearer token (read from `token_file`, surrounding whitespace trimmed).
    pub token: String,
    /// The token file, for messages.
    pub token_file: std::path::PathBuf,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings").field("address", &self.address).finish_non_exhaustive()
    }
}

/// A `tls` table's files, their paths relative to the configuration file (a link's, and the
/// cluster's node links').
pub(crate) fn tls_files(t: &file::TlsSection, base: &Path) -> TlsFiles {
    let path = |f: &str| base.join(f);
    TlsFiles {
        cert: path(&t.cert),
        key: path(&t.key),
        ca: t.ca.iter().map(|c| path(c)).collect(),
        crl: t.crl.iter().map(|c| path(c)).collect(),
        server_name: t.server_name.clone(),
    }
}

fn admin_settings(a: &file::AdminSection, base: &Path) -> Result<AdminSettings> {
    let at = "admin";
    let text = a.address.as_deref().unwrap_or(ADMIN_ADDRESS);
    let address: SocketAddr =
        text.parse().with_context(|| format!("{at}: address {text:?} is not host:port"))?;
    if !address.ip().is_loopback() && !a.allow_remote.unwrap_or(false) {
        bail!("{at}: address {address} is not loopback; set allow_remote = true to serve it there");
    }
    let token_file = base.join(&a.token_file);
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("{at}: cannot read token_file {}", token_file.display()))?
        .trim()
        .to_owned();
    if token.len() < ADMIN_TOKEN_BYTES_MIN || token.len() > ADMIN_TOKEN_BYTES_MAX {
        bail!(
            "{at}: the token in {} must be {ADMIN_TOKEN_BYTES_MIN}-{ADMIN_TOKEN_BYTES_MAX} characters",
            token_file.display()
        );
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("{at}: the token in {} must be printable ASCII without spaces", token_file.display());
    }
    Ok(AdminSettings { address, token, token_file })
}

/// A checked `[journal]` section.
#[derive(Clone)]
pub struct JournalSettings {
    /// The journal directory.
    pub dir: std::path::PathBuf,
    /// The PAN key's id (carried by every sealed PAN, so keys can rotate).
    pub key_id: u32,
    /// The PAN key.
    pub key: [u8; 32],
    /// Group commit and segment size.
    pub policy: corridor_journal::GroupCommit,
    /// A checkpoint after this many new segments.
    pub checkpoint_segments: u32,
    /// How long covered segments are kept.
    pub retain: Duration,
    /// Space held back for when the disk fills.
    pub reserve_bytes: u64,
    /// Whether segments are prepared ahead, written with zeros.
    pub preallocate: bool,
    /// Whether checkpoints hold their outcomes many to a record (default true): about 0.4×
    /// the bytes written, read back and (in a cluster) appended to the stream. A build
    /// before cannot read such a checkpoint: false while one may still read this journal —
    /// a node of it that may take a shard over, a switch one may go back to.
    pub compact_checkpoints: bool,
}

impl std::fmt::Debug for JournalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalSettings")
            .field("dir", &self.dir)
            .field("key_id", &self.key_id)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn journal_settings(j: &file::JournalSection, base: &Path) -> Result<JournalSettings> {
    let at = "journal";
    let key_path = base.join(&j.key_file);
    let raw = std::fs::read(&key_path)
        .with_context(|| format!("{at}: cannot read key_file {}", key_path.display()))?;
    let text = String::from_utf8_lossy(&raw);
    let hex = text.trim();
    let key: [u8; 32] = if raw.len() == 32 {
        raw.as_slice().try_into().map_err(|_| anyhow::anyhow!("{at}: key_file"))?
    } else if hex.len() == 64 {
        pin(hex, &format!("{at}: key_file"))?
    } else {
        bail!("{at}: key_file {} must hold 32 bytes or 64 hex digits", key_path.display());
    };
    let policy = corridor_journal::GroupCommit {
        records_max: j.group_records_max.unwrap_or(corridor_journal::limits::GROUP_RECORDS_DEFAULT),
        wait: j.group_wait_us.map_or(corridor_journal::limits::GROUP_WAIT_DEFAULT, Duration::from_micros),
        segment_bytes: j.segment_bytes.unwrap_or(corridor_journal::limits::SEGMENT_BYTES_DEFAULT),
    };
    policy.check().map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
    let checkpoint_segments = count(j.checkpoint_segments, &CHECKPOINT_SEGMENTS, "checkpoint_segments", at)?;
    let retain = Duration::from_secs(count(j.retain_hours, &RETAIN_HOURS, "retain_hours", at)? * 3600);
    let reserve_bytes = count(j.reserve_bytes, &RESERVE_BYTES, "reserve_bytes", at)?;
    Ok(JournalSettings {
        dir: base.join(&j.dir),
        key_id: j.key_id.unwrap_or(1),
        key,
        policy,
        checkpoint_segments,
        retain,
        reserve_bytes,
        preallocate: j.preallocate.unwrap_or(true),
        compact_checkpoints: j.compact_checkpoints.unwrap_or(true),
    })
}

/// Reads and checks a configuration file.
///
/// # Errors
///
/// The file cannot be read, is not valid TOML, has an unknown key, or breaks a rule; the
/// message names the place and the rule.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_as(path, None)
}

/// [`load`], for cluster node `node` (`None`: the one `[cluster] node` names): its
/// `[cluster.nodes.<node>]` settings in force.
///
/// # Errors
///
/// See [`load`]; also a node the configuration does not know.
pub fn load_as(path: &Path, node: Option<&str>) -> Result<Loaded, ConfigError> {
    let source = read_source(path)?;
    from_source(&source, path, node)
}

/// A configuration file's [`Source`]: its text and the shared files it names.
///
/// # Errors
///
/// The file or a shared file cannot be read.
pub fn read_source(path: &Path) -> Result<Source, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    Source::gather(text, base).map_err(|e| ConfigError::invalid(Some(path), &e))
}

/// Checks `source` as the configuration of the file at `path` (what this node keeps of its
/// own — certificates, keys, the admin token — is read relative to it), for cluster node
/// `node` (see [`load_as`]).
///
/// # Errors
///
/// See [`load_as`].
pub fn from_source(source: &Source, path: &Path, node: Option<&str>) -> Result<Loaded, ConfigError> {
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    check_source(source, base, node).map_err(|e| ConfigError::invalid(Some(path), &e))
}

/// Why a configuration cannot be used. Inside, each rule's check says what it found with
/// `anyhow`'s context (the place in the file, then the rule); at this crate's boundary that
/// is one typed error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not TOML, has an unknown key, or breaks a rule.
    Invalid {
        /// The file, when it came from one.
        file: Option<std::path::PathBuf>,
        /// The place in the file and the rule broken.
        why: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(file: Option<&Path>, e: &anyhow::Error) -> Self {
        Self::Invalid { file: file.map(Path::to_owned), why: format!("{e:#}") }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Invalid { file: Some(file), why } => write!(f, "{}: {why}", file.display()),
            Self::Invalid { file: None, why } => f.write_str(why),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Invalid { .. } => None,
        }
    }
}

fn institution(s: &str, what: &str) -> Result<InstitutionId> {
    InstitutionId::from_ascii(s.as_bytes()).with_context(|| format!("{what} {s:?} must be 1-11 digits"))
}

/// A bounded millisecond setting: `value`, or its default, checked against its range.
fn millis(value: Option<u64>, m: Millis, at: &str) -> Result<Duration> {
    let ms = value.unwrap_or(m.default);
    if !m.range().contains(&ms) {
        bail!("{at}: {} must be {}-{} (ms), not {ms}", m.key, m.min, m.max);
    }
    Ok(Duration::from_millis(ms))
}

/// A bounded count: `value`, or its default, checked against its range.
fn count<T: Copy + PartialOrd + std::fmt::Display>(
    value: Option<T>,
    (default, range): &(T, std::ops::RangeInclusive<T>),
    key: &str,
    at: &str,
) -> Result<T> {
    let v = value.unwrap_or(*default);
    if !range.contains(&v) {
        bail!("{at}: {key} must be {}-{}, not {v}", range.start(), range.end());
    }
    Ok(v)
}

/// The participant ids a configuration names, without checking the rest (for `certs dev`,
/// which runs before the certificates the file names exist).
///
/// # Errors
///
/// Text that is not TOML with `[[participant]]` tables.
pub fn participant_ids(text: &str) -> Result<Vec<String>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Ids {
        #[serde(default)]
        participant: Vec<IdOnly>,
    }
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    let ids: Ids = toml::from_str(text)
        .map_err(|e| ConfigError::Invalid { file: None, why: e.to_string().trim_end().to_owned() })?;
    Ok(ids.participant.into_iter().map(|p| p.id).collect())
}

/// Parses and checks configuration text; relative file names (TLS certificates and keys) are
/// taken from the working directory.
///
/// # Errors
///
/// See [`load`].
pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
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
pub fn parse_in(text: &str, base: &Path) -> Result<Loaded, ConfigError> {
    check_in(text, base).map_err(|e| ConfigError::invalid(None, &e))
}

/// [`parse_in`], every rule checked with `anyhow`'s context.
fn check_in(text: &str, base: &Path) -> Result<Loaded> {
    check_source(&Source::gather(text.to_owned(), base)?, base, None)
}

/// The cluster's configuration `cluster` as node `node` serves it, the node's own file
/// being `own` at `path`: what a node keeps of its own comes from its own file (see
/// `cluster::keep_own`), everything else from the cluster's.
///
/// # Errors
///
/// Either does not check, or they name different streams.
pub fn from_cluster(
    cluster: &Source,
    own: &Source,
    path: &Path,
    node: Option<&str>,
) -> Result<Loaded, ConfigError> {
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let check = || -> Result<Loaded> {
        let mut own_file = parse_file(own)?;
        cluster::for_node(&mut own_file, node)?;
        let name = own_file.cluster.as_ref().and_then(|c| c.node.clone());
        let mut file = parse_file(cluster).context("the cluster's configuration")?;
        cluster::for_node(&mut file, name.as_deref()).context("the cluster's configuration")?;
        cluster::keep_own(&mut file, own_file)?;
        build(file, cluster, base)
    };
    check().map_err(|e| ConfigError::invalid(Some(path), &e))
}

fn parse_file(source: &Source) -> Result<File> {
    toml::from_str(source.text()).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
}

/// [`from_source`], every rule checked with `anyhow`'s context.
fn check_source(source: &Source, base: &Path, node: Option<&str>) -> Result<Loaded> {
    let mut file = parse_file(source)?;
    cluster::for_node(&mut file, node)?;
    build(file, source, base)
}

/// The configuration `file` (its node's settings in force), made from `source`, checked.
fn build(file: File, source: &Source, base: &Path) -> Result<Loaded> {
    let sw = &file.switch;
    let settings = settings(sw)?;
    if file.participants.is_empty() {
        bail!("no [[participant]]: a switch needs at least one");
    }
    let registry = interop::registry(&file, source, base)?;
    let mut built = Built {
        net: NetConfig {
            drain_timeout: millis(sw.drain_timeout_ms, DRAIN_TIMEOUT, "switch")?,
            ..NetConfig::default()
        },
        ..Built::default()
    };
    for (pi, p) in file.participants.iter().enumerate() {
        built.participant(p, pi, base, &registry)?;
    }
    let Built { participants, links, mut net, fingerprints, .. } = built;
    let mut all = routes::Routes::default();
    for (i, r) in file.routes.iter().enumerate() {
        route(r, i, &participants, &registry, &mut all)?;
    }
    for f in &sw.route_files {
        let path = base.join(f);
        routes::read_csv(&path, source.file(f)?, &participants, &mut all)
            .with_context(|| format!("route file {}", path.display()))?;
    }
    let routes = all.finish()?;
    let routes = RouteTable::new(routes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let interop = interop::interop(&file, registry, source, base)?;
    let clearing = match file.clearing.as_ref().and_then(|c| c.cutover.as_deref()) {
        Some(c) => Clearing::parse(c)?,
        None => Clearing::default(),
    };
    let journal = file.journal.as_ref().map(|j| journal_settings(j, base)).transpose()?;
    let cluster = file.cluster.as_ref().map(|c| cluster::settings(c, journal.is_some(), base)).transpose()?;
    // The node links' TLS, made once here (a certificate that cannot be used fails
    // `check-config`): the switch's node link listener and a waiting node's relays use it.
    if let Some(c) = &cluster {
        if let Some(r) = &c.relay {
            net.relay =
                Some(corridor_net::RelayServe { address: r.address, tls: r.tls(&c.nodes)?, owners: None });
        }
    }
    let admin = file.admin.as_ref().map(|a| admin_settings(a, base)).transpose()?;
    let digest = source.digest();
    let shards = match sw.shards {
        Some(n) if (1..=corridor_engine::shards::SHARDS_MAX).contains(&n) => n,
        Some(n) => bail!("switch: shards must be 1-{}, not {n}", corridor_engine::shards::SHARDS_MAX),
        None => default_shards(),
    };
    Ok(Loaded {
        engine: Config { participants, links, routes, settings, interop },
        net,
        journal,
        cluster,
        digest,
        admin,
        link_fingerprints: fingerprints,
        clearing,
        shards,
        source: source.clone(),
    })
}

/// `[switch]`'s engine settings, each checked against its range.
fn settings(sw: &file::SwitchSection) -> Result<Settings> {
    let switch_id =
        sw.institution_id.as_deref().map(|s| institution(s, "switch.institution_id")).transpose()?;
    Ok(Settings {
        institution_id: switch_id,
        reversal_retry: millis(sw.reversal_retry_ms, REVERSAL_RETRY, "switch")?,
        reversal_repeats_max: count(
            sw.reversal_repeats_max,
            &REVERSAL_REPEATS,
            "reversal_repeats_max",
            "switch",
        )?,
        saf_age_max: millis(sw.saf_age_max_ms, SAF_AGE_MAX, "switch")?,
        late_window: millis(sw.late_window_ms, LATE_WINDOW, "switch")?,
        duplicate_window: millis(sw.duplicate_window_ms, DUPLICATE_WINDOW, "switch")?,
        metrics: sw.metrics.unwrap_or(true),
        duplicate_window_entries: corridor_engine::limits::OUTCOMES_MAX,
    })
}

/// The participants and links checked so far, and what must stay unique across them.
#[derive(Default)]
struct Built {
    participants: Vec<Participant>,
    links: Vec<LinkSpec>,
    net: NetConfig,
    fingerprints: Vec<[u8; 32]>,
    /// Link names.
    names: HashSet<String>,
    /// Listening addresses (port 0 excepted).
    addresses: HashSet<SocketAddr>,
    /// Acquirer ids, and the participant each is.
    owners: std::collections::HashMap<InstitutionId, String>,
    /// Certificate subjects, and the participant each is.
    subjects: std::collections::HashMap<String, String>,
    /// SPKI pins, and the participant each is.
    pins: std::collections::HashMap<[u8; 32], String>,
}

impl Built {
    /// Checks `[[participant]]` number `pi` and its links, and adds them.
    fn participant(
        &mut self,
        p: &file::ParticipantSection,
        pi: usize,
        base: &Path,
        registry: &corridor_qr::Registry,
    ) -> Result<()> {
        let at = format!("participant {:?}", p.id);
        if p.id.is_empty() || !p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("{at}: id must be letters, digits, '-' or '_'");
        }
        if p.id.len() > NAME_BYTES_MAX {
            bail!("{at}: id must be at most {NAME_BYTES_MAX} characters");
        }
        if self.participants.iter().any(|q: &Participant| q.id == p.id) {
            bail!("{at}: defined twice");
        }
        if p.roles.is_empty() {
            bail!("{at}: roles must name at least one of acquirer, issuer, network");
        }
        let roles = Roles {
            acquirer: p.roles.contains(&Role::Acquirer),
            issuer: p.roles.contains(&Role::Issuer),
            network: p.roles.contains(&Role::Network),
        };
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
            if let Some(other) = self.owners.insert(*id, p.id.clone()) {
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
            if let Some(other) = self.subjects.insert(cn.clone(), p.id.clone()) {
                bail!("{at}: tls_subject_cn {cn:?} is already participant {other:?}'s");
            }
        }
        for k in &identity.spki_sha256 {
            if let Some(other) = self.pins.insert(*k, p.id.clone()) {
                bail!("{at}: a tls_spki_sha256 pin is already participant {other:?}'s");
            }
        }
        for l in &p.links {
            let lat = format!("{at}, link {:?}", l.name);
            if l.name.is_empty() || l.name.len() > NAME_BYTES_MAX {
                bail!("{lat}: name must be 1-{NAME_BYTES_MAX} bytes");
            }
            let spec = self.links.len();
            let (link, listen_or_dial, print) = link(l, &lat, spec, pi, base, &identity)?;
            self.fingerprints.push(print);
            if !self.names.insert(l.name.clone()) {
                bail!("{lat}: link names must be unique");
            }
            match listen_or_dial {
                Side::Listen(listen) => {
                    if listen.address.port() != 0 && !self.addresses.insert(listen.address) {
                        bail!("{lat}: address {} is already used by another listening link", listen.address);
                    }
                    self.net.listens.push(listen);
                }
                Side::Dial(dial) => self.net.dials.push(dial),
            }
            self.links.push(link);
        }
        let participant = Participant {
            id: p.id.clone(),
            name: p.name.clone().unwrap_or_else(|| p.id.clone()),
            roles,
            acquirer_ids,
            forwarder_ids,
            directory: interop::directory(p, registry, &at)?,
            hop: None,
            via: None,
            shard: p.shard,
        };
        self.participants.push(participant);
        Ok(())
    }
}

/// Checks `[[route]]` number `i` and adds it to `all`.
fn route(
    r: &file::RouteSection,
    i: usize,
    participants: &[Participant],
    registry: &corridor_qr::Registry,
    all: &mut routes::Routes,
) -> Result<()> {
    let at = format!("route {} (destination {:?})", i + 1, r.destination);
    if r.qr_acquirer.is_some() && r.qr_network.is_none() {
        bail!("{at}: qr_acquirer goes with qr_network");
    }
    let key = match (&r.pan_prefix, &r.receiver_id, &r.qr_network, r.default) {
        (Some(p), None, None, false) => routes::pan_prefix(p).with_context(|| at.clone())?,
        (None, Some(id), None, false) => RouteKey::Receiver(institution(id, &format!("{at}: receiver_id"))?),
        (None, None, Some(n), false) => {
            let i = registry
                .index(n)
                .with_context(|| format!("{at}: qr_network {n:?} is not in the QR network registry"))?;
            if let Some(a) = &r.qr_acquirer {
                if a.is_empty() || a.len() > 32 || !a.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
                    bail!("{at}: qr_acquirer {a:?} must be 1-32 printable characters");
                }
            }
            RouteKey::Qr {
                network: u16::try_from(i).unwrap_or(u16::MAX),
                name: n.as_str().into(),
                acquirer: r.qr_acquirer.as_deref().map(Into::into),
            }
        }
        (None, None, None, true) => RouteKey::Default,
        _ => bail!("{at}: give exactly one of pan_prefix, receiver_id, qr_network or default = true"),
    };
    let destination = routes::destination(participants, &r.destination).with_context(|| at.clone())?;
    let mti_classes = match &r.mti_classes {
        None => None,
        Some(cs) => Some(routes::classes(cs).with_context(|| at.clone())?),
    };
    let timeout = millis(r.timeout_ms, ROUTE_TIMEOUT, &at)?;
    all.push(Route { key, mti_classes, destination, timeout }, || at.clone())
}

/// The shards a switch runs when its configuration does not say: the CPUs this process may
/// use (its affinity mask and cgroup quota, as the standard library reads them).
#[must_use]
pub fn default_shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(corridor_engine::shards::SHARDS_MAX)
}

/// Where a link's connections come from.
enum Side {
    Listen(Listen),
    Dial(Dial),
}

/// One `[[participant.link]]`, checked: the engine's part and the network's part.
fn link(
    l: &file::LinkSection,
    lat: &str,
    spec: usize,
    participant: usize,
    base: &Path,
    identity: &Identity,
) -> Result<(LinkSpec, Side, [u8; 32])> {
    let fingerprint = fingerprint(l, base, identity);
    let address: SocketAddr =
        l.address.parse().with_context(|| format!("{lat}: address {:?} is not host:port", l.address))?;
    let (framing, dialect) = framing_and_dialect(&l.framing, &l.dialect).with_context(|| lat.to_owned())?;
    let dial = l.mode == Mode::Dial;
    let inflight_max = count(l.inflight_max, &INFLIGHT, "inflight_max", lat)?;
    let frame_bytes_max = count(l.frame_bytes_max, &FRAME_BYTES, "frame_bytes_max", lat)?;
    let echo_interval = millis(l.echo_interval_ms, ECHO_INTERVAL, lat)?;
    let echo_missed_max = count(l.echo_missed_max, &ECHO_MISSED, "echo_missed_max", lat)?;
    let quic_only = l.lanes.is_some() || l.idle_timeout_ms.is_some() || l.keep_alive_ms.is_some();
    if l.transport == TransportKind::Tcp && quic_only {
        bail!("{lat}: lanes, idle_timeout_ms and keep_alive_ms are for transport = \"quic\"");
    }
    if l.transport == TransportKind::Quic {
        if !matches!(framing, Framing::Native) {
            bail!("{lat}: QUIC links carry native frames: framing = \"native\", dialect = \"native\"");
        }
        if l.tls.is_none() {
            bail!("{lat}: QUIC links need a [participant.link.tls] table (mutual TLS is always on)");
        }
    }
    let files = l.tls.as_ref().map(|t| tls_files(t, base));
    if files.as_ref().is_some_and(|f| f.server_name.is_some()) && !dial {
        bail!("{lat}: tls.server_name is for mode = \"dial\"");
    }
    let transport = match (&files, l.transport) {
        (None, _) => Transport::Tcp,
        (Some(files), TransportKind::Quic) => {
            let settings = QuicSettings {
                lanes: l.lanes.unwrap_or(if dial { LANES_DIAL } else { LANES_LISTEN }),
                idle_timeout: millis(l.idle_timeout_ms, IDLE_TIMEOUT, lat)?,
                keep_alive: millis(l.keep_alive_ms, KEEP_ALIVE, lat)?,
            };
            Transport::Quic(
                QuicLink::new(files, dial, identity.clone(), settings)
                    .map_err(|e| anyhow::anyhow!("{lat}: quic: {e}"))?,
            )
        }
        (Some(files), TransportKind::Tcp) => Transport::Tls(
            LinkTls::new(files, dial, identity.clone()).map_err(|e| anyhow::anyhow!("{lat}: tls: {e}"))?,
        ),
    };
    let side = if dial {
        if l.connections_max.is_some() {
            bail!("{lat}: connections_max is for mode = \"listen\"");
        }
        let backoff_min = millis(l.reconnect_min_ms, RECONNECT_MIN, lat)?;
        let backoff_max = millis(l.reconnect_max_ms, RECONNECT_MAX, lat)?;
        if backoff_max < backoff_min {
            bail!("{lat}: reconnect_max_ms must be at least reconnect_min_ms");
        }
        Side::Dial(Dial {
            spec,
            name: l.name.clone(),
            address,
            connect_timeout: millis(l.connect_timeout_ms, CONNECT_TIMEOUT, lat)?,
            backoff_min,
            backoff_max,
            transport,
        })
    } else {
        if l.connect_timeout_ms.is_some() || l.reconnect_min_ms.is_some() || l.reconnect_max_ms.is_some() {
            bail!("{lat}: connect_timeout_ms and reconnect_*_ms are for mode = \"dial\"");
        }
        let connections_max = count(l.connections_max, &CONNECTIONS, "connections_max", lat)?;
        Side::Listen(Listen { spec, name: l.name.clone(), address, connections_max, transport })
    };
    let spec = LinkSpec {
        name: l.name.clone(),
        participant,
        dial,
        framing,
        dialect,
        frame_bytes_max,
        inflight_max,
        sign_on_required: l.sign_on_required.unwrap_or(true),
        echo_interval,
        echo_missed_max,
        at_limit: match l.at_inflight_limit {
            file::AtLimitSetting::Backpressure => AtLimit::Backpressure,
            file::AtLimitSetting::Decline => AtLimit::Decline,
        },
        sign_on_timeout: millis(l.sign_on_timeout_ms, SIGN_ON_TIMEOUT, lat)?,
        frame_timeout: millis(l.frame_timeout_ms, FRAME_TIMEOUT, lat)?,
        timeouts_down_max: count(l.timeouts_down_max, &TIMEOUTS_DOWN, "timeouts_down_max", lat)?,
    };
    Ok((spec, side, fingerprint))
}

/// What a link's open connections depend on and cannot take a change of: its mode, address
/// and transport, its TLS files (their names and their bytes, so a renewed certificate at the
/// same path counts), and the identity its peer must prove. A reload restarts a link whose
/// fingerprint changed.
fn fingerprint(l: &file::LinkSection, base: &Path, identity: &Identity) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let text = format!(
        "{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        l.mode,
        l.address,
        l.transport,
        l.lanes,
        l.idle_timeout_ms,
        l.keep_alive_ms,
        identity.subject_cn,
        identity.spki_sha256
    );
    ctx.update(text.as_bytes());
    if let Some(t) = &l.tls {
        let files = [&t.cert, &t.key].into_iter().chain(t.ca.iter()).chain(t.crl.iter());
        for f in files {
            ctx.update(f.as_bytes());
            // An unreadable file fails the load itself; here it only has to differ.
            ctx.update(&std::fs::read(base.join(f)).unwrap_or_default());
        }
        ctx.update(format!("{:?}", t.server_name).as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn framing_and_dialect(framing: &str, dialect: &str) -> Result<(Framing, Dialect)> {
    let wire = corridor_wire::Wire::parse(framing, dialect)?;
    Ok((wire.framing, wire.dialect))
}

/// A summary of a checked configuration, for `check-config`.
#[must_use]
pub fn summary(c: &Loaded) -> String {
    use std::fmt::Write as _;
    let e = &c.engine;
    let mut s = String::new();
    let plan = corridor_engine::shards::ShardPlan::new(c.shards, e);
    let _ = writeln!(s, "shards: {} (each participant on its owner's thread)", plan.count);
    let _ = writeln!(s, "participants: {}", e.participants.len());
    for (i, p) in e.participants.iter().enumerate() {
        let roles: Vec<&str> =
            [("acquirer", p.roles.acquirer), ("issuer", p.roles.issuer), ("network", p.roles.network)]
                .into_iter()
                .filter_map(|(n, on)| on.then_some(n))
                .collect();
        let ids: Vec<String> = p.acquirer_ids.iter().map(ToString::to_string).collect();
        let _ = write!(s, "  {:<16} {:<24} ids [{}]", p.id, roles.join("+"), ids.join(", "));
        if plan.count > 1 {
            let _ = write!(s, " shard {}", plan.owner[i]);
        }
        let d = &p.directory;
        if let Some(m) = d.market {
            let _ = write!(s, " market {}", String::from_utf8_lossy(&m));
        }
        if let Some(c) = d.currency {
            let _ = write!(s, " currency {c}");
            if let Some(l) = d.limit {
                let _ = write!(s, " limit {}", corridor_engine::exchange::decimal_amount(l, c.exponent));
            }
        }
        let names = |ix: &[u16]| -> Vec<&str> {
            ix.iter()
                .filter_map(|&i| e.interop.registry.networks().get(usize::from(i)).map(|n| n.id.as_str()))
                .collect()
        };
        if !d.networks.is_empty() {
            let _ = write!(s, " networks [{}]", names(&d.networks).join(", "));
        }
        if !d.qr_policy.is_empty() {
            let _ = write!(s, " qr_policy [{}]", names(&d.qr_policy).join(", "));
        }
        let _ = writeln!(s);
    }
    let i = &e.interop;
    let _ = writeln!(
        s,
        "market {}, settlement {}, rate quotes {}, QR networks {}",
        i.market.map_or_else(|| "none".to_owned(), |m| String::from_utf8_lossy(&m).into_owned()),
        i.settlement.map_or_else(|| "none".to_owned(), |c| c.to_string()),
        i.rates.quotes().len(),
        i.registry.networks().len()
    );
    let _ = writeln!(s, "links: {}", e.links.len());
    let addr = |spec: usize| {
        c.net
            .listens
            .iter()
            .find(|l| l.spec == spec)
            .map(|l| format!("listen {}{}", l.address, transport_tag(&l.transport)))
            .or_else(|| {
                c.net
                    .dials
                    .iter()
                    .find(|d| d.spec == spec)
                    .map(|d| format!("dial {}{}", d.address, transport_tag(&d.transport)))
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
    for r in e.routes.routes().iter().take(SUMMARY_ROUTES_MAX) {
        let key = match &r.key {
            RouteKey::PanPrefix(p) => format!("pan {}", String::from_utf8_lossy(p)),
            RouteKey::Receiver(id) => format!("DE 100 {id}"),
            RouteKey::Default => "default".to_string(),
            RouteKey::Qr { name, acquirer: None, .. } => format!("qr {name}"),
            RouteKey::Qr { name, acquirer: Some(a), .. } => format!("qr {name} acquirer {a}"),
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
    if let Some(more) = e.routes.routes().len().checked_sub(SUMMARY_ROUTES_MAX).filter(|&n| n > 0) {
        let _ = writeln!(s, "  ... and {more} more");
    }
    if let Some(k) = &c.cluster {
        let _ = writeln!(
            s,
            "cluster: node {} of stream {} ({} copies) on {} NATS server(s){}; every node must run {} shard(s)",
            k.node,
            k.stream,
            k.replicas,
            k.nats.len(),
            if k.standby { ", a standby" } else { "" },
            plan.count
        );
        if !k.nodes.is_empty() {
            let _ = writeln!(
                s,
                "cluster: nodes {} (one file for all; each runs `corridor serve --node <name>`)",
                k.nodes.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "cluster: every node serves the cluster's configuration; a reload on any node publishes its file ({}              bytes with its shared files)",
            c.source.encode().len()
        );
    }
    s
}

fn transport_tag(t: &Transport) -> &'static str {
    match t {
        Transport::Tcp => "",
        Transport::Tls(_) => " tls",
        Transport::Quic(_) => " quic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's participants, links and routes (its journal and admin sections name
    /// files beside it, which these tests do not have).
    static EXAMPLE: std::sync::LazyLock<&str> = std::sync::LazyLock::new(|| {
        let full = include_str!("../../corridor/examples/switch.toml");
        full.split("\n# The journal:").next().unwrap_or(full)
    });

    #[test]
    fn the_example_is_valid() {
        let c = parse(&EXAMPLE).expect("the example config is valid");
        assert_eq!(c.engine.participants.len(), 3);
        assert_eq!(c.engine.links.len(), 4);
        assert_eq!((c.net.listens.len(), c.net.dials.len()), (2, 2));
        assert_eq!(c.engine.routes.routes().len(), 5);
        let s = summary(&c);
        assert!(
            s.contains("wallet-sg-1") && s.contains("pan 47617390") && s.contains("DE 100 44556677"),
            "{s}"
        );
        assert!(
            s.contains("qr napas acquirer 970436")
                && s.contains("limit 5000.00")
                && s.contains("settlement USD"),
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
                "framing `bin2` does not carry dialect `native`",
            ),
            ("address = \"127.0.0.1:9101\"", "address = \"localhost\"", "is not host:port"),
            ("address = \"127.0.0.1:9102\"", "address = \"127.0.0.1:9101\"", "already used"),
            ("acquirer_ids = [\"12345678\"]", "acquirer_ids = [\"1234x678\"]", "must be 1-11 digits"),
            (
                "mode = \"listen\"\n  address = \"127.0.0.1:9101\"",
                "mode = \"both\"\n  address = \"127.0.0.1:9101\"",
                "unknown variant `both`, expected `listen` or `dial`",
            ),
            ("inflight_max = 256", "inflight_max = 0", "inflight_max must be 1-65535"),
            (
                "echo_interval_ms = 30000",
                "echo_interval_ms = 5",
                "echo_interval_ms must be 100-3600000 (ms), not 5",
            ),
            (
                "echo_interval_ms = 30000",
                "echo_interval_ms = 9223372036854775807",
                "echo_interval_ms must be 100-3600000 (ms)",
            ),
            ("echo_missed_max = 3 ", "echo_missed_max = 3000 ", "echo_missed_max must be 1-100, not 3000"),
            (
                "at_inflight_limit = \"backpressure\"",
                "at_inflight_limit = \"queue\"",
                "unknown variant `queue`",
            ),
            (
                "destination = \"issuer-vn\"",
                "destination = \"issuer-xx\"",
                "no participant with id \"issuer-xx\"",
            ),
            ("pan_prefix = \"476173\"", "pan_prefix = \"47a173\"", "must be 1-19 digits"),
            ("pan_prefix = \"476173\"", "pan_prefix = \"476173\"\nreceiver_id = \"1\"", "exactly one of"),
            ("mti_classes = [1, 2]", "mti_classes = [12]", "mti_classes must be digits 0-9"),
            ("timeout_ms = 5000", "timeout_ms = 0", "timeout_ms must be 1-600000 (ms), not 0"),
            ("connections_max = 4", "connections_max = 4\nconnect_timeout_ms = 5", "are for mode = \"dial\""),
            ("name = \"issuer-vn-2\"", "name = \"issuer-vn-1\"", "link names must be unique"),
            (
                "name = \"issuer-vn-2\"",
                "name = \"issuer-vn-2-and-sixty-five-bytes-long-012345678901234567890123456\"",
                "name must be 1-64 bytes",
            ),
            ("name = \"issuer-vn-2\"", "name = \"\"", "name must be 1-64 bytes"),
            (
                "id = \"wallet-sg\"",
                "id = \"wallet-sg-and-sixty-five-characters-long-012345678901234567890123\"",
                "id must be at most 64 characters",
            ),
            ("roles = [\"acquirer\"]", "roles = [\"bank\"]", "unknown variant `bank`"),
        ];
        // At the bound, taken: 64 bytes.
        let longest = format!("name = \"{}\"", "l".repeat(NAME_BYTES_MAX));
        assert!(parse(&EXAMPLE.replacen("name = \"issuer-vn-2\"", &longest, 1)).is_ok());
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

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("corridor-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn routes_come_from_csv_files_too_and_duplicates_are_reported_once_together() {
        let dir = temp_dir("csv");
        std::fs::write(
            dir.join("bins.csv"),
            "pan_prefix,destination,timeout_ms,mti_classes\n# Vietnam\n970400,issuer-vn,,\n970401,issuer-vn,2500,12\n",
        )
        .unwrap();
        let text = EXAMPLE.replacen(
            "drain_timeout_ms = 5000",
            "drain_timeout_ms = 5000\nroute_files = [\"bins.csv\"]",
            1,
        );
        let c = parse_in(&text, &dir).expect("valid");
        let routes = c.engine.routes.routes();
        assert_eq!(routes.len(), 7);
        let last = &routes[6];
        assert_eq!((last.timeout.as_millis(), last.mti_classes), (2500, Some(0b110)));
        // The same keys again: every repeat in one error, with the places named.
        std::fs::write(
            dir.join("bins.csv"),
            "pan_prefix,destination\n970400,issuer-vn\n970400,issuer-vn\n970400,issuer-vn\n",
        )
        .unwrap();
        let err = format!("{:#}", parse_in(&text, &dir).err().expect("duplicates refused"));
        assert!(err.contains("2 routes repeat") && err.contains("line 3 repeats route 6"), "{err}");
        for (csv, want) in [
            ("prefix,destination\n1,issuer-vn\n", "must name pan_prefix and destination"),
            ("pan_prefix,destination,colour\n1,issuer-vn,red\n", "unknown column \"colour\""),
            ("pan_prefix,destination\n12a,issuer-vn\n", "line 2"),
            ("pan_prefix,destination\n12,nobody\n", "no participant with id \"nobody\""),
            ("pan_prefix,destination,timeout_ms\n12,issuer-vn,0\n", "timeout_ms must be 1-600000"),
        ] {
            std::fs::write(dir.join("bins.csv"), csv).unwrap();
            let err = format!("{:#}", parse_in(&text, &dir).err().expect("refused"));
            assert!(err.contains(want), "{csv:?}: expected {want:?} in {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_million_routes_load_from_a_route_file() {
        // The figure (time to load) is measured by the criterion benchmark; this checks the
        // count and that nothing is quadratic enough to hang the suite.
        let dir = temp_dir("million");
        let mut csv = String::from("pan_prefix,destination\n");
        for i in 0..1_000_000u32 {
            csv.push_str(&format!("{:08},issuer-vn\n", 40_000_000 + i));
        }
        std::fs::write(dir.join("bins.csv"), csv).unwrap();
        let text = EXAMPLE.replacen(
            "drain_timeout_ms = 5000",
            "drain_timeout_ms = 5000\nroute_files = [\"bins.csv\"]",
            1,
        );
        let c = parse_in(&text, &dir).expect("valid");
        assert_eq!(c.engine.routes.routes().len(), 1_000_005);
        assert!(summary(&c).contains("... and 999955 more"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

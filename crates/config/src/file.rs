//! The shape of the TOML document. Unknown keys are errors; modes, transports, roles and
//! the in-flight policy are enums, so a misspelling names the values allowed.

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    #[serde(default)]
    pub(crate) switch: SwitchSection,
    #[serde(default, rename = "participant")]
    pub(crate) participants: Vec<ParticipantSection>,
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<RouteSection>,
    pub(crate) journal: Option<JournalSection>,
    pub(crate) cluster: Option<ClusterSection>,
    pub(crate) admin: Option<AdminSection>,
    pub(crate) qr: Option<QrSection>,
    pub(crate) clearing: Option<ClearingSection>,
    pub(crate) currency: Option<CurrencySection>,
    #[serde(default, rename = "rate")]
    pub(crate) rates: Vec<RateSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearingSection {
    /// When the business day ends: `HH:MM` and an offset (`00:00Z`, `22:00+08:00`).
    pub(crate) cutover: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QrSection {
    /// A QR network registry (the format of proto-spec/qr-networks.toml) instead of the
    /// shipped one, relative to the configuration file.
    pub(crate) networks: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CurrencySection {
    /// The currency networks settle in (DE 50): the switch fills DE 5/9/50 in it.
    pub(crate) settlement: Option<String>,
    /// TOML files of `[[rate]]` quotes, relative to the configuration file (read again on
    /// every reload).
    #[serde(default)]
    pub(crate) rate_files: Vec<String>,
}

/// A file of quotes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateFile {
    #[serde(default, rename = "rate")]
    pub(crate) rates: Vec<RateSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateSection {
    /// The quote's id (an originator names it in DE 125).
    pub(crate) quote: String,
    pub(crate) from: String,
    pub(crate) to: String,
    /// The mid rate, a decimal: one unit of `from` is this many of `to`.
    pub(crate) rate: String,
    #[serde(default)]
    pub(crate) markup_bps: u32,
    pub(crate) valid_from: toml::value::Datetime,
    pub(crate) valid_to: toml::value::Datetime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminSection {
    /// Where the admin HTTP server listens (loopback unless `allow_remote`).
    pub(crate) address: Option<String>,
    /// The bearer token every endpoint but /healthz needs, relative to the file.
    pub(crate) token_file: String,
    /// Whether an address off loopback is accepted.
    pub(crate) allow_remote: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalSection {
    /// The journal directory, relative to the configuration file.
    pub(crate) dir: String,
    /// The PAN key: 32 bytes, or 64 hex digits (and a newline), relative to the file.
    pub(crate) key_file: String,
    pub(crate) key_id: Option<u32>,
    pub(crate) group_records_max: Option<usize>,
    pub(crate) group_wait_us: Option<u64>,
    pub(crate) segment_bytes: Option<u64>,
    pub(crate) checkpoint_segments: Option<u32>,
    pub(crate) retain_hours: Option<u64>,
    pub(crate) reserve_bytes: Option<u64>,
    pub(crate) preallocate: Option<bool>,
    /// Whether checkpoints hold their outcomes many to a record (default true).
    pub(crate) compact_checkpoints: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSection {
    /// This node's name (or `corridor serve --node`, which a file shared by every node
    /// leaves this to).
    pub(crate) node: Option<String>,
    /// The NATS servers (`nats://host:port`), any of which the node may reach.
    pub(crate) nats: Vec<String>,
    /// The JetStream stream the shards' journals are replicated in.
    pub(crate) stream: Option<String>,
    /// Its copies.
    pub(crate) replicas: Option<usize>,
    /// Whether appends go compressed (default true).
    pub(crate) compress: Option<bool>,
    /// Whether the node waits, without bound, for shards another node holds (a standby).
    pub(crate) standby: Option<bool>,
    /// The cluster's nodes, by name, each with what it does not share with the others.
    #[serde(default)]
    pub(crate) nodes: std::collections::BTreeMap<String, NodeSection>,
    /// The node links' TLS (each node's certificate, `CN=<node>`, its key, the cluster's
    /// CA): required when a node takes relayed connections.
    pub(crate) relay_tls: Option<TlsSection>,
    /// This node's `[cluster.nodes.<name>] relay` (set by `cluster::for_node`).
    #[serde(skip)]
    pub(crate) relay: Option<String>,
    /// This node's `[cluster.nodes.<name>] relay_advertise` (set by `cluster::for_node`).
    #[serde(skip)]
    pub(crate) relay_advertise: Option<String>,
    /// This node's `[cluster.nodes.<name>] shards` (set by `cluster::for_node`).
    #[serde(skip)]
    pub(crate) shards: Option<Vec<u16>>,
    /// This node's `[cluster.nodes.<name>] takes_over` (set by `cluster::for_node`).
    #[serde(skip)]
    pub(crate) takes_over: Vec<u16>,
}

/// `[cluster.nodes.<name>]`: one node's own settings, over the shared ones.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeSection {
    /// Its journal directory (`[journal] dir` on this node), relative to the file.
    pub(crate) journal_dir: Option<String>,
    /// Its admin server's address (`[admin] address` on this node).
    pub(crate) admin: Option<String>,
    /// Its listening links' addresses, by link name (the link's `address` on this node).
    #[serde(default)]
    pub(crate) listen: std::collections::BTreeMap<String, String>,
    /// Whether it is a standby (`[cluster] standby` on this node).
    pub(crate) standby: Option<bool>,
    /// Where it takes the connections other nodes relay to it (partners' connections that
    /// reached a node that does not serve their participant).
    pub(crate) relay: Option<String>,
    /// Where the other nodes reach that address, when not at it (a NAT, a proxy, a load
    /// balancer in between); default: `relay` itself.
    pub(crate) relay_advertise: Option<String>,
    /// The shards it runs (a standby: the shards it waits for); default: every shard.
    pub(crate) shards: Option<Vec<u16>>,
    /// The shards it takes over while it runs, from a node that died (with `shards`).
    #[serde(default)]
    pub(crate) takes_over: Vec<u16>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchSection {
    pub(crate) institution_id: Option<String>,
    pub(crate) drain_timeout_ms: Option<u64>,
    pub(crate) reversal_retry_ms: Option<u64>,
    pub(crate) reversal_repeats_max: Option<u32>,
    pub(crate) saf_age_max_ms: Option<u64>,
    pub(crate) late_window_ms: Option<u64>,
    pub(crate) duplicate_window_ms: Option<u64>,
    pub(crate) metrics: Option<bool>,
    /// The switch's own market (ISO 3166-1 alpha-2): payments into it are inbound.
    pub(crate) market: Option<String>,
    /// Engine shards, each on a thread of its own; default: the CPUs the process may use.
    pub(crate) shards: Option<usize>,
    /// CSV files of routes (BIN tables), relative to the configuration file.
    #[serde(default)]
    pub(crate) route_files: Vec<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Acquirer,
    Issuer,
    Network,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    Listen,
    Dial,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransportKind {
    #[default]
    Tcp,
    Quic,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AtLimitSetting {
    #[default]
    Backpressure,
    Decline,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParticipantSection {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) roles: Vec<Role>,
    #[serde(default)]
    pub(crate) acquirer_ids: Vec<String>,
    #[serde(default)]
    pub(crate) forwarder_ids: Vec<String>,
    /// TLS identity: the subject common name of the participant's certificate.
    pub(crate) tls_subject_cn: Option<String>,
    /// TLS identity: SHA-256 pins (hex) of its certificates' public keys.
    #[serde(default)]
    pub(crate) tls_spki_sha256: Vec<String>,
    /// The directory: its market (ISO 3166-1 alpha-2).
    pub(crate) market: Option<String>,
    /// The directory: its currency (ISO 4217, `VND` or `704`).
    pub(crate) currency: Option<String>,
    /// The directory: other currencies it holds accounts in (a wallet may name them in
    /// DE 51).
    #[serde(default)]
    pub(crate) currencies: Vec<String>,
    /// The directory: the largest transaction it takes, a decimal in its currency.
    pub(crate) limit: Option<String>,
    /// The directory: the QR networks it runs or acquires for (registry ids).
    #[serde(default)]
    pub(crate) networks: Vec<String>,
    /// Its partnership policy: the QR networks its payments may go to, in order.
    #[serde(default)]
    pub(crate) qr_policy: Vec<String>,
    /// The shard that owns it (modulo the shard count); default: by the hash of its id.
    pub(crate) shard: Option<usize>,
    #[serde(default, rename = "link")]
    pub(crate) links: Vec<LinkSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) ca: Vec<String>,
    #[serde(default)]
    pub(crate) crl: Vec<String>,
    pub(crate) server_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkSection {
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) address: String,
    pub(crate) framing: String,
    pub(crate) dialect: String,
    pub(crate) inflight_max: Option<u32>,
    /// What an originator at its in-flight limit gets: backpressure (default) or decline.
    #[serde(default)]
    pub(crate) at_inflight_limit: AtLimitSetting,
    pub(crate) sign_on_required: Option<bool>,
    pub(crate) sign_on_timeout_ms: Option<u64>,
    pub(crate) frame_timeout_ms: Option<u64>,
    pub(crate) echo_interval_ms: Option<u64>,
    pub(crate) echo_missed_max: Option<u32>,
    pub(crate) timeouts_down_max: Option<u32>,
    pub(crate) frame_bytes_max: Option<usize>,
    pub(crate) connections_max: Option<usize>,
    pub(crate) connect_timeout_ms: Option<u64>,
    pub(crate) reconnect_min_ms: Option<u64>,
    pub(crate) reconnect_max_ms: Option<u64>,
    pub(crate) tls: Option<TlsSection>,
    #[serde(default)]
    pub(crate) transport: TransportKind,
    /// QUIC: lanes opened (dial) or accepted per connection (listen).
    pub(crate) lanes: Option<u16>,
    /// QUIC: a connection silent this long is closed.
    pub(crate) idle_timeout_ms: Option<u64>,
    /// QUIC: keep-alive interval.
    pub(crate) keep_alive_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    pub(crate) pan_prefix: Option<String>,
    pub(crate) receiver_id: Option<String>,
    /// A QR network (registry id) the payment's code carries.
    pub(crate) qr_network: Option<String>,
    /// With `qr_network`: only when its template carries this acquirer id.
    pub(crate) qr_acquirer: Option<String>,
    #[serde(default)]
    pub(crate) default: bool,
    pub(crate) mti_classes: Option<Vec<u8>>,
    pub(crate) destination: String,
    pub(crate) timeout_ms: Option<u64>,
}

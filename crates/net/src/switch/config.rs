//! What the switch's I/O is configured with: transports, listening and dialed links.

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

/// How a link's bytes travel.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TCP with mutual TLS.
    Tls(LinkTls),
    /// QUIC (its own mutual TLS 1.3), native frames on lanes.
    Quic(QuicLink),
}

impl Transport {
    /// Its name, as configurations spell it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls(_) => "tls",
            Self::Quic(_) => "quic",
        }
    }
}

/// A link the switch listens on: its peers dial in.
#[derive(Clone, Debug)]
pub struct Listen {
    /// Index of the link in the engine's configuration.
    pub spec: usize,
    /// Its name, for logs.
    pub name: String,
    /// Where to listen.
    pub address: SocketAddr,
    /// Most connections open at once on it (handshakes in progress included).
    pub connections_max: usize,
    /// TCP, TLS or QUIC.
    pub transport: Transport,
}

/// A link the switch dials, and redials with exponential backoff and jitter.
#[derive(Clone, Debug)]
pub struct Dial {
    /// Index of the link in the engine's configuration.
    pub spec: usize,
    /// Its name, for logs.
    pub name: String,
    /// Where to connect.
    pub address: SocketAddr,
    /// Longest wait for a connection to be accepted.
    pub connect_timeout: Duration,
    /// First delay before reconnecting.
    pub backoff_min: Duration,
    /// Longest delay before reconnecting.
    pub backoff_max: Duration,
    /// TCP, TLS or QUIC.
    pub transport: Transport,
}

/// The network side of the configuration.
#[derive(Clone, Debug, Default)]
pub struct NetConfig {
    /// Links to listen on.
    pub listens: Vec<Listen>,
    /// Links to dial.
    pub dials: Vec<Dial>,
    /// Longest a graceful shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// The journal's files, when the engine journals.
    pub journal: Option<crate::journal::JournalFiles>,
    /// A node of a cluster: where it takes connections other nodes relay to it, and the
    /// node links' TLS (`crate::relay`; the first shard's settings count).
    pub relay: Option<RelayServe>,
}

/// Where a node of a cluster takes relayed connections (see `crate::relay`).
#[derive(Clone, Debug)]
pub struct RelayServe {
    /// The address node links connect to.
    pub address: SocketAddr,
    /// Their TLS.
    pub tls: crate::relay::RelayTls,
    /// Where this node learns which node runs a shard it does not (the lease bucket), to
    /// carry its hops there; `None`: it runs every shard.
    pub owners: Option<OwnerLookup>,
}

/// Where the lease bucket is: which node runs which shard.
#[derive(Clone, Debug)]
pub struct OwnerLookup {
    /// The NATS servers.
    pub servers: Vec<String>,
    /// The lease bucket.
    pub bucket: String,
}

impl OwnerLookup {
    /// Lookups of who runs which shard there (one NATS connection, made at the first).
    #[must_use]
    pub fn owners(&self) -> std::sync::Arc<corridor_cluster::Owners> {
        corridor_cluster::Owners::new(self.servers.clone(), self.bucket.clone())
    }
}

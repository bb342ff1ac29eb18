//! Relays: a partner's connection on a node of a cluster that does not run its
//! participant's shard, carried to the node that does.
//!
//! Partners keep connections to two or more nodes. A connection that lands on a node that
//! does not run the participant's shard (a standby, today) is taken there as far as the
//! partner can tell — its link's TLS handshake and certificate check, at the edge — then
//! carried byte for byte over a **node link** to the node that runs the shard, which serves
//! it as a connection of that listening link: sign-on, framing, in-flight limits, its
//! answers, all the owner's, as if the partner had connected there. Nothing is decided at
//! the edge but who the partner is; nothing is kept there.
//!
//! A node link is one TCP connection per relayed connection, in mutual TLS with the
//! cluster's node certificates (`[cluster] relay_tls`: one CA; each node's certificate
//! names it, `CN=<node>`): the owner takes only a certificate of a node the configuration
//! names, the edge only the certificate of the node the lease bucket says holds the shard.
//! Before the TLS, in the clear, a header routes it (it carries nothing secret, and nothing
//! is served before the TLS has said who is at the other end):
//!
//! ```text
//! magic "CRR1" | shard u16 | name length u8 | the listening link's name
//! magic "CRH1" | shard u16 | from shard u16          (a hop, see `crate::hop::remote`)
//! ```
//!
//! The second carries a hop between two shards two nodes run: native frames both ways, as
//! a hop between two threads of one node carries them.
//!
//! The owner reads it within [`RELAY_HEADER_WAIT`] on its first shard's thread and hands
//! the socket to the shard that runs the link (its TLS handshake happens there).
//!
//! Bounded: the edge carries at most [`RELAY_CONNECTIONS_MAX`] connections at once and each
//! link's `connections_max`; the owner counts a relayed connection against its link's
//! limit as any other. When the owner goes (killed, its lease lost), every connection
//! relayed to it closes: the partner reconnects, and the edge relays it to the next owner —
//! or, once it has taken the shard over itself, serves it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tracing::debug;

use crate::{
    error::LinkError,
    tls::{client_config, peer_cert, server_config, TlsFiles},
};

/// What a node link carrying a partner's connection begins with.
const MAGIC: [u8; 4] = *b"CRR1";
/// What a node link carrying a hop between two shards begins with.
const MAGIC_HOP: [u8; 4] = *b"CRH1";
/// The ALPN a node link speaks.
const ALPN: &[u8] = b"corridor-relay/1";
/// The longest link name a header carries.
pub const LINK_NAME_MAX: usize = 64;

/// How long the owner waits for a relayed connection's header.
pub const RELAY_HEADER_WAIT: Duration = Duration::from_secs(2);
/// How long the edge waits for the owner to take a relayed connection (TCP and TLS).
pub const RELAY_CONNECT_WAIT: Duration = Duration::from_secs(2);
/// Most connections an edge relays at once.
pub const RELAY_CONNECTIONS_MAX: usize = 4_096;
/// Most relayed connections the owner reads headers of at once (the rest wait in the
/// listener's backlog).
pub const RELAY_PENDING_MAX: usize = 64;

/// A node link's TLS: both ends, and who may be at the other.
#[derive(Clone)]
pub struct RelayTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    /// The nodes the configuration names: the owner takes a certificate of one of them.
    nodes: Arc<Vec<String>>,
}

impl std::fmt::Debug for RelayTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayTls").field("nodes", &self.nodes).finish_non_exhaustive()
    }
}

impl RelayTls {
    /// The node links of a cluster whose nodes are `nodes`, with this node's certificate,
    /// key and the cluster's CA in `files`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read, or a certificate or key that cannot be used.
    pub fn new(files: &TlsFiles, nodes: Vec<String>) -> Result<Self, LinkError> {
        let (client, server_name) = client_config(files, &[ALPN])?;
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(server_config(files, &[ALPN])?),
            connector: tokio_rustls::TlsConnector::from(client),
            server_name,
            nodes: Arc::new(nodes),
        })
    }
}

/// Where a node link goes on the node that takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The shard that takes it: runs the link, or is the hop's end there.
    pub shard: u16,
    /// What it carries.
    pub what: Carried,
}

/// What a node link carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carried {
    /// A partner's connection to the listening link of this name.
    Link(String),
    /// The hop from this shard (which the dialing node runs) to the route's shard
    /// (`crate::hop::remote`).
    Hop(u16),
}

impl Route {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + LINK_NAME_MAX);
        match &self.what {
            Carried::Link(link) => {
                let name = &link.as_bytes()[..link.len().min(LINK_NAME_MAX)];
                out.extend_from_slice(&MAGIC);
                out.extend_from_slice(&self.shard.to_be_bytes());
                out.push(name.len() as u8);
                out.extend_from_slice(name);
            }
            Carried::Hop(from) => {
                out.extend_from_slice(&MAGIC_HOP);
                out.extend_from_slice(&self.shard.to_be_bytes());
                out.extend_from_slice(&from.to_be_bytes());
            }
        }
        out
    }

    /// Reads a header off `s`, within [`RELAY_HEADER_WAIT`].
    async fn read(s: &mut TcpStream) -> Result<Self, String> {
        let read = async {
            let mut head = [0u8; 6];
            s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
            let shard = u16::from_be_bytes([head[4], head[5]]);
            if head[..4] == MAGIC_HOP {
                let mut from = [0u8; 2];
                s.read_exact(&mut from).await.map_err(|e| e.to_string())?;
                let from = u16::from_be_bytes(from);
                if from == shard {
                    return Err(format!("a hop from shard {from} to itself"));
                }
                return Ok(Self { shard, what: Carried::Hop(from) });
            }
            if head[..4] != MAGIC {
                return Err("not a node link".to_owned());
            }
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
            let len = usize::from(len[0]);
            if len == 0 || len > LINK_NAME_MAX {
                return Err(format!("a link name of {len} bytes"));
            }
            let mut name = vec![0u8; len];
            s.read_exact(&mut name).await.map_err(|e| e.to_string())?;
            let link = String::from_utf8(name).map_err(|_| "a link name that is not UTF-8".to_owned())?;
            Ok(Self { shard, what: Carried::Link(link) })
        };
        tokio::time::timeout(RELAY_HEADER_WAIT, read).await.map_err(|_| "no header in time".to_owned())?
    }
}

/// A relayed connection the owner took, its header read: the socket, for the shard that
/// runs its link.
#[derive(Debug)]
pub struct Relayed {
    /// The socket, TLS not yet begun.
    pub stream: std::net::TcpStream,
    /// Where it goes.
    pub route: Route,
    /// The edge's address, for logs.
    pub peer: SocketAddr,
}

/// The owner's side: the header read off a connection a node link listener accepted.
///
/// # Errors
///
/// Not a header in time.
pub async fn accept_route(mut s: TcpStream, peer: SocketAddr) -> Result<Relayed, String> {
    let route = Route::read(&mut s).await?;
    let stream = s.into_std().map_err(|e| e.to_string())?;
    Ok(Relayed { stream, route, peer })
}

/// The owner's side, on the shard that runs the link: the node link's TLS, and the edge's
/// certificate checked against the cluster's nodes. The stream to serve as a connection of
/// the link, and the edge's node name.
///
/// # Errors
///
/// The handshake fails or times out, or the certificate is not a node's.
pub async fn accept_tls(
    tls: &RelayTls,
    stream: std::net::TcpStream,
    wait: Duration,
) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, String), String> {
    let stream = TcpStream::from_std(stream).map_err(|e| e.to_string())?;
    let s = tokio::time::timeout(wait, tls.acceptor.accept(stream))
        .await
        .map_err(|_| "the node link's TLS handshake timed out".to_owned())?
        .map_err(|e| format!("the node link's TLS handshake: {e}"))?;
    let node = node_of(s.get_ref().1.peer_certificates())?;
    if !tls.nodes.contains(&node) {
        return Err(format!("a certificate of {node:?}, not one of the cluster's nodes"));
    }
    Ok((s, node))
}

/// The node name a verified certificate chain's leaf carries (`CN=<node>`).
fn node_of(chain: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Result<String, String> {
    let leaf = chain.and_then(|c| c.first()).ok_or_else(|| "no certificate".to_owned())?;
    peer_cert(leaf)
        .map_err(|e| e.to_string())?
        .subject_cn
        .ok_or_else(|| "a certificate without a name".to_owned())
}

/// The edge's side: a node link to `owner` (node `node` at `address`) for `route`, its TLS
/// done and the owner's certificate checked to be `node`'s.
///
/// # Errors
///
/// The owner cannot be reached in [`RELAY_CONNECT_WAIT`], or is not who the lease bucket
/// says.
pub async fn connect(
    tls: &RelayTls,
    node: &str,
    address: SocketAddr,
    route: &Route,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let go = async {
        let mut s = TcpStream::connect(address).await.map_err(|e| format!("{address}: {e}"))?;
        let _ = s.set_nodelay(true);
        s.write_all(&route.encode()).await.map_err(|e| e.to_string())?;
        let s = tls
            .connector
            .connect(tls.server_name.clone(), s)
            .await
            .map_err(|e| format!("the node link's TLS handshake: {e}"))?;
        let theirs = node_of(s.get_ref().1.peer_certificates())?;
        if theirs != node {
            return Err(format!("{address} is {theirs:?}, not {node:?}, which holds the shard"));
        }
        Ok(s)
    };
    tokio::time::timeout(RELAY_CONNECT_WAIT, go).await.map_err(|_| format!("{address}: no answer in time"))?
}

/// Carries bytes both ways between `a` and `b` until either end closes (then both are).
pub async fn carry<A, B>(mut a: A, mut b: B) -> (u64, u64)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut a, &mut b).await {
        Ok(n) => n,
        Err(e) => {
            debug!(error = %e, "relayed connection ended");
            (0, 0)
        }
    }
}

/// A warning a peer can trigger, said at most once an interval with the count left out
/// ([`crate::switch::LogEvery`]), shared by the tasks that may say it.
#[derive(Default)]
pub struct Throttle(std::sync::Mutex<crate::switch::LogEvery>);

impl Throttle {
    /// `Some(left out since the last)` when it may be said now.
    pub fn hit(&self) -> Option<u64> {
        self.0.lock().ok()?.hit()
    }
}

/// The edge: takes partners' connections on `listens` — each with the shard that runs its
/// link — and relays each to the node `owner` says holds that shard (its name and node link
/// address), until `stop`. A TLS link's handshake and certificate check happen here, as on
/// the owner; so do a QUIC link's, and each lane a QUIC connection opens is carried on a
/// node link of its own. Every address is bound before it returns: `Err` names the first
/// that cannot be.
///
/// # Errors
///
/// A listening address that cannot be bound.
pub async fn front<F, Fut>(
    listens: Vec<(crate::switch::Listen, u16)>,
    tls: RelayTls,
    owner: F,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>>
where
    F: Fn(u16) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<(String, SocketAddr)>> + Send + 'static,
{
    let edge = Edge {
        tls,
        owner,
        stop,
        total: Arc::new(tokio::sync::Semaphore::new(RELAY_CONNECTIONS_MAX)),
        said: Arc::new(Throttle::default()),
    };
    let mut tcp = Vec::new();
    let mut quic = Vec::new();
    for (l, shard) in listens {
        let cannot = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("link {}: cannot listen on {}: {e}", l.name, l.address))
        };
        if let crate::switch::Transport::Quic(q) = &l.transport {
            let crate::quic::QuicSide::Server(server) = &q.side else { continue };
            let endpoint = crate::quic::endpoint(l.address, Some(server.clone())).map_err(cannot)?;
            tracing::info!(link = %l.name, address = %endpoint.local_addr()?, shard, "relaying the link's lanes to the node that serves it");
            quic.push((l.clone(), shard, endpoint, q.clone()));
            continue;
        }
        let listener = tokio::net::TcpListener::bind(l.address).await.map_err(cannot)?;
        tracing::info!(link = %l.name, address = %listener.local_addr()?, shard, "relaying the link's connections to the node that serves it");
        tcp.push((l, shard, listener));
    }
    let mut tasks = Vec::new();
    for (l, shard, endpoint, link) in quic {
        tasks.push(tokio::spawn(edge.clone().quic(l, shard, endpoint, link)));
    }
    for (l, shard, listener) in tcp {
        tasks.push(tokio::spawn(edge.clone().tcp(l, shard, listener)));
    }
    Ok(tasks)
}

/// What every connection at the edge shares: the node links' TLS, who serves which shard,
/// the stop, the edge's bound on connections and its throttled warnings.
#[derive(Clone)]
struct Edge<F> {
    tls: RelayTls,
    owner: F,
    stop: tokio_util::sync::CancellationToken,
    total: Arc<tokio::sync::Semaphore>,
    said: Arc<Throttle>,
}

impl<F, Fut> Edge<F>
where
    F: Fn(u16) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<(String, SocketAddr)>> + Send + 'static,
{
    /// A TCP or TLS link: each connection within the link's connection limit (and the
    /// edge's) taken through its handshake (see [`Edge::partner`]) and carried to the owner.
    async fn tcp(self, l: crate::switch::Listen, shard: u16, listener: tokio::net::TcpListener) {
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        loop {
            let (s, peer) = tokio::select! {
                () = self.stop.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let permit = Arc::clone(&self.total).try_acquire_owned().ok();
            let here = open.load(std::sync::atomic::Ordering::Relaxed);
            let Some(permit) = permit.filter(|_| here < l.connections_max) else {
                if let Some(left_out) = self.said.hit() {
                    tracing::warn!(link = %l.name, %peer, left_out, "relay: at its connection limit: closed");
                }
                continue;
            };
            open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (edge, open, l) = (self.clone(), Arc::clone(&open), l.clone());
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(partner) = edge.partner(s, peer, &l).await {
                    edge.carry_to_owner(partner, &l, shard).await;
                }
                open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            });
        }
    }

    /// A QUIC link: each connection authenticated as the owner would (its link's connection
    /// limit, the lanes the transport allows), each lane it opens carried to the owner on a
    /// node link of its own, where it is one of the link's lanes.
    async fn quic(
        self,
        l: crate::switch::Listen,
        shard: u16,
        endpoint: quinn::Endpoint,
        link: crate::quic::QuicLink,
    ) {
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        loop {
            let incoming = tokio::select! {
                () = self.stop.cancelled() => break,
                i = endpoint.accept() => match i {
                    Some(i) => i,
                    None => break,
                },
            };
            if open.load(std::sync::atomic::Ordering::Relaxed) >= l.connections_max {
                incoming.refuse();
                if let Some(left_out) = self.said.hit() {
                    tracing::warn!(link = %l.name, left_out, "relay: at its connection limit: refused");
                }
                continue;
            }
            open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (edge, l, link, open) = (self.clone(), l.clone(), link.clone(), Arc::clone(&open));
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(crate::limits::TLS_HANDSHAKE_MAX, async {
                    incoming.accept()?.await
                });
                if let Ok(Ok(conn)) = handshake.await {
                    match link.authorize(&conn) {
                        Ok(_) => edge.lanes(&conn, &l, shard).await,
                        Err(e) => {
                            conn.close(quinn::VarInt::from_u32(1), b"wrong participant");
                            if let Some(left_out) = edge.said.hit() {
                                tracing::warn!(link = %l.name, error = %e, left_out, "relay: connection refused: wrong participant");
                            }
                        }
                    }
                }
                open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            });
        }
        endpoint.close(quinn::VarInt::from_u32(0), b"relay stopped");
    }

    /// Each lane of QUIC connection `conn`, carried to the owner, until the connection ends.
    async fn lanes(&self, conn: &quinn::Connection, l: &crate::switch::Listen, shard: u16) {
        loop {
            let (send, recv) = tokio::select! {
                () = self.stop.cancelled() => break,
                r = conn.accept_bi() => match r {
                    Ok(s) => s,
                    Err(_) => break,
                },
            };
            let Ok(permit) = Arc::clone(&self.total).try_acquire_owned() else {
                if let Some(left_out) = self.said.hit() {
                    tracing::warn!(link = %l.name, left_out, "relay: at its connection limit: lane closed");
                }
                continue;
            };
            let (edge, l) = (self.clone(), l.clone());
            tokio::spawn(async move {
                let _permit = permit;
                edge.carry_to_owner(Box::new(tokio::io::join(recv, send)), &l, shard).await;
            });
        }
        conn.close(quinn::VarInt::from_u32(0), b"relay stopped");
    }

    /// A partner's TCP connection through its link's handshake (a TLS link's certificate
    /// checked as the owner would); `None` when it is refused.
    async fn partner(
        &self,
        s: TcpStream,
        peer: SocketAddr,
        l: &crate::switch::Listen,
    ) -> Option<Box<dyn Stream>> {
        let _ = s.set_nodelay(true);
        match &l.transport {
            crate::switch::Transport::Tcp => Some(Box::new(s)),
            crate::switch::Transport::Tls(link) => {
                let crate::tls::TlsSide::Accept(acceptor) = &link.side else { return None };
                let accepted =
                    tokio::time::timeout(crate::limits::TLS_HANDSHAKE_MAX, acceptor.accept(s)).await;
                let Ok(Ok(mut t)) = accepted else {
                    debug!(link = %l.name, %peer, "relay: TLS handshake refused or timed out");
                    return None;
                };
                if let Err(e) = link.authorize(t.get_ref().1.peer_certificates()) {
                    // As the owner refuses one: close_notify, then the close, before any data.
                    if let Some(left_out) = self.said.hit() {
                        tracing::warn!(link = %l.name, %peer, error = %e, left_out, "relay: connection refused: wrong participant");
                    }
                    t.get_mut().1.send_close_notify();
                    let _ = t.shutdown().await;
                    return None;
                }
                Some(Box::new(t))
            }
            crate::switch::Transport::Quic(_) => None,
        }
    }

    /// Carries `partner` (its link's handshake done) to the node `owner` says serves `shard`.
    async fn carry_to_owner(&self, partner: Box<dyn Stream>, l: &crate::switch::Listen, shard: u16) {
        let Some((node, address)) = (self.owner)(shard).await else {
            if let Some(left_out) = self.said.hit() {
                tracing::warn!(link = %l.name, shard, left_out, "relay: no node serves the shard now: closed (the partner tries again)");
            }
            return;
        };
        let route = Route { shard, what: Carried::Link(l.name.clone()) };
        let node_link = match connect(&self.tls, &node, address, &route).await {
            Ok(n) => n,
            Err(e) => {
                if let Some(left_out) = self.said.hit() {
                    tracing::warn!(link = %l.name, node, error = e, left_out, "relay: the node that serves it does not take it: closed");
                }
                return;
            }
        };
        debug!(link = %l.name, node, "relaying a connection");
        tokio::select! {
            _ = carry(partner, node_link) => {}
            () = self.stop.cancelled() => {}
        }
    }
}

/// A byte stream both ways (a partner's socket, plain or in TLS).
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_header_reads_back_and_anything_else_is_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        for route in [
            Route { shard: 3, what: Carried::Link("wallet-1".into()) },
            Route { shard: 3, what: Carried::Hop(1) },
        ] {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&route.encode()).await.unwrap();
            let (s, peer) = l.accept().await.unwrap();
            assert_eq!(accept_route(s, peer).await.unwrap().route, route);
        }
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            &b"CRR1\x00\x01\x00"[..],
            &b"CRR1\x00\x01\x41"[..],
            &b"CRH1\x00\x01\x00\x01"[..],
        ] {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(bad).await.unwrap();
            let (s, peer) = l.accept().await.unwrap();
            assert!(accept_route(s, peer).await.is_err(), "{bad:?}");
            drop(c);
        }
    }
}

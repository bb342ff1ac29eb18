//! Connections other nodes of a cluster relay here (`crate::relay`): the node link
//! listener on the first shard's thread reads each one's header and hands the socket to the
//! shard that runs its link, which takes it as a connection of that listening link (a
//! lane, for a QUIC link) — its TLS with the edge's node certificate first, then the
//! link's connection limit, then the engine, exactly as an accepted connection.

#[allow(clippy::wildcard_imports)] // the module's own parts
use super::*;

use crate::relay::{self, RelayTls, Relayed, Throttle, RELAY_PENDING_MAX};

/// Takes node links on `listener` until the switch stops: at most [`RELAY_PENDING_MAX`]
/// headers read at once, refusals logged at most once an interval.
pub(super) async fn relay_loop(listener: TcpListener, tls: RelayTls, handle: Handle) {
    let pending = Arc::new(tokio::sync::Semaphore::new(RELAY_PENDING_MAX));
    let refused = Arc::new(Throttle::default());
    let stop = handle.shutdown();
    loop {
        let (s, peer) = tokio::select! {
            () = stop.wait() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "relay: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            if let Some(left_out) = refused.hit() {
                warn!(%peer, left_out, max = RELAY_PENDING_MAX, "relay: too many node links opening at once: closed");
            }
            continue;
        };
        let (tls, handle, refused) = (tls.clone(), handle.clone(), Arc::clone(&refused));
        tokio::spawn(async move {
            let _permit = permit;
            let why = match relay::accept_route(s, peer).await {
                Ok(r) => {
                    let route = r.route.clone();
                    if handle.relay_to_shard(r, tls) {
                        return;
                    }
                    format!("no shard {} to take it ({:?}), or its queue is full", route.shard, route.what)
                }
                Err(e) => e,
            };
            if let Some(left_out) = refused.hit() {
                warn!(%peer, error = why, left_out, "relay: a node link refused");
            }
        });
    }
}

/// Serves relayed connection `r` as a connection of the listening link its header names.
pub(super) async fn relayed(shared: Rc<Shared>, r: Relayed, tls: RelayTls) {
    let Relayed { stream, route, peer } = r;
    let name = match route.what {
        relay::Carried::Link(name) => name,
        relay::Carried::Hop(from) => return hop_relayed(shared, stream, from, peer, &tls).await,
    };
    let found = shared.loops.borrow().values().find_map(|c| match c {
        LoopCtl::Listen(l, ..) if l.borrow().name == name => Some(l.borrow().clone()),
        _ => None,
    });
    let Some(l) = found else {
        return warn!(link = name, %peer, "relay: a connection for a link this node does not listen on: closed");
    };
    if !accepting(&shared).await {
        return debug!(link = l.name, %peer, "relay: not taking connections now: closed");
    }
    let (s, node) = match relay::accept_tls(&tls, stream, TLS_HANDSHAKE_MAX).await {
        Ok(x) => x,
        Err(e) => return warn!(link = l.name, %peer, error = e, "relay: node link refused"),
    };
    // A QUIC link's limit counts its connections, which the edge holds (and their lanes,
    // which its transport bounds); every other link's, its connections here.
    let quic = matches!(l.transport, Transport::Quic(_));
    if !quic && shared.open_on(l.spec) >= l.connections_max {
        return warn!(
            link = l.name,
            node,
            max = l.connections_max,
            "relay: link at its connection limit: closed"
        );
    }
    let Some(link) = shared.input(|e| e.link_up(l.spec, Instant::now())) else {
        return warn!(link = l.name, node, "relay: switch at its link limit: closed");
    };
    info!(link = l.name, node, %peer, id = %link, "connection relayed by another node");
    let conn = register(&shared, link, l.spec);
    let (rd, wr) = tokio::io::split(s);
    connection(shared, link, conn, rd, wr, Reports::OnFlush).await;
}

/// Serves a node link that carries the hop from shard `from`, which another node runs: its
/// TLS with that node's certificate, which must be the node the lease bucket says runs
/// `from` (a deposed owner's is refused), then the hop (`crate::hop::over_node_link`).
async fn hop_relayed(
    shared: Rc<Shared>,
    stream: std::net::TcpStream,
    from: u16,
    peer: SocketAddr,
    tls: &RelayTls,
) {
    let spec = hop_spec(&shared.engine.borrow(), usize::from(from));
    let (Some(spec), Some(links)) = (spec, shared.node_links.clone()) else {
        return warn!(from, %peer, "relay: a hop from a shard this one reaches no other node for: closed");
    };
    if !accepting(&shared).await {
        return debug!(from, %peer, "relay: not taking hops now: closed");
    }
    let (s, node) = match relay::accept_tls(tls, stream, TLS_HANDSHAKE_MAX).await {
        Ok(x) => x,
        Err(e) => {
            if let Some(left_out) = links.said.hit() {
                warn!(from, %peer, error = e, left_out, "relay: hop refused");
            }
            return;
        }
    };
    match links.owners.of(from).await {
        Some((owner, _)) if owner == node => {}
        owner => {
            if let Some(left_out) = links.said.hit() {
                let owner = owner.map(|o| o.0);
                warn!(
                    from,
                    node,
                    ?owner,
                    left_out,
                    "relay: a hop from a node that does not run the shard: closed"
                );
            }
            return;
        }
    }
    let why = crate::hop::over_node_link(&shared, spec, from, &node, s, &links).await;
    if let Some(left_out) = links.said.hit() {
        warn!(from, node, why, left_out, "hop from another node closed");
    }
}

/// Whether the shard takes connections now: a node taking the shard over takes them once
/// its journal is replicated, as its accept loops do — waited for within the node link's
/// own handshake time.
pub(crate) async fn accepting(shared: &Shared) -> bool {
    tokio::time::timeout(TLS_HANDSHAKE_MAX, shared.start.opened()).await.is_ok()
        && !shared.stop.is_cancelled()
}

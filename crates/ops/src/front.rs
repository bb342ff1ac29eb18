//! A node of a cluster waiting for its shards (a standby, a node starting while another
//! holds them) is a partner's node all the same: it listens on its listening links and
//! relays each connection to the node that serves the participant's shard
//! (`corridor_net::relay`), found in the lease bucket. On its own thread and runtime — the
//! start-up it runs beside blocks while it waits for leases — until it has its shards: then
//! it stops, closing what it relays (the partners reconnect, to it), and the switch takes
//! the addresses.

use std::{sync::Arc, time::Duration};

use corridor_config::Loaded;
use tokio_util::sync::CancellationToken;

/// How long a front may take to bind its addresses.
const FRONT_START_MAX: Duration = Duration::from_secs(10);

/// Whose listening links a front relays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Relaying {
    /// Every shard's: the node waits for its shards.
    Waiting,
    /// Those of this shard, which another node runs.
    Shard(u16),
}

/// A running front; dropping it stops it (and frees its addresses) before returning.
pub(crate) struct Front {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a front relays, and where it learns to whom.
pub(crate) struct FrontPlan {
    listens: Vec<(corridor_net::Listen, u16)>,
    tls: corridor_net::relay::RelayTls,
    owners: corridor_net::OwnerLookup,
}

impl Front {
    /// What the front of a node whose configuration has relays relays: the listening links
    /// of every shard (`Waiting`: the node has none yet) or of one shard another node runs
    /// (`Shard`: beside its switch, until it stops or the node takes that shard over);
    /// `None` when there is nothing to relay.
    pub(crate) fn plan(loaded: &Loaded, of: Relaying) -> Option<FrontPlan> {
        let (Some(c), Some(relay)) = (&loaded.cluster, &loaded.net.relay) else { return None };
        let tls = relay.tls.clone();
        let plan = corridor_engine::shards::ShardPlan::new(loaded.shards.max(1), &loaded.engine);
        let listens: Vec<(corridor_net::Listen, u16)> = loaded
            .net
            .listens
            .iter()
            .filter_map(|l| {
                let participant = loaded.engine.links.get(l.spec)?.participant;
                let shard = *plan.owner.get(participant)?;
                let relayed = match of {
                    Relaying::Waiting => true,
                    Relaying::Shard(k) => usize::from(k) == shard && !c.runs(shard),
                };
                Some((l.clone(), u16::try_from(shard).ok()?)).filter(|_| relayed)
            })
            .collect();
        if listens.is_empty() {
            return None;
        }
        Some(FrontPlan { listens, tls, owners: crate::startup::owner_lookup(c) })
    }

    /// Starts the front `plan` describes.
    ///
    /// # Errors
    ///
    /// Its runtime cannot start, or an address cannot be bound.
    pub(crate) fn start(plan: FrontPlan) -> std::io::Result<Self> {
        let FrontPlan { listens, tls, owners } = plan;
        let stop = CancellationToken::new();
        let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
        let until = stop.clone();
        let thread = std::thread::Builder::new().name("corridor-front".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(ready_tx.send(Err(e))),
            };
            rt.block_on(async move {
                let owners = owners.owners();
                let owner = move |shard| {
                    let o = Arc::clone(&owners);
                    async move { o.of(shard).await }
                };
                match corridor_net::relay::front(listens, tls, owner, until.clone()).await {
                    Ok(tasks) => {
                        let _ = ready_tx.send(Ok(()));
                        until.cancelled().await;
                        tasks.iter().for_each(tokio::task::JoinHandle::abort);
                    }
                    Err(e) => drop(ready_tx.send(Err(e))),
                }
            });
            // The runtime goes with every connection it relays: the addresses are free.
        })?;
        ready
            .recv_timeout(FRONT_START_MAX)
            .map_err(|_| std::io::Error::other("the front did not start"))??;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! A switch on a thread of its own, on a current-thread runtime as `corridor serve` runs
//! it: for the demo, the load tool and the end-to-end tests.

use std::{net::SocketAddr, thread::JoinHandle, time::Duration};

use corridor_engine::Engine;

use crate::{
    handle::Handle,
    switch::{NetConfig, Report, ShardParts, Switch},
};

/// Longest [`Running::start`] waits for the switch to bind.
const START_WAIT: Duration = Duration::from_secs(10);

/// A running switch; dropping it drains and stops it.
pub struct Running {
    addrs: Vec<(String, SocketAddr)>,
    handle: Handle,
    thread: Option<JoinHandle<std::io::Result<Report>>>,
}

impl Running {
    /// Binds and starts a switch (listening links may use port 0).
    ///
    /// # Errors
    ///
    /// The runtime cannot start or a listening address cannot be bound.
    pub fn start(engine: Engine, net: NetConfig) -> std::io::Result<Self> {
        Self::start_shards(vec![ShardParts { shard: 0, engine, net }])
    }

    /// Binds and starts a switch of `parts.len()` shards (see [`Switch::bind_shards`]).
    ///
    /// # Errors
    ///
    /// The runtime cannot start or a listening address cannot be bound.
    pub fn start_shards(parts: Vec<ShardParts>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("corridor-switch".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let switch = match Switch::bind_shards(parts).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return Err(e);
                    }
                };
                let _ = tx.send(Ok((switch.local_addrs(), switch.handle())));
                switch.run(std::future::pending()).await
            })
        })?;
        let (addrs, handle) = rx
            .recv_timeout(START_WAIT)
            .map_err(|_| std::io::Error::other("the switch did not start"))?
            .map_err(std::io::Error::other)?;
        Ok(Self { addrs, handle, thread: Some(thread) })
    }

    /// The bound address of each listening link, by name (port 0 becomes the real port).
    #[must_use]
    pub fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// The bound address of listening link `name`.
    #[must_use]
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// The switch's handle.
    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Drains and stops the switch, and returns what it reports.
    ///
    /// # Errors
    ///
    /// The switch failed, or its thread panicked.
    pub fn stop(mut self) -> std::io::Result<Report> {
        self.shutdown().unwrap_or_else(|| Err(std::io::Error::other("the switch was already stopped")))
    }

    fn shutdown(&mut self) -> Option<std::io::Result<Report>> {
        self.handle.shutdown().trigger();
        let t = self.thread.take()?;
        Some(t.join().unwrap_or_else(|_| Err(std::io::Error::other("the switch thread panicked"))))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

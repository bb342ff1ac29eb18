//! A QUIC peer for end-to-end tests (quinn): a partner that dials the switch, or an issuer
//! the switch dials, speaking native frames on lanes.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::BytesMut;
use corridor_config::certs::Issued;
use corridor_wire::{Dialect, Message, NativeFramer, OwnedMessage, FRAME_BYTES_MAX};
use quinn::{crypto::rustls::QuicClientConfig, Connection, Endpoint, RecvStream, SendStream};

/// Connects to the switch's QUIC link at `addr` trusting `ca_pem`, presenting `client`.
///
/// # Errors
///
/// The handshake failed (the text says why).
pub async fn connect(addr: SocketAddr, ca_pem: &str, client: Option<&Issued>) -> Result<Connection, String> {
    let mut tls = (*crate::tls::client_config(ca_pem, client)).clone();
    tls.alpn_protocols = vec![corridor_net::quic::ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(Arc::new(tls)).map_err(|e| e.to_string())?;
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("addr")).map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = endpoint.connect(addr, "localhost").map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())
}

/// A QUIC endpoint serving `cert`/`key` (files), requiring client certificates from `ca`.
///
/// # Panics
///
/// If the files do not load or loopback cannot be bound.
#[must_use]
pub fn server(cert: &std::path::Path, key: &std::path::Path, ca: &std::path::Path) -> Endpoint {
    let files = corridor_net::TlsFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
        ca: vec![ca.to_owned()],
        crl: vec![],
        server_name: None,
    };
    let tls = corridor_net::tls::server_config(&files, &[corridor_net::quic::ALPN]).expect("server TLS");
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC TLS");
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("bind")
}

/// One lane: a bidirectional stream carrying native frames.
pub struct Lane {
    /// Its sending half.
    pub send: SendStream,
    recv: RecvStream,
    buf: BytesMut,
}

impl Lane {
    /// Opens a lane on `conn`.
    ///
    /// # Errors
    ///
    /// The connection is gone.
    pub async fn open(conn: &Connection) -> Result<Self, String> {
        let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        Ok(Self { send, recv, buf: BytesMut::new() })
    }

    /// Accepts the next lane the peer opens.
    ///
    /// # Errors
    ///
    /// The connection is gone.
    pub async fn accept(conn: &Connection) -> Result<Self, String> {
        let (send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        Ok(Self { send, recv, buf: BytesMut::new() })
    }

    /// Sends `m` with `correlation`.
    ///
    /// # Errors
    ///
    /// The stream or connection is gone.
    pub async fn send(&mut self, correlation: u64, m: &OwnedMessage) -> Result<(), String> {
        let body = m.to_bytes(Dialect::Native).map_err(|e| e.to_string())?;
        let mut out = BytesMut::new();
        NativeFramer::new(FRAME_BYTES_MAX)
            .encode(0, correlation, &body, &mut out)
            .map_err(|e| e.to_string())?;
        self.send.write_all(&out).await.map_err(|e| e.to_string())
    }

    /// The next message within `wait` (`Ok(None)`: nothing came).
    ///
    /// # Errors
    ///
    /// The stream or connection failed, or a frame did not decode.
    pub async fn recv(&mut self, wait: Duration) -> Result<Option<(u64, OwnedMessage)>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(f) =
                NativeFramer::new(FRAME_BYTES_MAX).decode(&mut self.buf).map_err(|e| e.to_string())?
            {
                let m = Message::parse(Dialect::Native, f.body().to_vec()).map_err(|e| e.to_string())?;
                return Ok(Some((f.correlation(), OwnedMessage::from(&m))));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.recv.read(&mut chunk)).await {
                Err(_) => return Ok(None),
                Ok(Ok(Some(n))) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Ok(None)) => return Err("lane finished".into()),
                Ok(Err(e)) => return Err(e.to_string()),
            }
        }
    }
}

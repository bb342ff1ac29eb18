//! QUIC links (quinn): mutual TLS 1.3 with ALPN `corridor/1`, no 0-RTT (payment messages
//! must not be replayable), and native frames on long-lived bidirectional streams — lanes —
//! as `proto-spec/SPEC.md` specifies. Each lane is a link to the engine: it signs on, is
//! echoed, carries requests and their responses (a response goes back on the lane its request
//! came on), and one stalled or lost lane never blocks the others.
//!
//! Every window and limit is set here, explicitly: lanes per connection, stream and
//! connection flow-control windows, no unidirectional streams, no datagrams, and the UDP
//! socket's buffers.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use quinn::{crypto::rustls::QuicClientConfig, crypto::rustls::QuicServerConfig, Endpoint, VarInt};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::{
    error::LinkError,
    tls::{client_config, server_config, Identity, PeerCert, TlsFiles},
};

/// The application protocol a Corridor QUIC connection negotiates.
pub const ALPN: &[u8] = b"corridor/1";

/// Most lanes one connection may have.
pub const LANES_MAX: u16 = 64;

/// Bytes a lane may have in flight toward the receiver before it must read (per stream).
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;

/// UDP socket buffer size asked of the kernel, each way.
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// How a QUIC link behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuicSettings {
    /// Dialing: lanes opened; listening: lanes a peer may open.
    pub lanes: u16,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval (below the idle timeout).
    pub keep_alive: Duration,
}

impl Default for QuicSettings {
    fn default() -> Self {
        Self { lanes: 4, idle_timeout: Duration::from_secs(30), keep_alive: Duration::from_secs(5) }
    }
}

impl QuicSettings {
    fn transport(&self) -> Result<quinn::TransportConfig, LinkError> {
        let mut t = quinn::TransportConfig::default();
        let lanes = u32::from(self.lanes.clamp(1, LANES_MAX));
        t.max_concurrent_bidi_streams(VarInt::from_u32(lanes))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
            .receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES.saturating_mul(lanes)))
            .send_window(u64::from(STREAM_WINDOW_BYTES) * u64::from(lanes))
            .datagram_receive_buffer_size(None)
            .ack_frequency_config(Some({
                let mut a = quinn::AckFrequencyConfig::default();
                a.ack_eliciting_threshold(VarInt::from_u32(16));
                a
            }))
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(
                self.idle_timeout
                    .try_into()
                    .map_err(|_| LinkError::Settings("idle timeout too long".into()))?,
            ));
        Ok(t)
    }
}

/// Which end a QUIC link is.
#[derive(Clone)]
pub enum QuicSide {
    /// A listening link: the switch serves.
    Server(quinn::ServerConfig),
    /// A dialed link, with the name the server's certificate must carry.
    Client(quinn::ClientConfig, String),
}

/// A QUIC link's configuration, ready to use.
#[derive(Clone)]
pub struct QuicLink {
    /// Server or client.
    pub side: QuicSide,
    /// Who must be on the other end.
    pub identity: Identity,
    /// Lanes, timeouts.
    pub settings: QuicSettings,
}

impl std::fmt::Debug for QuicLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicLink")
            .field("identity", &self.identity)
            .field("settings", &self.settings)
            .finish()
    }
}

impl QuicLink {
    /// A QUIC link listening (`dial == false`) or dialing, whose peer must be `identity`.
    ///
    /// # Errors
    ///
    /// As the TLS configuration; an identity that names nothing; settings out of range.
    pub fn new(
        files: &TlsFiles,
        dial: bool,
        identity: Identity,
        settings: QuicSettings,
    ) -> Result<Self, LinkError> {
        identity.require("QUIC")?;
        if settings.lanes == 0 || settings.lanes > LANES_MAX {
            return Err(LinkError::Settings(format!("lanes must be 1-{LANES_MAX}")));
        }
        if settings.keep_alive >= settings.idle_timeout {
            return Err(LinkError::Settings("keep_alive_ms must be below idle_timeout_ms".into()));
        }
        let transport = Arc::new(settings.transport()?);
        if dial {
            let (tls, name) = client_config(files, &[ALPN])?;
            let crypto = QuicClientConfig::try_from(tls).map_err(|e| LinkError::config("QUIC client", e))?;
            let mut c = quinn::ClientConfig::new(Arc::new(crypto));
            c.transport_config(transport);
            let name = match name {
                ServerName::DnsName(d) => d.as_ref().to_owned(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(ip).to_string(),
                _ => "localhost".to_owned(),
            };
            Ok(Self { side: QuicSide::Client(c, name), identity, settings })
        } else {
            // rustls's default max_early_data_size is 0: the server never accepts 0-RTT.
            let tls = server_config(files, &[ALPN])?;
            let crypto = QuicServerConfig::try_from(tls).map_err(|e| LinkError::config("QUIC server", e))?;
            let mut s = quinn::ServerConfig::with_crypto(Arc::new(crypto));
            s.transport_config(transport);
            // A peer must prove its address before the switch keeps state for it.
            s.migration(false);
            Ok(Self { side: QuicSide::Server(s), identity, settings })
        }
    }

    /// Checks a connection's verified peer chain against the link's identity.
    ///
    /// # Errors
    ///
    /// No certificate, or one of somebody else.
    pub fn authorize(&self, conn: &quinn::Connection) -> Result<PeerCert, LinkError> {
        let chain = conn.peer_identity().and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok());
        self.identity.authorize(chain.as_deref().map(Vec::as_slice))
    }
}

/// A UDP endpoint on `addr` with the socket buffers set, serving `server` if given.
///
/// # Errors
///
/// The address cannot be bound. Must be called inside a tokio runtime.
pub fn endpoint(addr: SocketAddr, server: Option<quinn::ServerConfig>) -> std::io::Result<Endpoint> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps these at its own maximum.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    Endpoint::new(quinn::EndpointConfig::default(), server, socket.into(), runtime)
}

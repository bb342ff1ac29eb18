//! The errors of setting up a link's security and of authenticating its peer.

use std::{fmt, path::PathBuf};

use crate::tls::PeerCert;

/// Why a link's TLS or QUIC configuration cannot be built, or its peer is refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkError {
    /// A certificate, key, CA or CRL file that cannot be read or holds nothing usable.
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Mutual TLS needs at least one CA to verify the peer with.
    NoCa,
    /// rustls or quinn refused the configuration.
    Config {
        /// What was being built.
        what: &'static str,
        /// Their reason.
        reason: String,
    },
    /// A server name that is neither a DNS name nor an address.
    ServerName(String),
    /// A participant with TLS or QUIC links but no certificate identity.
    NoIdentity {
        /// The participant.
        participant: String,
        /// `TLS` or `QUIC`.
        transport: &'static str,
    },
    /// Link settings out of range.
    Settings(String),
    /// The peer presented no certificate.
    NoCertificate,
    /// A peer certificate that does not parse.
    BadCertificate(String),
    /// A verified certificate of somebody else.
    WrongParticipant {
        /// What the certificate says.
        peer: PeerCert,
        /// The participant the link belongs to.
        participant: String,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::NoCa => f.write_str("mutual TLS needs at least one CA (`ca`)"),
            Self::Config { what, reason } => write!(f, "{what}: {reason}"),
            Self::ServerName(name) => write!(f, "server name `{name}` is not a DNS name or an address"),
            Self::NoIdentity { participant, transport } => write!(
                f,
                "participant {participant} has {transport} links but no certificate identity (tls_subject_cn or tls_spki_sha256)"
            ),
            Self::Settings(s) => f.write_str(s),
            Self::NoCertificate => f.write_str("the peer presented no certificate"),
            Self::BadCertificate(e) => write!(f, "peer certificate: {e}"),
            Self::WrongParticipant { peer, participant } => {
                write!(f, "certificate {peer} is not participant {participant}'s")
            }
        }
    }
}

impl std::error::Error for LinkError {}

impl LinkError {
    pub(crate) fn file(path: &std::path::Path, reason: impl fmt::Display) -> Self {
        Self::File { path: path.to_owned(), reason: reason.to_string() }
    }

    pub(crate) fn config(what: &'static str, reason: impl fmt::Display) -> Self {
        Self::Config { what, reason: reason.to_string() }
    }
}

/// Why a dialed link's connection attempt did not come up.
#[derive(Debug)]
#[non_exhaustive]
pub enum DialError {
    /// The TCP connect failed.
    Connect(std::io::Error),
    /// The connect or the handshake took longer than allowed.
    TimedOut,
    /// The TLS handshake failed.
    Handshake(std::io::Error),
    /// QUIC could not start the connection.
    QuicConnect(quinn::ConnectError),
    /// The QUIC connection failed before it was established.
    QuicConnection(quinn::ConnectionError),
    /// The server's certificate is not the link's participant, or the link is misconfigured.
    Link(LinkError),
    /// The engine tracks as many links as it may.
    LinkLimit,
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Handshake(e) => write!(f, "TLS handshake: {e}"),
            Self::QuicConnect(e) => write!(f, "QUIC connect: {e}"),
            Self::QuicConnection(e) => write!(f, "QUIC connection: {e}"),
            Self::Link(e) => e.fmt(f),
            Self::LinkLimit => f.write_str("the switch is at its link limit"),
        }
    }
}

impl std::error::Error for DialError {}

impl From<LinkError> for DialError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

/// Why a reloaded configuration was not applied (nothing of it was).
#[derive(Debug)]
#[non_exhaustive]
pub enum ReconfigureError {
    /// The switch is draining: it takes no new configuration.
    Draining,
    /// The shards' plan cannot take it (a participant would move shards).
    Shards(corridor_engine::shards::PlanError),
    /// A new or moved listening link's address could not be bound.
    Bind {
        /// The link.
        link: String,
        /// Its address.
        address: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The engine refused it.
    Engine(corridor_engine::reconfigure::Incompatible),
}

impl fmt::Display for ReconfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Draining => f.write_str("the switch is draining"),
            Self::Shards(e) => e.fmt(f),
            Self::Bind { link, address, error } => write!(f, "link {link}: cannot bind {address}: {error}"),
            Self::Engine(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReconfigureError {}

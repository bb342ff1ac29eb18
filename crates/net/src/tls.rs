//! TLS for links, mutual always: the switch presents its certificate and requires the peer's,
//! verified against the CAs configured for the link (and its revocation lists), TLS 1.3 and
//! 1.2 only. A verified certificate then has to map to the link's participant — by subject
//! common name or by a pin of its public key — or the connection is refused: a participant
//! may only speak as itself.

use std::{fmt, path::PathBuf, sync::Arc};

use crate::error::LinkError;

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName},
    server::WebPkiClientVerifier,
    ClientConfig, RootCertStore, ServerConfig,
};

/// The files of a TLS link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The switch's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) the peer's certificate must chain to.
    pub ca: Vec<PathBuf>,
    /// Certificate revocation lists (PEM) checked against the peer's chain.
    pub crl: Vec<PathBuf>,
    /// Dialing: the name the peer's certificate must carry (default `localhost`).
    pub server_name: Option<String>,
}

/// How a certificate maps to a participant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The participant's id (for messages).
    pub participant: String,
    /// The certificate's subject common name.
    pub subject_cn: Option<String>,
    /// SHA-256 pins of the certificate's SubjectPublicKeyInfo.
    pub spki_sha256: Vec<[u8; 32]>,
}

impl Identity {
    /// Whether `peer` is this participant's certificate.
    #[must_use]
    pub fn matches(&self, peer: &PeerCert) -> bool {
        self.subject_cn.as_ref().is_some_and(|cn| peer.subject_cn.as_deref() == Some(cn.as_str()))
            || self.spki_sha256.contains(&peer.spki_sha256)
    }

    /// Whether this identity names anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.subject_cn.is_none() && self.spki_sha256.is_empty()
    }

    /// Refuses an identity that names nothing, for a link of `kind` (TLS, QUIC).
    ///
    /// # Errors
    ///
    /// The participant has no certificate identity.
    pub fn require(&self, transport: &'static str) -> Result<(), LinkError> {
        if self.is_empty() {
            return Err(LinkError::NoIdentity { participant: self.participant.clone(), transport });
        }
        Ok(())
    }

    /// Checks a verified peer chain: its leaf must be this participant's certificate.
    ///
    /// # Errors
    ///
    /// No certificate, or one of somebody else.
    pub fn authorize(&self, chain: Option<&[CertificateDer<'_>]>) -> Result<PeerCert, LinkError> {
        let leaf = chain.and_then(|c| c.first()).ok_or(LinkError::NoCertificate)?;
        let peer = peer_cert(leaf)?;
        if self.matches(&peer) {
            Ok(peer)
        } else {
            Err(LinkError::WrongParticipant { peer, participant: self.participant.clone() })
        }
    }
}

/// What the switch reads off a verified peer certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject's common name, if it has one.
    pub subject_cn: Option<String>,
    /// SHA-256 of its SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
}

impl fmt::Display for PeerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CN={} spki-sha256={}", self.subject_cn.as_deref().unwrap_or("-"), hex(&self.spki_sha256))
    }
}

/// Lowercase hex.
#[must_use]
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads the leaf of a verified chain.
///
/// # Errors
///
/// A certificate that does not parse (rustls verified it, so this is unexpected).
pub fn peer_cert(der: &[u8]) -> Result<PeerCert, LinkError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| LinkError::BadCertificate(e.to_string()))?;
    let subject_cn =
        cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
    let spki = cert.public_key().raw;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let mut spki_sha256 = [0u8; 32];
    spki_sha256.copy_from_slice(digest.as_ref());
    Ok(PeerCert { subject_cn, spki_sha256 })
}

/// The SHA-256 pin of a PEM certificate's public key, as `corridor certs pin` prints it.
///
/// # Errors
///
/// A file that cannot be read or holds no certificate.
pub fn pin_of(pem: &std::path::Path) -> Result<[u8; 32], LinkError> {
    let der = CertificateDer::from_pem_file(pem).map_err(|e| LinkError::file(pem, e))?;
    Ok(peer_cert(&der)?.spki_sha256)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

type ChainAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn chain_and_key(files: &TlsFiles) -> Result<ChainAndKey, LinkError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| LinkError::file(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| LinkError::file(&files.cert, e))?;
    if chain.is_empty() {
        return Err(LinkError::file(&files.cert, "no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| LinkError::file(&files.key, e))?;
    Ok((chain, key))
}

fn roots(files: &TlsFiles) -> Result<RootCertStore, LinkError> {
    let mut roots = RootCertStore::empty();
    if files.ca.is_empty() {
        return Err(LinkError::NoCa);
    }
    for ca in &files.ca {
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| LinkError::file(ca, e))? {
            let c = c.map_err(|e| LinkError::file(ca, e))?;
            roots.add(c).map_err(|e| LinkError::file(ca, e))?;
        }
    }
    if roots.is_empty() {
        return Err(LinkError::NoCa);
    }
    Ok(roots)
}

fn crls(files: &TlsFiles) -> Result<Vec<CertificateRevocationListDer<'static>>, LinkError> {
    let mut out = Vec::new();
    for path in &files.crl {
        for c in CertificateRevocationListDer::pem_file_iter(path).map_err(|e| LinkError::file(path, e))? {
            out.push(c.map_err(|e| LinkError::file(path, e))?);
        }
    }
    Ok(out)
}

/// The server side of a listening TLS link: client certificates required.
///
/// # Errors
///
/// A file that cannot be read or parsed, or a key that does not fit the certificate.
pub fn server_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, LinkError> {
    let (chain, key) = chain_and_key(files)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(files)?), provider())
        .with_crls(crls(files)?)
        .build()
        .map_err(|e| LinkError::config("client certificate verifier", e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| LinkError::config("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| LinkError::file(&files.key, e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The client side of a dialed TLS link: it presents the switch's certificate.
///
/// # Errors
///
/// As [`server_config`], or a server name that is not a valid name or address.
pub fn client_config(
    files: &TlsFiles,
    alpn: &[&[u8]],
) -> Result<(Arc<ClientConfig>, ServerName<'static>), LinkError> {
    let (chain, key) = chain_and_key(files)?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots(files)?), provider())
            .with_crls(crls(files)?)
            .build()
            .map_err(|e| LinkError::config("server certificate verifier", e))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| LinkError::config("TLS versions", e))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| LinkError::file(&files.key, e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Payment messages must not be replayable: no early data.
    config.enable_early_data = false;
    let name = files.server_name.clone().unwrap_or_else(|| "localhost".to_owned());
    let name = ServerName::try_from(name.clone()).map_err(|_| LinkError::ServerName(name))?;
    Ok((Arc::new(config), name))
}

/// Which end of the handshake a link's TLS is.
#[derive(Clone)]
pub enum TlsSide {
    /// A listening link: the switch is the server.
    Accept(tokio_rustls::TlsAcceptor),
    /// A dialed link: the switch is the client, and the server's certificate must carry
    /// this name.
    Connect(tokio_rustls::TlsConnector, ServerName<'static>),
}

/// A link's TLS, ready to use.
#[derive(Clone)]
pub struct LinkTls {
    /// Server or client.
    pub side: TlsSide,
    /// Who must be on the other end.
    pub identity: Identity,
}

impl fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkTls").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl LinkTls {
    /// TLS for a listening (`dial == false`) or dialed link whose peer must be `identity`.
    ///
    /// # Errors
    ///
    /// As [`server_config`] and [`client_config`]; an identity that names nothing.
    pub fn new(files: &TlsFiles, dial: bool, identity: Identity) -> Result<Self, LinkError> {
        identity.require("TLS")?;
        let side = if dial {
            let (config, name) = client_config(files, &[])?;
            TlsSide::Connect(tokio_rustls::TlsConnector::from(config), name)
        } else {
            TlsSide::Accept(tokio_rustls::TlsAcceptor::from(server_config(files, &[])?))
        };
        Ok(Self { side, identity })
    }

    /// Checks the verified peer chain against the link's identity.
    ///
    /// # Errors
    ///
    /// No certificate (cannot happen after a mutual handshake), or one of somebody else.
    pub fn authorize(&self, chain: Option<&[CertificateDer<'_>]>) -> Result<PeerCert, LinkError> {
        self.identity.authorize(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_match_by_subject_or_by_pin_and_nothing_else() {
        let peer = PeerCert { subject_cn: Some("wallet-sg".into()), spki_sha256: [7; 32] };
        let by_cn =
            Identity { participant: "w".into(), subject_cn: Some("wallet-sg".into()), spki_sha256: vec![] };
        let by_pin =
            Identity { participant: "w".into(), subject_cn: None, spki_sha256: vec![[1; 32], [7; 32]] };
        let other = Identity {
            participant: "x".into(),
            subject_cn: Some("wallet-s".into()),
            spki_sha256: vec![[8; 32]],
        };
        assert!(by_cn.matches(&peer) && by_pin.matches(&peer));
        assert!(!other.matches(&peer));
        assert!(!Identity::default().matches(&peer) && Identity::default().is_empty());
        let anonymous = PeerCert { subject_cn: None, spki_sha256: [7; 32] };
        assert!(!by_cn.matches(&anonymous), "no CN never matches a CN rule");
        assert!(by_pin.matches(&anonymous));
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}

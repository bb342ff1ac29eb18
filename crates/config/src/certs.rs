//! `corridor certs`: development certificates, so a newcomer can try TLS and QUIC links in a
//! minute. A development CA, a certificate for the switch and one per participant (subject
//! CN = the participant's id, names `localhost` and `127.0.0.1` so it can serve as well as
//! dial), ECDSA P-256, valid from a day ago for `days` days. Never for production: the CA's
//! key is written next to the certificates.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// Why development certificates could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertError {
    /// A key, a certificate or a revocation list could not be made.
    Generate(rcgen::Error),
    /// A file or directory could not be written.
    Write {
        /// What.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A participant's id cannot name a file.
    Name(String),
    /// A certificate just written could not be read back for its pin.
    Pin(String),
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Generate(e) => write!(f, "cannot make a certificate: {e}"),
            Self::Write { path, source } => write!(f, "cannot write {}: {source}", path.display()),
            Self::Name(name) => write!(f, "participant id {name:?} cannot name a file"),
            Self::Pin(e) => write!(f, "cannot read a certificate's pin: {e}"),
        }
    }
}

impl std::error::Error for CertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Generate(e) => Some(e),
            Self::Write { source, .. } => Some(source),
            Self::Name(_) | Self::Pin(_) => None,
        }
    }
}

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        Self::Generate(e)
    }
}

type Result<T> = std::result::Result<T, CertError>;

fn written(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Write { path: path.to_owned(), source }
}

/// A certificate authority that issues certificates.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
    next_serial: std::cell::Cell<u64>,
}

/// A certificate and its key, PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// Its serial number (what a revocation list names).
    pub serial: u64,
}

fn validity(p: &mut CertificateParams, from: OffsetDateTime, days: i64) {
    p.not_before = from;
    p.not_after = from + time::Duration::days(days);
}

impl Ca {
    /// A new CA named `cn`, valid from a day ago for `days` days.
    ///
    /// # Errors
    ///
    /// The key or the certificate cannot be made.
    pub fn new(cn: &str, days: i64) -> Result<Self> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "Corridor development");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut p, OffsetDateTime::now_utc() - time::Duration::days(1), days);
        let key = KeyPair::generate()?;
        let cert = p.self_signed(&key)?;
        Ok(Self { cert, key, next_serial: std::cell::Cell::new(1) })
    }

    /// The CA's certificate.
    #[must_use]
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's key.
    #[must_use]
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate for subject `cn` (also valid for `localhost` and `127.0.0.1`),
    /// for client and server use, valid from `from` for `days` days.
    ///
    /// # Errors
    ///
    /// The key or the certificate cannot be made.
    pub fn issue_at(&self, cn: &str, from: OffsetDateTime, days: i64) -> Result<Issued> {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()])?;
        p.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "Corridor development");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut p, from, days);
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        p.serial_number = Some(rcgen::SerialNumber::from(serial));
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial })
    }

    /// A revocation list (PEM) naming `serials` as revoked, valid for a day.
    ///
    /// # Errors
    ///
    /// The list cannot be signed.
    pub fn revocation_list(&self, serials: &[u64]) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(s),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.cert, &self.key)?.pem()?)
    }

    /// [`Ca::issue_at`] from a day ago.
    ///
    /// # Errors
    ///
    /// As [`Ca::issue_at`].
    pub fn issue(&self, cn: &str, days: i64) -> Result<Issued> {
        self.issue_at(cn, OffsetDateTime::now_utc() - time::Duration::days(1), days)
    }
}

fn write(path: &Path, text: &str, secret: bool) -> Result<()> {
    std::fs::write(path, text).map_err(written(path))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(written(path))?;
    }
    Ok(())
}

/// Writes `ca.pem`/`ca.key`, `switch.pem`/`switch.key` and `<id>.pem`/`<id>.key` for each
/// participant into `out`, and returns a summary with each certificate's public-key pin.
///
/// # Errors
///
/// An id that is not a safe file name, or a file that cannot be written.
pub fn dev(out: &Path, participants: &[String], days: i64) -> Result<String> {
    std::fs::create_dir_all(out).map_err(written(out))?;
    let ca = Ca::new("Corridor development CA", days)?;
    write(&out.join("ca.pem"), &ca.cert_pem(), false)?;
    write(&out.join("ca.key"), &ca.key_pem(), true)?;
    let mut summary = format!("development CA: {}\n", out.join("ca.pem").display());
    let mut names = vec!["switch".to_owned()];
    names.extend(participants.iter().cloned());
    for name in &names {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(CertError::Name(name.clone()));
        }
        let cn = if name == "switch" { "corridor-switch" } else { name.as_str() };
        let issued = ca.issue(cn, days)?;
        let (cert, key): (PathBuf, PathBuf) =
            (out.join(format!("{name}.pem")), out.join(format!("{name}.key")));
        write(&cert, &issued.cert_pem, false)?;
        write(&key, &issued.key_pem, true)?;
        let pin = corridor_net::tls::pin_of(&cert).map_err(|e| CertError::Pin(e.to_string()))?;
        summary.push_str(&format!(
            "{name:<16} CN={cn:<18} {}  tls_spki_sha256 = \"{}\"\n",
            cert.display(),
            corridor_net::tls::hex(&pin)
        ));
    }
    summary.push_str(&format!(
        "valid {} days; the CA key is in {} — development only\n",
        days,
        out.join("ca.key").display()
    ));
    Ok(summary)
}

/// Days a development certificate is valid by default.
pub const DEV_DAYS: i64 = 90;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_that_cannot_name_a_file_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("corridor-certs-name-{}", std::process::id()));
        let e = dev(&dir, &["../escape".into()], 30).expect_err("refused");
        assert!(matches!(&e, CertError::Name(n) if n == "../escape"), "{e}");
        assert!(!dir.join("../escape.pem").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dev_writes_a_ca_the_switch_and_each_participant() {
        let dir = std::env::temp_dir().join(format!("corridor-certs-{}", std::process::id()));
        let summary = dev(&dir, &["wallet-sg".into(), "napas-vn".into()], 30).unwrap();
        for f in ["ca.pem", "ca.key", "switch.pem", "switch.key", "wallet-sg.pem", "napas-vn.key"] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        assert!(summary.contains("CN=wallet-sg"));
        assert_eq!(summary.matches("tls_spki_sha256").count(), 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("switch.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "keys are private to their owner");
        }
        assert!(dev(&dir, &["../etc".into()], 30).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The example's participants, links and routes (its journal and admin sections name
    /// files beside it, which these tests do not have).
    static EXAMPLE: std::sync::LazyLock<&str> = std::sync::LazyLock::new(|| {
        let full = include_str!("../../corridor/examples/switch.toml");
        full.split("\n# The journal:").next().unwrap_or(full)
    });

    #[test]
    fn tls_links_and_certificate_identities_are_checked() {
        let dir = std::env::temp_dir().join(format!("corridor-config-tls-{}", std::process::id()));
        dev(&dir, &["wallet-sg".into()], 5).unwrap();
        let tls = "  [participant.link.tls]\n  cert = \"switch.pem\"\n  key = \"switch.key\"\n  ca = [\"ca.pem\"]\n";
        let with_tls = EXAMPLE.replacen(
            "  connections_max = 4         # listen only, default 16\n",
            &format!("  connections_max = 4\n{tls}"),
            1,
        );
        let identity = "acquirer_ids = [\"12345678\"]   # the DE 32 values it may send as; anything else is declined 63\n";
        assert!(EXAMPLE.contains(identity));
        let ok = with_tls.replacen(identity, &format!("{identity}tls_subject_cn = \"wallet-sg\"\n"), 1);
        let c = crate::parse_in(&ok, &dir).expect("a TLS link with an identity");
        assert!(c.net.listens.iter().any(|l| matches!(l.transport, corridor_net::Transport::Tls(_))));
        assert!(crate::summary(&c).contains("listen 127.0.0.1:9101 tls"), "{}", crate::summary(&c));
        let cases: Vec<(String, &str)> = vec![
            (with_tls.clone(), "has TLS links but no certificate identity"),
            (ok.replace("cert = \"switch.pem\"", "cert = \"nowhere.pem\""), "nowhere.pem"),
            (ok.replace("ca = [\"ca.pem\"]", "ca = []"), "needs at least one CA"),
            (
                ok.replacen("tls_subject_cn = \"wallet-sg\"", "tls_spki_sha256 = [\"abcd\"]", 1),
                "must be 64 hex digits",
            ),
            (
                ok.replacen(
                    "name = \"Vietnam QR network\"",
                    "name = \"VN\"\ntls_subject_cn = \"wallet-sg\"",
                    1,
                ),
                "already participant \"wallet-sg\"'s",
            ),
        ];
        for (text, want) in cases {
            let err = match crate::parse_in(&text, &dir) {
                Ok(_) => panic!("expected {want:?}"),
                Err(e) => format!("{e:#}"),
            };
            assert!(err.contains(want), "expected {want:?} in {err:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

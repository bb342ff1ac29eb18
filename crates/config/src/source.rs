//! What a configuration is made of: its file's text and the shared files it names — BIN
//! route files (`[switch] route_files`), rate files (`[currency] rate_files`) and a QR
//! network registry (`[qr] networks`) — each read once, so that the whole of it can be
//! checked, compared and carried as one value.
//!
//! A cluster carries a configuration between its nodes as this value ([`Source::encode`]):
//! every node serves the same text and the same shared files, whatever its own disk holds.
//! What a node keeps of its own is read from its own disk, relative to its own file:
//! certificates and keys, the PAN key, the admin token (secrets are never carried), and the
//! settings `[cluster.nodes.<name>]` gives it (its journal directory, its listening
//! addresses, its admin address).
//!
//! The encoding is JSON with the files in name order, so one configuration has one
//! encoding and one digest (SHA-256 of the encoding).

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Context, Result};

use crate::limits::{QR_NETWORKS_BYTES_MAX, RATE_FILE_BYTES_MAX, ROUTE_FILE_BYTES_MAX};

/// A configuration's text and the shared files it names, by the names it gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    text: String,
    files: BTreeMap<String, String>,
}

/// The names of the shared files a text gives, read leniently: a text that is not a
/// configuration fails its check later, with the check's own message.
fn named(text: &str) -> Vec<(String, u64, &'static str)> {
    let Ok(value) = toml::from_str::<toml::Table>(text) else { return Vec::new() };
    let strings = |section: &str, key: &str| -> Vec<String> {
        match value.get(section).and_then(|s| s.get(key)) {
            Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            Some(toml::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    out.extend(strings("switch", "route_files").into_iter().map(|f| (f, ROUTE_FILE_BYTES_MAX, "route file")));
    out.extend(strings("currency", "rate_files").into_iter().map(|f| (f, RATE_FILE_BYTES_MAX, "rate file")));
    out.extend(strings("qr", "networks").into_iter().map(|f| (f, QR_NETWORKS_BYTES_MAX, "[qr] networks")));
    out
}

impl Source {
    /// `text` and the shared files it names, read from `base` (the file's directory).
    ///
    /// # Errors
    ///
    /// A shared file that cannot be read, is not UTF-8, or is larger than its bound.
    pub fn gather(text: String, base: &Path) -> Result<Self> {
        let mut files = BTreeMap::new();
        for (name, max, what) in named(&text) {
            if files.contains_key(&name) {
                continue;
            }
            let path = base.join(&name);
            let at = || format!("{what} {}", path.display());
            let meta = std::fs::metadata(&path).with_context(|| format!("{}: cannot read it", at()))?;
            if meta.len() > max {
                bail!("{}: larger than {max} bytes", at());
            }
            let bytes = std::fs::read(&path).with_context(|| format!("{}: cannot read it", at()))?;
            let content =
                String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", at()))?;
            files.insert(name, content);
        }
        Ok(Self { text, files })
    }

    /// The configuration file's text.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The shared file the text names `name`, as it was read.
    ///
    /// # Errors
    ///
    /// The text names a file it was not gathered with (a bug, or an encoding from
    /// elsewhere that left it out).
    pub(crate) fn file(&self, name: &str) -> Result<&str> {
        self.files
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("{name}: not part of the configuration"))
    }

    /// The shared files' names.
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The one encoding of this configuration (see the module's documentation).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut files = serde_json::Map::new();
        for (name, content) in &self.files {
            files.insert(name.clone(), serde_json::Value::String(content.clone()));
        }
        let value = serde_json::json!({ "corridor_config": 1, "text": self.text, "files": files });
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// A configuration from its encoding.
    ///
    /// # Errors
    ///
    /// Not an encoding of this version, or one whose files are not those its text names.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Encoded {
            corridor_config: u32,
            text: String,
            files: BTreeMap<String, String>,
        }
        let e: Encoded = serde_json::from_slice(bytes).context("not an encoded configuration")?;
        if e.corridor_config != 1 {
            bail!("an encoded configuration of version {}: this node reads version 1", e.corridor_config);
        }
        let wanted: std::collections::BTreeSet<String> =
            named(&e.text).into_iter().map(|(n, ..)| n).collect();
        let carried: std::collections::BTreeSet<String> = e.files.keys().cloned().collect();
        if wanted != carried {
            bail!("the encoded configuration carries the files {carried:?}, its text names {wanted:?}");
        }
        Ok(Self { text: e.text, files: e.files })
    }

    /// SHA-256 of the encoding: two nodes serve the same configuration when theirs agree.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &self.encode()).as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("corridor-source-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_encoding_carries_the_shared_files_and_the_digest_covers_them() {
        let d = dir("digest");
        std::fs::write(d.join("bins.csv"), "pan_prefix,destination\n4111,issuer\n").unwrap();
        let text = "[switch]\nroute_files = [\"bins.csv\"]\n".to_owned();
        let a = Source::gather(text.clone(), &d).unwrap();
        assert_eq!(a.file("bins.csv").unwrap(), "pan_prefix,destination\n4111,issuer\n");
        let back = Source::decode(&a.encode()).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.digest(), a.digest());
        // The same text with another route file is another configuration.
        std::fs::write(d.join("bins.csv"), "pan_prefix,destination\n4112,issuer\n").unwrap();
        let b = Source::gather(text, &d).unwrap();
        assert_ne!(b.digest(), a.digest());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_encoding_that_leaves_out_a_named_file_or_adds_one_is_refused() {
        let text = "[switch]\nroute_files = [\"bins.csv\"]\n";
        let missing = serde_json::json!({ "corridor_config": 1, "text": text, "files": {} });
        let e = Source::decode(&serde_json::to_vec(&missing).unwrap()).unwrap_err();
        assert!(format!("{e:#}").contains("bins.csv"), "{e:#}");
        let extra = serde_json::json!({ "corridor_config": 1, "text": "", "files": { "x.csv": "" } });
        assert!(Source::decode(&serde_json::to_vec(&extra).unwrap()).is_err());
        let later = serde_json::json!({ "corridor_config": 2, "text": "", "files": {} });
        let e = Source::decode(&serde_json::to_vec(&later).unwrap()).unwrap_err();
        assert!(format!("{e:#}").contains("version 2"), "{e:#}");
        assert!(Source::decode(b"\x00garbage").is_err());
    }

    #[test]
    fn a_shared_file_that_is_missing_or_too_large_is_named() {
        let d = dir("missing");
        let e = Source::gather("[qr]\nnetworks = \"nets.toml\"\n".into(), &d).unwrap_err();
        assert!(format!("{e:#}").contains("nets.toml"), "{e:#}");
        let big = "x".repeat(usize::try_from(QR_NETWORKS_BYTES_MAX).unwrap() + 1);
        std::fs::write(d.join("nets.toml"), big).unwrap();
        let e = Source::gather("[qr]\nnetworks = \"nets.toml\"\n".into(), &d).unwrap_err();
        assert!(format!("{e:#}").contains("larger than"), "{e:#}");
        let _ = std::fs::remove_dir_all(&d);
    }
}

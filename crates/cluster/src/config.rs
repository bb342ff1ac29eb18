//! The cluster's one configuration, in a JetStream key-value bucket (`<stream>-config`, one
//! key): every node serves the configuration the bucket holds, and a reload on any node is
//! published there (compare-and-set on the revision that node serves, so two operators
//! reloading two nodes at once cannot overwrite each other unseen) and reaches every other
//! node through a watch.
//!
//! What is carried is opaque here (`corridor-config` encodes the file's text and its shared
//! files); what is added is who published it. The bucket keeps the last
//! [`CONFIG_HISTORY`] configurations, for audit.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, UpdateErrorKind},
};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::limits::{CONFIG_BYTES_MAX, CONFIG_HISTORY, REQUEST_TIMEOUT};

/// The bucket a cluster's configuration lives in, for stream `stream`.
#[must_use]
pub fn config_bucket(stream: &str) -> String {
    format!("{stream}-config")
}

const KEY: &str = "current";

/// A configuration as the bucket holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The bucket's revision of it: every node that serves it serves this revision.
    pub revision: u64,
    /// The node that published it.
    pub by: String,
    /// When, in Unix milliseconds (the bucket's time).
    pub at_ms: u64,
    /// The configuration's encoding.
    pub body: Bytes,
}

/// Why a configuration was not published or read.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Another node published since the revision this one expected: its configuration is
    /// the cluster's now.
    Conflict {
        /// The revision expected.
        expected: Option<u64>,
    },
    /// Larger than the bucket carries.
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The bucket did not answer, or holds what no node wrote.
    Unavailable(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Conflict { expected: Some(r) } => write!(
                f,
                "another node published the cluster's configuration since revision {r}, which this node serves: \
                 it is being applied here; reload again to publish this file over it"
            ),
            Self::Conflict { expected: None } => {
                f.write_str("another node published the cluster's first configuration at the same moment")
            }
            Self::TooLarge { bytes } => write!(
                f,
                "the configuration with its shared files is {bytes} bytes; a cluster carries at most {CONFIG_BYTES_MAX}"
            ),
            Self::Unavailable(e) => write!(f, "the configuration bucket is unavailable: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One node's view of the configuration bucket.
#[derive(Clone)]
pub struct ConfigStore {
    kv: kv::Store,
    node: String,
}

fn envelope(node: &str, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(node.len() + 4 + body.len());
    out.extend_from_slice(b"by ");
    out.extend_from_slice(node.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn published(entry: kv::Entry) -> Result<Published, ConfigError> {
    let value = entry.value;
    let line = value.iter().position(|&b| b == b'\n');
    let (by, body) = match (value.strip_prefix(b"by "), line) {
        (Some(_), Some(n)) => (String::from_utf8_lossy(&value[3..n]).into_owned(), value.slice(n + 1..)),
        _ => {
            return Err(ConfigError::Unavailable(format!(
                "revision {} is not a configuration a node published",
                entry.revision
            )))
        }
    };
    let at_ms = u64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Ok(Published { revision: entry.revision, by, at_ms, body })
}

impl ConfigStore {
    /// The bucket of `bucket` (made if it is not there, `replicas` copies), as node `node`
    /// sees it.
    ///
    /// # Errors
    ///
    /// The bucket cannot be made or found.
    pub async fn open(
        client: async_nats::Client,
        bucket: &str,
        node: &str,
        replicas: usize,
    ) -> Result<Self, ConfigError> {
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        let config = kv::Config {
            bucket: bucket.to_owned(),
            history: CONFIG_HISTORY,
            num_replicas: replicas,
            max_value_size: i32::try_from(CONFIG_BYTES_MAX + 128).unwrap_or(i32::MAX),
            ..kv::Config::default()
        };
        let kv = crate::kv_bucket(&js, config).await.map_err(ConfigError::Unavailable)?;
        Ok(Self { kv, node: node.to_owned() })
    }

    /// The bucket `kv`, as node `node` sees it (for a reader that must not make it).
    pub(crate) fn from_store(kv: kv::Store, node: &str) -> Self {
        Self { kv, node: node.to_owned() }
    }

    /// The cluster's configuration now (`None`: no node has published one).
    ///
    /// # Errors
    ///
    /// The bucket did not answer.
    pub async fn current(&self) -> Result<Option<Published>, ConfigError> {
        match self.kv.entry(KEY).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => published(e).map(Some),
            Ok(_) => Ok(None),
            Err(e) => Err(ConfigError::Unavailable(e.to_string())),
        }
    }

    /// Publishes `body` as the cluster's configuration, over revision `expected` (`None`:
    /// as the first); its revision.
    ///
    /// # Errors
    ///
    /// Another node published since `expected`, `body` is too large, or the bucket did not
    /// answer.
    pub async fn publish(&self, body: &[u8], expected: Option<u64>) -> Result<u64, ConfigError> {
        if body.len() > CONFIG_BYTES_MAX {
            return Err(ConfigError::TooLarge { bytes: body.len() });
        }
        let value = envelope(&self.node, body);
        match expected {
            None => self.kv.create(KEY, value).await.map_err(|e| match e.kind() {
                CreateErrorKind::AlreadyExists => ConfigError::Conflict { expected: None },
                _ => ConfigError::Unavailable(e.to_string()),
            }),
            Some(r) => self.kv.update(KEY, value, r).await.map_err(|e| match e.kind() {
                UpdateErrorKind::WrongLastRevision => ConfigError::Conflict { expected: Some(r) },
                _ => ConfigError::Unavailable(e.to_string()),
            }),
        }
    }

    /// Every configuration published after revision `after`, in order, as it comes, until
    /// the bucket stops answering (the caller watches again from what it saw last). A
    /// watch that stalls unseen is not waited on: every `poll` the bucket is asked for its
    /// current revision as well.
    ///
    /// # Errors
    ///
    /// The watch cannot be set up.
    pub async fn watch(
        &self,
        after: u64,
        poll: Duration,
    ) -> Result<impl futures_util::Stream<Item = Published> + '_, ConfigError> {
        let watch = self
            .kv
            .watch_from_revision(KEY, after + 1)
            .await
            .map_err(|e| ConfigError::Unavailable(e.to_string()))?;
        let watched = watch.filter_map(|e| async move {
            match e {
                Ok(e) if e.operation == kv::Operation::Put => published(e).ok(),
                _ => None,
            }
        });
        let polled = futures_util::stream::unfold((), move |()| async move {
            tokio::time::sleep(poll).await;
            Some((self.current().await.ok().flatten(), ()))
        })
        .filter_map(|p| async move { p });
        Ok(futures_util::stream::select(watched, polled))
    }
}

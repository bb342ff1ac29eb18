//! Reloading a running switch's configuration (`SIGHUP`, `POST /reload`): the whole new
//! file parsed and checked exactly as at start, compared with the one in force, and turned
//! into a [`Reconfigure`] the switch applies in one step on its thread — or refused, with the
//! reason, and the configuration in force kept.
//!
//! Indices stay put: every participant and link of the configuration in force keeps its
//! index (one the new file removed stays as it was, so the connections it still has keep
//! their meaning while they drain), new ones come after. Routes, participants, limits and
//! timings apply at once; links added start; links removed drain and close; a link whose
//! mode, address, transport, TLS files or peer identity changed restarts (its connections
//! drain and close, new ones use the new settings: certificates reload this way). The
//! journal and the admin server's address cannot change while running: a file that changes
//! them is refused (restart to change them).

use std::{collections::BTreeSet, path::Path};

use anyhow::{bail, Result};
use corridor_engine::{Config, LinkSpec, Participant, Route, RouteKey, RouteTable};
use corridor_net::{LinkPlan, NetConfig, Reconfigure};

use crate::{AdminSettings, Loaded};

/// What a reload compares a new file with: the configuration in force.
#[derive(Clone)]
pub struct Current {
    /// The engine's configuration.
    pub engine: Config,
    /// The network's.
    pub net: NetConfig,
    /// Per link: see [`Loaded::link_fingerprints`].
    pub fingerprints: Vec<[u8; 32]>,
    /// The journal directory, key id and policy, as text (they cannot change while running).
    journal: Option<String>,
    /// The admin server's address.
    admin_address: Option<std::net::SocketAddr>,
    /// The node's name, its stream and the stream's copies (they cannot change while running).
    cluster: Option<String>,
    /// The configuration's digest ([`crate::Source::digest`]).
    pub digest: [u8; 32],
    /// What it was made from (a cluster node publishes it, or compares the cluster's with it).
    pub source: crate::Source,
    /// Participants and links a reload removed (by index): they keep their places.
    gone_participants: BTreeSet<usize>,
    gone_links: BTreeSet<usize>,
}

impl Current {
    /// The configuration `loaded` starts the switch on.
    #[must_use]
    pub fn of(loaded: &Loaded) -> Self {
        Self {
            engine: loaded.engine.clone(),
            net: loaded.net.clone(),
            fingerprints: loaded.link_fingerprints.clone(),
            journal: loaded.journal.as_ref().map(journal_text),
            admin_address: loaded.admin.as_ref().map(|a| a.address),
            cluster: loaded.cluster.as_ref().map(cluster_text),
            digest: loaded.digest,
            source: loaded.source.clone(),
            gone_participants: BTreeSet::new(),
            gone_links: BTreeSet::new(),
        }
    }
}

fn cluster_text(c: &crate::ClusterSettings) -> String {
    format!(
        "node {} stream {} replicas {} compress {} relay {:?}",
        c.node,
        c.stream,
        c.replicas,
        c.compress,
        c.relay.as_ref().map(|r| (r.address, &r.files))
    )
}

fn journal_text(j: &crate::JournalSettings) -> String {
    format!(
        "{} key {} {:?} {} {:?} {} preallocate {} compact {}",
        j.dir.display(),
        j.key_id,
        j.policy,
        j.checkpoint_segments,
        j.retain,
        j.reserve_bytes,
        j.preallocate,
        j.compact_checkpoints
    )
}

/// A checked reload, ready for the switch.
pub struct Reload {
    /// For the switch.
    pub reconfigure: Reconfigure,
    /// What changed, one line each (empty: nothing did).
    pub changes: Vec<String>,
    /// The configuration in force once it is applied.
    pub next: Current,
    /// The admin settings of the new file (its token may have changed).
    pub admin: Option<AdminSettings>,
}

/// Reads, checks and compares the file at `path` with `current`, for cluster node `node`
/// (see [`crate::load_as`]).
///
/// # Errors
///
/// Whatever [`crate::load_as`] refuses, and a change that cannot be made while running.
pub fn reload(current: &Current, path: &Path, node: Option<&str>) -> Result<Reload, crate::ConfigError> {
    reload_source(current, &crate::read_source(path)?, path, node)
}

/// [`reload`] to `source` (the cluster's configuration, say), as the configuration of the
/// file at `path` (see [`crate::from_source`]).
///
/// # Errors
///
/// See [`reload`].
pub fn reload_source(
    current: &Current,
    source: &crate::Source,
    path: &Path,
    node: Option<&str>,
) -> Result<Reload, crate::ConfigError> {
    let loaded = crate::from_source(source, path, node)?;
    check_rebase(current, loaded).map_err(|e| crate::ConfigError::invalid(Some(path), &e))
}

/// [`reload`] to the cluster's configuration `cluster`, this node's own file (at `path`)
/// read again for what it keeps of its own (see [`crate::from_cluster`]).
///
/// # Errors
///
/// See [`reload`].
pub fn reload_cluster(
    current: &Current,
    cluster: &crate::Source,
    path: &Path,
    node: Option<&str>,
) -> Result<Reload, crate::ConfigError> {
    let own = crate::read_source(path)?;
    let loaded = crate::from_cluster(cluster, &own, path, node)?;
    check_rebase(current, loaded).map_err(|e| crate::ConfigError::invalid(Some(path), &e))
}

fn route_text(r: &Route, participants: &[Participant]) -> (String, String) {
    let key = match &r.key {
        RouteKey::PanPrefix(p) => format!("pan_prefix {}", String::from_utf8_lossy(p)),
        RouteKey::Receiver(id) => format!("receiver_id {id}"),
        RouteKey::Default => "default".into(),
        RouteKey::Qr { name, acquirer: None, .. } => format!("qr_network {name}"),
        RouteKey::Qr { name, acquirer: Some(a), .. } => format!("qr_network {name} acquirer {a}"),
    };
    let classes = r.mti_classes.map_or_else(
        || "all classes".to_owned(),
        |m| {
            let c: Vec<String> = (0..10).filter(|c| m & (1 << c) != 0).map(|c| c.to_string()).collect();
            format!("classes {}", c.join(","))
        },
    );
    let dest = participants.get(r.destination).map_or("?", |p| p.id.as_str());
    (key, format!("{dest} ({classes}, timeout {} ms)", r.timeout.as_millis()))
}

/// The fields of a link spec, as `name = value` texts, to say what changed.
fn link_fields(l: &LinkSpec, participants: &[Participant]) -> Vec<(&'static str, String)> {
    vec![
        ("participant", participants.get(l.participant).map_or_else(String::new, |p| p.id.clone())),
        ("mode", if l.dial { "dial" } else { "listen" }.into()),
        ("framing", l.framing.to_string()),
        ("dialect", l.dialect.to_string()),
        ("frame_bytes_max", l.frame_bytes_max.to_string()),
        ("inflight_max", l.inflight_max.to_string()),
        ("sign_on_required", l.sign_on_required.to_string()),
        ("echo_interval_ms", l.echo_interval.as_millis().to_string()),
        ("echo_missed_max", l.echo_missed_max.to_string()),
        ("at_inflight_limit", format!("{:?}", l.at_limit).to_lowercase()),
        ("sign_on_timeout_ms", l.sign_on_timeout.as_millis().to_string()),
        ("frame_timeout_ms", l.frame_timeout.as_millis().to_string()),
        ("timeouts_down_max", l.timeouts_down_max.to_string()),
    ]
}

/// Fields an open connection cannot take a change of.
const RESTART_FIELDS: [&str; 5] = ["participant", "mode", "framing", "dialect", "frame_bytes_max"];

fn net_fields(net: &NetConfig, spec: usize) -> Vec<(&'static str, String)> {
    if let Some(l) = net.listens.iter().find(|l| l.spec == spec) {
        return vec![("address", l.address.to_string()), ("connections_max", l.connections_max.to_string())];
    }
    if let Some(d) = net.dials.iter().find(|d| d.spec == spec) {
        return vec![
            ("address", d.address.to_string()),
            ("connect_timeout_ms", d.connect_timeout.as_millis().to_string()),
            ("reconnect_min_ms", d.backoff_min.as_millis().to_string()),
            ("reconnect_max_ms", d.backoff_max.as_millis().to_string()),
        ];
    }
    Vec::new()
}

fn settings_fields(c: &Config) -> Vec<(&'static str, String)> {
    let s = &c.settings;
    vec![
        ("institution_id", s.institution_id.map_or_else(String::new, |i| i.to_string())),
        ("reversal_retry_ms", s.reversal_retry.as_millis().to_string()),
        ("reversal_repeats_max", s.reversal_repeats_max.to_string()),
        ("saf_age_max_ms", s.saf_age_max.as_millis().to_string()),
        ("late_window_ms", s.late_window.as_millis().to_string()),
        ("duplicate_window_ms", s.duplicate_window.as_millis().to_string()),
        ("metrics", s.metrics.to_string()),
    ]
}

/// A directory entry as text, for a change line.
fn directory_text(d: &corridor_engine::config::DirectoryEntry) -> String {
    let market = d.market.map_or_else(|| "-".to_owned(), |m| String::from_utf8_lossy(&m).into_owned());
    let currency = d.currency.map_or_else(|| "-".to_owned(), |c| c.to_string());
    let limit = match (d.limit, d.currency) {
        (Some(l), Some(c)) => corridor_engine::exchange::decimal_amount(l, c.exponent),
        _ => "none".to_owned(),
    };
    format!(
        "(market {market}, currency {currency}, limit {limit}, networks {:?}, policy {:?})",
        d.networks, d.qr_policy
    )
}

/// The switch-wide cross-border settings' changes: the registry, the settlement currency,
/// the market, each quote added, removed or changed.
fn interop_changes(
    old: &corridor_engine::config::Interop,
    new: &corridor_engine::config::Interop,
    out: &mut Vec<String>,
) {
    let ids = |i: &corridor_engine::config::Interop| {
        i.registry.networks().iter().map(|n| n.id.clone()).collect::<Vec<_>>()
    };
    if ids(old) != ids(new) {
        out.push(format!("qr: networks {:?} -> {:?}", ids(old), ids(new)));
    }
    if old.settlement != new.settlement {
        let t = |c: Option<corridor_engine::exchange::Currency>| {
            c.map_or_else(|| "none".to_owned(), |c| c.to_string())
        };
        out.push(format!("currency: settlement {} -> {}", t(old.settlement), t(new.settlement)));
    }
    if old.market != new.market {
        let t = |m: Option<[u8; 2]>| {
            m.map_or_else(|| "none".to_owned(), |m| String::from_utf8_lossy(&m).into_owned())
        };
        out.push(format!("switch: market {} -> {}", t(old.market), t(new.market)));
    }
    let text = |q: &corridor_engine::exchange::Quote| {
        format!(
            "{} -> {} at {} + {} bps, valid {} to {} ms",
            q.from, q.to, q.rate, q.markup_bps, q.valid_from_ms, q.valid_to_ms
        )
    };
    let before: std::collections::BTreeMap<&str, String> =
        old.rates.quotes().iter().map(|q| (&*q.id, text(q))).collect();
    let after: std::collections::BTreeMap<&str, String> =
        new.rates.quotes().iter().map(|q| (&*q.id, text(q))).collect();
    for (id, t) in &before {
        match after.get(id) {
            None => out.push(format!("rate quote {id}: removed (was {t})")),
            Some(n) if n != t => out.push(format!("rate quote {id}: {t} -> {n}")),
            Some(_) => {}
        }
    }
    for (id, t) in &after {
        if !before.contains_key(id) {
            out.push(format!("rate quote {id}: added ({t})"));
        }
    }
}

fn diff_fields(
    what: &str,
    old: &[(&'static str, String)],
    new: &[(&'static str, String)],
    out: &mut Vec<String>,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    for ((k, a), (_, b)) in old.iter().zip(new) {
        if a != b {
            out.push(format!("{what}: {k} {a} -> {b}"));
            changed.push(*k);
        }
    }
    changed
}

/// Re-indexes `loaded` onto `current` and says what changed. See the module docs.
///
/// # Errors
///
/// A change that cannot be made while running (the journal, the admin address).
pub fn rebase(current: &Current, loaded: Loaded) -> Result<Reload, crate::ConfigError> {
    check_rebase(current, loaded).map_err(|e| crate::ConfigError::invalid(None, &e))
}

/// [`rebase`], its refusals with `anyhow`'s context.
fn check_rebase(current: &Current, loaded: Loaded) -> Result<Reload> {
    if loaded.journal.as_ref().map(journal_text) != current.journal {
        bail!("the [journal] section cannot change while the switch runs (restart to change it)");
    }
    if loaded.admin.as_ref().map(|a| a.address) != current.admin_address {
        bail!("the admin server's address cannot change while the switch runs (restart to change it)");
    }
    if loaded.cluster.as_ref().map(cluster_text) != current.cluster {
        bail!(
            "the node's name, its stream, the stream's copies and its relay settings cannot change while the \
             switch runs (restart to change them)"
        );
    }
    let old = &current.engine;
    let mut changes = Vec::new();

    // Participants: old indices first, then the new ones; links the same way; routes
    // re-indexed.
    let (participants, p_index, gone_participants) =
        rebase_participants(current, &loaded.engine.participants, &mut changes);
    let RebasedLinks { links, l_index, fingerprints, plan, gone_links } =
        rebase_links(current, &loaded, (&participants, &p_index), &mut changes);
    let routes = rebase_routes(old, &loaded.engine.routes, (&participants, &p_index), &mut changes)?;
    let new = loaded.engine;

    let engine = Config { participants, links, routes, settings: new.settings, interop: new.interop };
    diff_fields("switch", &settings_fields(old), &settings_fields(&engine), &mut changes);
    interop_changes(&old.interop, &engine.interop, &mut changes);

    // The network side, re-indexed.
    let mut net = loaded.net;
    for l in &mut net.listens {
        l.spec = l_index[l.spec];
    }
    for d in &mut net.dials {
        d.spec = l_index[d.spec];
    }
    if net.drain_timeout != current.net.drain_timeout {
        changes.push(format!(
            "switch: drain_timeout_ms {} -> {}",
            current.net.drain_timeout.as_millis(),
            net.drain_timeout.as_millis()
        ));
    }
    let next = Current {
        engine: engine.clone(),
        net: net.clone(),
        fingerprints,
        journal: current.journal.clone(),
        admin_address: current.admin_address,
        cluster: current.cluster.clone(),
        digest: loaded.digest,
        source: loaded.source.clone(),
        gone_participants,
        gone_links,
    };
    let reconfigure = Reconfigure {
        engine,
        plan,
        listens: net.listens.clone(),
        dials: net.dials.clone(),
        drain_timeout: net.drain_timeout,
        digest: loaded.digest,
    };
    Ok(Reload { reconfigure, changes, next, admin: loaded.admin })
}

/// The participants of a reload: the old ones in their places (a removed one keeps its
/// place without the ids it could send as), then the new ones. Also each new participant's
/// index, and the places of the removed.
fn rebase_participants(
    current: &Current,
    new: &[Participant],
    changes: &mut Vec<String>,
) -> (Vec<Participant>, Vec<usize>, BTreeSet<usize>) {
    let old = &current.engine;
    let mut p_index = Vec::with_capacity(new.len());
    let mut participants: Vec<Participant> = old.participants.clone();
    let mut present = vec![false; old.participants.len()];
    for p in new {
        match old.participants.iter().position(|o| o.id == p.id) {
            Some(i) => {
                let o = &old.participants[i];
                let was = format!("{} {:?} {:?} {:?}", o.name, o.roles, o.acquirer_ids, o.forwarder_ids);
                let now = format!("{} {:?} {:?} {:?}", p.name, p.roles, p.acquirer_ids, p.forwarder_ids);
                if current.gone_participants.contains(&i) {
                    changes.push(format!("participant {}: added again", p.id));
                } else if was != now && !present[i] {
                    changes.push(format!("participant {}: changed (name, roles or institution ids)", p.id));
                }
                if !current.gone_participants.contains(&i) && o.directory != p.directory && !present[i] {
                    changes.push(format!(
                        "participant {}: directory {} -> {}",
                        p.id,
                        directory_text(&o.directory),
                        directory_text(&p.directory)
                    ));
                }
                present[i] = true;
                participants[i] = p.clone();
                p_index.push(i);
            }
            None => {
                changes.push(format!("participant {}: added", p.id));
                p_index.push(participants.len());
                participants.push(p.clone());
            }
        }
    }
    let mut gone_participants = BTreeSet::new();
    for (i, here) in present.iter().enumerate() {
        if !here {
            gone_participants.insert(i);
            if !current.gone_participants.contains(&i) {
                changes.push(format!("participant {}: removed", old.participants[i].id));
            }
            // It keeps its place, without the ids it could send as.
            participants[i].acquirer_ids.clear();
            participants[i].forwarder_ids.clear();
        }
    }
    (participants, p_index, gone_participants)
}

/// The links of a reload, placed the same way, with what each needs (kept, restarted,
/// added, removed) and its fingerprint.
struct RebasedLinks {
    links: Vec<LinkSpec>,
    /// Each new link's index.
    l_index: Vec<usize>,
    fingerprints: Vec<[u8; 32]>,
    plan: Vec<LinkPlan>,
    gone_links: BTreeSet<usize>,
}

fn rebase_links(
    current: &Current,
    loaded: &Loaded,
    (participants, p_index): (&[Participant], &[usize]),
    changes: &mut Vec<String>,
) -> RebasedLinks {
    let (old, new) = (&current.engine, &loaded.engine);
    let mut l_index = Vec::with_capacity(new.links.len());
    let mut links: Vec<LinkSpec> = old.links.clone();
    let mut fingerprints = current.fingerprints.clone();
    let mut plan = vec![LinkPlan::Keep; old.links.len()];
    let mut kept = vec![false; old.links.len()];
    for (ni, l) in new.links.iter().enumerate() {
        let mut l = l.clone();
        l.participant = p_index[l.participant];
        match old.links.iter().position(|o| o.name == l.name) {
            Some(i) if current.gone_links.contains(&i) => {
                kept[i] = true;
                changes.push(format!("link {}: added again", l.name));
                plan[i] = LinkPlan::Add;
                fingerprints[i] = loaded.link_fingerprints[ni];
                links[i] = l;
                l_index.push(i);
            }
            Some(i) => {
                kept[i] = true;
                let what = format!("link {}", l.name);
                let f = diff_fields(
                    &what,
                    &link_fields(&old.links[i], &old.participants),
                    &link_fields(&l, participants),
                    changes,
                );
                diff_fields(&what, &net_fields(&current.net, i), &net_fields(&loaded.net, ni), changes);
                let moved = net_fields(&current.net, i).first() != net_fields(&loaded.net, ni).first();
                let print = loaded.link_fingerprints[ni];
                let restart =
                    f.iter().any(|k| RESTART_FIELDS.contains(k)) || print != fingerprints[i] || moved;
                if print != fingerprints[i] && !moved {
                    changes.push(format!("{what}: transport, TLS files or peer identity changed"));
                }
                if restart {
                    changes.push(format!(
                        "{what}: restarts (its connections drain and close; new ones use the new settings)"
                    ));
                    plan[i] = LinkPlan::Restart;
                }
                fingerprints[i] = print;
                links[i] = l;
                l_index.push(i);
            }
            None => {
                changes.push(format!("link {}: added", l.name));
                l_index.push(links.len());
                links.push(l);
                fingerprints.push(loaded.link_fingerprints[ni]);
                plan.push(LinkPlan::Add);
            }
        }
    }
    let mut gone_links = BTreeSet::new();
    for (i, here) in kept.iter().enumerate() {
        if !here {
            gone_links.insert(i);
            if !current.gone_links.contains(&i) {
                changes
                    .push(format!("link {}: removed (its connections drain and close)", old.links[i].name));
                plan[i] = LinkPlan::Remove;
            }
        }
    }
    RebasedLinks { links, l_index, fingerprints, plan, gone_links }
}

/// The routes of a reload, their destinations re-indexed, and what changed in them.
fn rebase_routes(
    old: &Config,
    new: &RouteTable,
    (participants, p_index): (&[Participant], &[usize]),
    changes: &mut Vec<String>,
) -> Result<RouteTable> {
    let routes: Vec<Route> =
        new.routes().iter().map(|r| Route { destination: p_index[r.destination], ..r.clone() }).collect();
    let before: BTreeSet<(String, String)> =
        old.routes.routes().iter().map(|r| route_text(r, &old.participants)).collect();
    let after: BTreeSet<(String, String)> = routes.iter().map(|r| route_text(r, participants)).collect();
    for (k, v) in before.difference(&after) {
        match after.iter().find(|(k2, _)| k2 == k) {
            Some((_, v2)) => changes.push(format!("route {k}: {v} -> {v2}")),
            None => changes.push(format!("route {k}: removed (was {v})")),
        }
    }
    for (k, v) in after.difference(&before) {
        if !before.iter().any(|(k2, _)| k2 == k) {
            changes.push(format!("route {k}: added -> {v}"));
        }
    }
    RouteTable::new(routes).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
  [[participant.link]]
  name = "acq-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"

[[participant]]
id = "iss-a"
roles = ["issuer"]
  [[participant.link]]
  name = "iss-a-1"
  mode = "dial"
  address = "127.0.0.1:9001"
  framing = "native"
  dialect = "native"
  [[participant.link]]
  name = "iss-a-2"
  mode = "dial"
  address = "127.0.0.1:9002"
  framing = "native"
  dialect = "native"

[[participant]]
id = "iss-b"
roles = ["issuer"]
  [[participant.link]]
  name = "iss-b-1"
  mode = "dial"
  address = "127.0.0.1:9003"
  framing = "native"
  dialect = "native"

[[route]]
pan_prefix = "4"
destination = "iss-a"

[[route]]
pan_prefix = "5"
destination = "iss-b"
"#;

    fn current() -> Current {
        Current::of(&crate::parse(BASE).unwrap())
    }

    fn rebased(text: &str) -> Result<Reload> {
        Ok(rebase(&current(), crate::parse(text)?)?)
    }

    fn ids(c: &Config) -> Vec<&str> {
        c.participants.iter().map(|p| p.id.as_str()).collect()
    }

    fn names(c: &Config) -> Vec<&str> {
        c.links.iter().map(|l| l.name.as_str()).collect()
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let r = rebased(BASE).unwrap();
        assert!(r.changes.is_empty(), "{:?}", r.changes);
        assert!(r.reconfigure.plan.iter().all(|p| *p == LinkPlan::Keep));
    }

    #[test]
    fn indices_stay_put_whatever_the_order_of_the_new_file() {
        // iss-b first, iss-a's second link gone, a new participant with a link.
        let text = format!(
            "{}\n{}\n{}\n[[participant]]\nid = \"iss-c\"\nroles = [\"issuer\"]\n  [[participant.link]]\n  name = \"iss-c-1\"\n  mode = \"listen\"\n  address = \"127.0.0.1:0\"\n  framing = \"native\"\n  dialect = \"native\"\n\n[[route]]\npan_prefix = \"6\"\ndestination = \"iss-c\"\n",
            &BASE[BASE.find("[[participant]]\nid = \"iss-b\"").unwrap()..BASE.find("[[route]]").unwrap()],
            &BASE[..BASE.find("[[participant]]\nid = \"iss-b\"").unwrap()].replace(
                "  [[participant.link]]\n  name = \"iss-a-2\"\n  mode = \"dial\"\n  address = \"127.0.0.1:9002\"\n  framing = \"native\"\n  dialect = \"native\"\n",
                ""
            ),
            &BASE[BASE.find("[[route]]").unwrap()..],
        );
        let r = rebased(&text).unwrap();
        let c = &r.reconfigure.engine;
        assert_eq!(ids(c), ["acq", "iss-a", "iss-b", "iss-c"]);
        assert_eq!(
            names(c),
            ["acq-1", "iss-a-1", "iss-a-2", "iss-b-1", "iss-c-1"],
            "the removed link keeps its place"
        );
        assert_eq!(
            r.reconfigure.plan,
            [LinkPlan::Keep, LinkPlan::Keep, LinkPlan::Remove, LinkPlan::Keep, LinkPlan::Add]
        );
        assert_eq!(c.links[4].participant, 3);
        assert_eq!(c.links[3].participant, 2, "iss-b-1 still belongs to iss-b at index 2");
        let dest = |prefix: &[u8]| {
            c.routes
                .routes()
                .iter()
                .find(|r| r.key == RouteKey::PanPrefix(prefix.to_vec()))
                .map(|r| r.destination)
        };
        assert_eq!((dest(b"4"), dest(b"5"), dest(b"6")), (Some(1), Some(2), Some(3)));
        let dials: Vec<usize> = r.reconfigure.dials.iter().map(|d| d.spec).collect();
        assert_eq!(dials, [3, 1], "the network side follows the engine's indices");
        assert_eq!(r.reconfigure.listens.iter().map(|l| l.spec).collect::<Vec<_>>(), [0, 4]);
        for want in [
            "link iss-a-2: removed",
            "link iss-c-1: added",
            "participant iss-c: added",
            "route pan_prefix 6: added",
        ] {
            assert!(r.changes.iter().any(|c| c.starts_with(want)), "{want} in {:?}", r.changes);
        }

        // The next reload starts from there: the removed link stays removed without a word,
        // and comes back at its old index when the file names it again.
        let again = rebase(&r.next, crate::parse(&text).unwrap()).unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        let back = rebase(&again.next, crate::parse(BASE).unwrap()).unwrap();
        assert_eq!(back.reconfigure.plan[2], LinkPlan::Add);
        assert!(back.changes.iter().any(|c| c == "link iss-a-2: added again"), "{:?}", back.changes);
        assert!(back.changes.iter().any(|c| c == "link iss-c-1: removed (its connections drain and close)"));
    }

    #[test]
    fn limits_apply_in_place_and_what_connections_cannot_take_restarts_them() {
        let r = rebased(&BASE.replacen(
            "  framing = \"native\"\n",
            "  framing = \"native\"\n  inflight_max = 99\n",
            1,
        ))
        .unwrap();
        assert_eq!(r.reconfigure.plan[0], LinkPlan::Keep);
        assert_eq!(r.reconfigure.engine.links[0].inflight_max, 99);
        assert_eq!(r.changes, ["link acq-1: inflight_max 256 -> 99"]);

        let r = rebased(&BASE.replace("127.0.0.1:9003", "127.0.0.1:9004")).unwrap();
        assert_eq!(r.reconfigure.plan[3], LinkPlan::Restart);
        assert!(
            r.changes.iter().any(|c| c == "link iss-b-1: address 127.0.0.1:9003 -> 127.0.0.1:9004"),
            "{:?}",
            r.changes
        );

        let r = rebased(&BASE.replacen(
            "name = \"iss-a-1\"\n  mode = \"dial\"\n  address = \"127.0.0.1:9001\"\n  framing = \"native\"\n  dialect = \"native\"",
            "name = \"iss-a-1\"\n  mode = \"dial\"\n  address = \"127.0.0.1:9001\"\n  framing = \"bin2\"\n  dialect = \"iso87-ascii\"",
            1,
        ))
        .unwrap();
        assert_eq!(r.reconfigure.plan[1], LinkPlan::Restart, "{:?}", r.changes);

        let r =
            rebased(&BASE.replace("destination = \"iss-b\"", "destination = \"iss-a\"\ntimeout_ms = 9000"))
                .unwrap();
        assert_eq!(
            r.changes,
            ["route pan_prefix 5: iss-b (all classes, timeout 5000 ms) -> iss-a (all classes, timeout 9000 ms)"]
        );
    }

    #[test]
    fn a_journal_or_admin_address_change_is_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("corridor-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pan.key"), "5a".repeat(32)).unwrap();
        let with = format!("{BASE}\n[journal]\ndir = \"j\"\nkey_file = \"pan.key\"\n");
        let loaded = crate::parse_in(&with, &dir).unwrap();
        assert!(loaded.journal.as_ref().unwrap().compact_checkpoints, "compact unless told");
        let told = crate::parse_in(&format!("{with}compact_checkpoints = false\n"), &dir).unwrap();
        assert!(!told.journal.as_ref().unwrap().compact_checkpoints);
        let cur = Current::of(&loaded);
        let moved = with.replace("dir = \"j\"", "dir = \"k\"");
        let e = rebase(&cur, crate::parse_in(&moved, &dir).unwrap()).err().unwrap();
        assert!(e.to_string().contains("[journal] section cannot change"), "{e}");
        // Every setting of it, those a running journal reads once too.
        for set in ["preallocate = false", "compact_checkpoints = false", "checkpoint_segments = 8"] {
            let changed = format!("{with}{set}\n");
            let e = rebase(&cur, crate::parse_in(&changed, &dir).unwrap()).err().unwrap();
            assert!(e.to_string().contains("[journal] section cannot change"), "{set}: {e}");
        }
        assert!(rebase(&cur, crate::parse_in(&format!("{with}compact_checkpoints = true\n"), &dir).unwrap())
            .is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}

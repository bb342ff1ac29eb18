//! `[cluster]`: the cluster a node is one of, and what each node keeps of its own.
//!
//! Every node of a cluster serves one configuration (the cluster carries it between them,
//! see [`crate::Source`]), so the file is the same on every node and each node is named
//! from outside it (`corridor serve --node`). What cannot be the same on every node is
//! written once per node in `[cluster.nodes.<name>]` — its journal directory, its admin
//! address, its listening addresses, whether it is a standby — and put in force for the
//! node named before the file is checked, so everything after sees one node's
//! configuration. Every node's section is checked on every node: a misspelt link in node
//! b's section fails node a's `check-config` too.

use anyhow::{bail, Result};

use crate::file::{File, Mode, NodeSection};

/// A checked `[cluster]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This node's name (a lease names its holder by it).
    pub node: String,
    /// The NATS servers.
    pub nats: Vec<String>,
    /// The JetStream stream the shards' journals are replicated in (default `CORRIDOR`).
    pub stream: String,
    /// Its copies (default 3).
    pub replicas: usize,
    /// Whether the node appends its batches and checkpoints compressed (default true). A
    /// build before compression cannot read compressed messages: false while one may still
    /// read the stream — a rolling upgrade, a way back to it.
    pub compress: bool,
    /// A standby: at start the node waits, without bound, for each shard's lease another
    /// node holds, and takes the shard over once that node stops renewing it (default
    /// false: it gives up after `LEASE_WAIT_MAX` and says who holds the lease, so a second
    /// active node by mistake fails loudly).
    pub standby: bool,
    /// The nodes `[cluster.nodes]` names (empty: it names none).
    pub nodes: Vec<String>,
    /// Where this node takes the connections other nodes relay to it, and the node links'
    /// TLS (`corridor_net::relay`); `None`: it neither takes nor makes relays.
    pub relay: Option<RelaySettings>,
    /// The shards this node runs, in order (`[cluster.nodes.<name>] shards`; a standby: the
    /// shards it waits for); `None`: every shard. The others' participants are served
    /// through the nodes that run them: their partners' connections relayed, their requests
    /// carried over node-to-node hops (`corridor_net::hop`).
    pub shards: Option<Vec<u16>>,
    /// The shards this node takes over while it runs, once their node has died (their
    /// lease expired unrenewed): `[cluster.nodes.<name>] takes_over`, beside `shards`.
    pub takes_over: Vec<u16>,
}

impl ClusterSettings {
    /// Whether this node runs shard `k`.
    #[must_use]
    pub fn runs(&self, k: usize) -> bool {
        self.shards.as_ref().is_none_or(|s| s.iter().any(|&x| usize::from(x) == k))
    }
}

/// A node's relays (see `corridor_net::relay`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelaySettings {
    /// Where this node takes node links.
    pub address: std::net::SocketAddr,
    /// Where the other nodes reach it (published with its leases): `address`, unless
    /// `relay_advertise` names another (a NAT, a proxy in between).
    pub advertise: std::net::SocketAddr,
    /// This node's certificate and key, and the cluster's CA.
    pub files: corridor_net::TlsFiles,
}

impl RelaySettings {
    /// The node links' TLS, for a cluster of `nodes`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read, or a certificate or key that cannot be used.
    pub fn tls(&self, nodes: &[String]) -> Result<corridor_net::relay::RelayTls> {
        corridor_net::relay::RelayTls::new(&self.files, nodes.to_vec())
            .map_err(|e| anyhow::anyhow!("cluster: relay_tls: {e}"))
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Puts node `node`'s own settings in force in `file` (`None`: the node `[cluster] node`
/// names). A file without `[cluster]` takes no node.
pub(crate) fn for_node(file: &mut File, node: Option<&str>) -> Result<()> {
    let Some(cluster) = file.cluster.as_mut() else {
        if let Some(n) = node {
            bail!("node {n:?}: the configuration has no [cluster] section");
        }
        return Ok(());
    };
    let name = match (node, cluster.node.as_deref()) {
        (Some(n), _) | (None, Some(n)) => n.to_owned(),
        (None, None) => {
            bail!("cluster: name this node: corridor serve --node NAME (or [cluster] node = \"NAME\")")
        }
    };
    if !name_ok(&name) {
        bail!("cluster: node {name:?}: 1-64 letters, digits, '-' or '_'");
    }
    let nodes = cluster.nodes.clone();
    cluster.node = Some(name.clone());
    for (n, section) in &nodes {
        if !name_ok(n) {
            bail!("cluster.nodes.{n}: a node's name is 1-64 letters, digits, '-' or '_'");
        }
        check_node(file, n, section)?;
    }
    // Every shard is run by a node (a node that names no shards runs them all).
    if let (Some(n), false) =
        (file.switch.shards, nodes.is_empty() || nodes.values().any(|s| s.shards.is_none()))
    {
        let run: std::collections::BTreeSet<usize> =
            nodes.values().flat_map(|s| s.shards.iter().flatten()).map(|&k| usize::from(k)).collect();
        if let Some(k) = (0..n).find(|k| !run.contains(k)) {
            bail!("cluster: no node runs shard {k} (each [cluster.nodes.<name>] names the shards it runs)");
        }
    }
    // A standby takes over what one node runs: it waits for its shards' leases one after
    // another, so shards two nodes run would leave the second's unserved while the first
    // lives.
    for (n, section) in nodes.iter().filter(|(_, s)| s.standby == Some(true)) {
        let runs = |s: &NodeSection, k: u16| s.shards.as_ref().is_none_or(|l| l.contains(&k));
        let wanted: Vec<u16> = match (&section.shards, file.switch.shards) {
            (Some(l), _) => l.clone(),
            (None, Some(count)) => (0..u16::try_from(count).unwrap_or(u16::MAX)).collect(),
            (None, None) => continue,
        };
        let by: Vec<&str> = nodes
            .iter()
            .filter(|(m, s)| *m != n && s.standby != Some(true) && wanted.iter().any(|&k| runs(s, k)))
            .map(|(m, _)| m.as_str())
            .collect();
        if by.len() > 1 {
            bail!(
                "cluster.nodes.{n}: a standby takes over one node's shards, and shards {wanted:?} are run by {} \
                 (give each of those nodes a standby of its own, naming its shards)",
                by.join(" and ")
            );
        }
    }
    if nodes.is_empty() {
        return Ok(());
    }
    let Some(own) = nodes.get(&name) else {
        bail!(
            "cluster: node {name:?} is not one of the nodes [cluster.nodes] names ({})",
            nodes.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    if let Some(dir) = &own.journal_dir {
        if let Some(j) = file.journal.as_mut() {
            j.dir.clone_from(dir);
        }
    }
    if let Some(address) = &own.admin {
        if let Some(a) = file.admin.as_mut() {
            a.address = Some(address.clone());
        }
    }
    for (link, address) in &own.listen {
        for l in file.participants.iter_mut().flat_map(|p| p.links.iter_mut()) {
            if l.name == *link {
                l.address.clone_from(address);
            }
        }
    }
    if let (Some(standby), Some(c)) = (own.standby, file.cluster.as_mut()) {
        c.standby = Some(standby);
    }
    if let Some(c) = file.cluster.as_mut() {
        c.relay.clone_from(&own.relay);
        c.relay_advertise.clone_from(&own.relay_advertise);
        c.shards.clone_from(&own.shards);
        c.takes_over.clone_from(&own.takes_over);
    }
    Ok(())
}

/// Puts in force in the cluster's configuration `cluster` (after [`for_node`]) what node's
/// own file `own` (after [`for_node`]) keeps of its own: its name, the NATS servers it
/// reaches, whether it is a standby, its journal (directory and PAN key file), its admin
/// server, and the address of each listening link both name.
pub(crate) fn keep_own(cluster: &mut File, own: File) -> Result<()> {
    let (Some(c), Some(o)) = (cluster.cluster.as_mut(), own.cluster) else {
        bail!("the cluster's configuration has no [cluster] section");
    };
    c.node = o.node;
    c.nats = o.nats;
    c.standby = o.standby;
    if c.stream != o.stream {
        bail!(
            "the cluster's configuration names stream {:?}, this node's file {:?}",
            c.stream.as_deref().unwrap_or("CORRIDOR"),
            o.stream.as_deref().unwrap_or("CORRIDOR")
        );
    }
    match (cluster.journal.as_mut(), own.journal) {
        (Some(j), Some(o)) => {
            j.dir = o.dir;
            j.key_file = o.key_file;
        }
        _ => bail!("the cluster's configuration and this node's file must both have a [journal]"),
    }
    cluster.admin = own.admin;
    let own_listens: std::collections::BTreeMap<String, String> = own
        .participants
        .into_iter()
        .flat_map(|p| p.links)
        .filter(|l| l.mode == Mode::Listen)
        .map(|l| (l.name, l.address))
        .collect();
    for l in cluster.participants.iter_mut().flat_map(|p| p.links.iter_mut()) {
        if let (Mode::Listen, Some(a)) = (l.mode, own_listens.get(&l.name)) {
            l.address.clone_from(a);
        }
    }
    Ok(())
}

/// Node `name`'s section, against the shared file: what it sets must exist there.
fn check_node(file: &File, name: &str, section: &NodeSection) -> Result<()> {
    let at = format!("cluster.nodes.{name}");
    if section.journal_dir.is_some() && file.journal.is_none() {
        bail!("{at}: journal_dir, and the file has no [journal]");
    }
    if section.admin.is_some() && file.admin.is_none() {
        bail!("{at}: admin, and the file has no [admin]");
    }
    if let Some(a) = &section.relay {
        if a.parse::<std::net::SocketAddr>().is_err() {
            bail!("{at}: relay {a:?} is not an address (host:port, numeric)");
        }
        if file.cluster.as_ref().is_none_or(|c| c.relay_tls.is_none()) {
            bail!("{at}: relay, and [cluster] has no relay_tls (node links are always mutual TLS)");
        }
    }
    if let Some(a) = &section.relay_advertise {
        if a.parse::<std::net::SocketAddr>().is_err() {
            bail!("{at}: relay_advertise {a:?} is not an address (host:port, numeric)");
        }
        if section.relay.is_none() {
            bail!("{at}: relay_advertise, and no relay (the address it stands for)");
        }
    }
    if let Some(shards) = &section.shards {
        let count = file.switch.shards;
        if shards.is_empty() {
            bail!("{at}: shards names no shard (leave it out for every shard)");
        }
        if let Some(k) = shards.iter().find(|&&k| count.is_none_or(|n| usize::from(k) >= n)) {
            match count {
                Some(n) => bail!("{at}: shards names shard {k}, and the switch runs {n} (0-{})", n - 1),
                None => bail!("{at}: shards names shards, and [switch] shards does not say how many there are (every node must run the same number)"),
            }
        }
        let mut sorted = shards.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            bail!("{at}: shards names shard {} twice", w[0]);
        }
        if file.cluster.as_ref().is_none_or(|c| c.relay_tls.is_none()) || section.relay.is_none() {
            bail!("{at}: shards, and no relay: a node that runs some shards reaches the others' over node links (relay and [cluster] relay_tls)");
        }
    }
    if !section.takes_over.is_empty() {
        let Some(own) = &section.shards else {
            bail!("{at}: takes_over, and no shards (a node that runs every shard has none to take over)");
        };
        if section.standby == Some(true) {
            bail!("{at}: takes_over, and a standby (a standby takes its shards over at start, as it waits)");
        }
        let count = file.switch.shards.unwrap_or(0);
        if let Some(k) = section.takes_over.iter().find(|&&k| usize::from(k) >= count || own.contains(&k)) {
            bail!("{at}: takes_over names shard {k}, which is not another of the switch's {count} shards");
        }
    }
    for link in section.listen.keys() {
        let found = file.participants.iter().flat_map(|p| p.links.iter()).find(|l| l.name == *link);
        match found {
            None => bail!("{at}: listen names link {link:?}, which no participant has"),
            Some(l) if l.mode != Mode::Listen => {
                bail!("{at}: listen names link {link:?}, which dials (a dialed link's address is the peer's)")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `[cluster]`, checked (after [`for_node`]): it replicates the journal, so it needs one.
pub(crate) fn settings(
    c: &crate::file::ClusterSection,
    journal: bool,
    base: &std::path::Path,
) -> Result<ClusterSettings> {
    if !journal {
        bail!("cluster: a cluster replicates the journal: add a [journal] section");
    }
    let Some(node) = c.node.clone() else { bail!("cluster: name this node: corridor serve --node NAME") };
    if c.nats.is_empty() || c.nats.len() > 16 {
        bail!("cluster: nats must name 1-16 servers");
    }
    if let Some(bad) = c.nats.iter().find(|u| !(u.starts_with("nats://") || u.starts_with("tls://"))) {
        bail!("cluster: nats server {bad:?} must be nats://host:port or tls://host:port");
    }
    let stream = c.stream.clone().unwrap_or_else(|| "CORRIDOR".to_owned());
    if !name_ok(&stream) {
        bail!("cluster: stream {stream:?}: 1-64 letters, digits, '-' or '_'");
    }
    let replicas = c.replicas.unwrap_or(3);
    if !(1..=5).contains(&replicas) {
        bail!("cluster: replicas must be 1-5, not {replicas}");
    }
    let nodes: Vec<String> = c.nodes.keys().cloned().collect();
    let relay = match (&c.relay, &c.relay_tls) {
        (None, _) => None,
        (Some(_), None) => bail!("cluster: relay needs relay_tls (node links are always mutual TLS)"),
        (Some(a), Some(t)) => {
            let address = a.parse().map_err(|_| anyhow::anyhow!("cluster: relay {a:?} is not an address"))?;
            // (Checked with the node's section, as `relay` is: an address, beside a relay.)
            let advertise = match &c.relay_advertise {
                Some(v) => v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("cluster: relay_advertise {v:?} is not an address"))?,
                None => address,
            };
            Some(RelaySettings { address, advertise, files: crate::tls_files(t, base) })
        }
    };
    Ok(ClusterSettings {
        node,
        nats: c.nats.clone(),
        stream,
        replicas,
        compress: c.compress.unwrap_or(true),
        standby: c.standby.unwrap_or(false),
        nodes,
        relay,
        shards: c.shards.as_ref().map(|s| {
            let mut s = s.clone();
            s.sort_unstable();
            s
        }),
        takes_over: c.takes_over.clone(),
    })
}

#[cfg(test)]
mod tests {
    use crate::fixture::{two_participants, FixtureLink};

    /// A cluster's file in `dir` (a PAN key and an admin token there), with `nodes` (TOML
    /// for `[cluster.nodes.*]`) and `route` (a pan_prefix routed to the issuer).
    fn shared(dir: &std::path::Path, nodes: &str, route: &str) -> std::path::PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("pan.key"), "5a".repeat(32)).unwrap();
        std::fs::write(dir.join("token"), "t".repeat(32)).unwrap();
        let text = format!(
            "[switch]\nshards = 2\n{}\n[[route]]\npan_prefix = \"{route}\"\ndestination = \"iss\"\n\n\
             [journal]\ndir = \"journal\"\nkey_file = \"pan.key\"\n\n[admin]\naddress = \"127.0.0.1:9100\"\ntoken_file = \"token\"\n\n\
             [cluster]\nnats = [\"nats://127.0.0.1:4222\"]\n{nodes}",
            two_participants(&FixtureLink::native("127.0.0.1:7000"), &FixtureLink::native("127.0.0.1:7999"))
        );
        let path = dir.join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("corridor-cluster-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const NODES: &str = "[cluster.nodes.a]\njournal_dir = \"a/journal\"\nadmin = \"127.0.0.1:9101\"\nlisten = { \"acq-1\" = \"127.0.0.1:7101\" }\n\n\
                         [cluster.nodes.b]\njournal_dir = \"b/journal\"\nadmin = \"127.0.0.1:9102\"\nlisten = { \"acq-1\" = \"127.0.0.1:7102\" }\nstandby = true\n";

    #[test]
    fn one_file_serves_every_node_each_with_its_own_settings() {
        let d = dir("one-file");
        let path = shared(&d, NODES, "4111");
        for (node, admin, listen, standby) in [
            ("a", "127.0.0.1:9101", "127.0.0.1:7101", false),
            ("b", "127.0.0.1:9102", "127.0.0.1:7102", true),
        ] {
            let l = crate::load_as(&path, Some(node)).unwrap();
            let c = l.cluster.as_ref().unwrap();
            assert_eq!((c.node.as_str(), c.standby), (node, standby));
            assert_eq!(c.nodes, ["a", "b"]);
            assert_eq!(l.journal.as_ref().unwrap().dir, d.join(format!("{node}/journal")));
            assert_eq!(l.admin.as_ref().unwrap().address.to_string(), admin);
            assert_eq!(l.net.listens[0].address.to_string(), listen);
            // The shared configuration is one whatever the node: one digest.
            assert_eq!(l.digest, crate::load_as(&path, Some("a")).unwrap().digest);
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_node_the_file_does_not_name_or_a_section_that_names_what_is_not_there_is_refused() {
        let d = dir("unknown");
        let path = shared(&d, NODES, "4111");
        let e = format!("{:#}", crate::load_as(&path, Some("c")).err().unwrap());
        assert!(e.contains("node \"c\" is not one of the nodes [cluster.nodes] names (a, b)"), "{e}");
        let e = format!("{:#}", crate::load(&path).err().unwrap());
        assert!(e.contains("name this node"), "{e}");
        // A misspelt link in b's section fails a's check as well.
        let path = shared(
            &d,
            &NODES.replace("listen = { \"acq-1\" = \"127.0.0.1:7102\" }", "listen = { \"acq-9\" = \"x\" }"),
            "4111",
        );
        let e = format!("{:#}", crate::load_as(&path, Some("a")).err().unwrap());
        assert!(e.contains("cluster.nodes.b: listen names link \"acq-9\""), "{e}");
        let path = shared(
            &d,
            &NODES.replace("\"acq-1\" = \"127.0.0.1:7102\"", "\"iss-1\" = \"127.0.0.1:7102\""),
            "4111",
        );
        let e = format!("{:#}", crate::load_as(&path, Some("a")).err().unwrap());
        assert!(e.contains("which dials"), "{e}");
        // A file without [cluster] takes no node.
        let single = crate::fixture::two_participants(
            &FixtureLink::native("127.0.0.1:7000"),
            &FixtureLink::native("127.0.0.1:7999"),
        );
        let e = format!(
            "{:#}",
            crate::parse_in(&single, &d)
                .and_then(|_| {
                    std::fs::write(d.join("single.toml"), &single).unwrap();
                    crate::load_as(&d.join("single.toml"), Some("a"))
                })
                .err()
                .unwrap()
        );
        assert!(e.contains("has no [cluster] section"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_nodes_relay_needs_the_node_links_tls_and_an_address_and_each_node_takes_its_own() {
        let d = dir("relay");
        let path = shared(&d, &format!("{NODES}relay = \"127.0.0.1:7402\"\n"), "4111");
        let e = format!("{:#}", crate::load_as(&path, Some("a")).err().unwrap());
        assert!(e.contains("cluster.nodes.b: relay, and [cluster] has no relay_tls"), "{e}");
        crate::certs::dev(&d.join("certs"), &["a".into(), "b".into()], 30).unwrap();
        let tls = "relay_tls = { cert = \"certs/a.pem\", key = \"certs/a.key\", ca = [\"certs/ca.pem\"] }\n";
        let with = |nodes: &str| nodes.replacen("[cluster.nodes.a]", &format!("{tls}[cluster.nodes.a]"), 1);
        let path = shared(&d, &with(&format!("{NODES}relay = \"127.0.0.1:7402\"\n")), "4111");
        let b = crate::load_as(&path, Some("b")).unwrap();
        let r = b.cluster.as_ref().unwrap().relay.as_ref().expect("b takes relays");
        assert_eq!(r.address.to_string(), "127.0.0.1:7402");
        assert_eq!(r.advertise, r.address, "published as it is taken, unless said otherwise");
        assert_eq!(r.files.cert, d.join("certs/a.pem"));
        assert!(
            crate::load_as(&path, Some("a")).unwrap().cluster.unwrap().relay.is_none(),
            "a's section has none"
        );
        let path = shared(&d, &with(&format!("{NODES}relay = \"node-b:7402\"\n")), "4111");
        let e = format!("{:#}", crate::load_as(&path, Some("a")).err().unwrap());
        assert!(e.contains("relay \"node-b:7402\" is not an address"), "{e}");
        let path = shared(
            &d,
            &with(&format!("{NODES}relay = \"127.0.0.1:7402\"\n"))
                .replace("certs/a.key", "certs/missing.key"),
            "4111",
        );
        let e = format!("{:#}", crate::load_as(&path, Some("b")).err().unwrap());
        assert!(e.contains("relay_tls") && e.contains("missing.key"), "{e}");
        // Reached elsewhere (a proxy, a NAT): what the other nodes dial is published.
        let advertised =
            with(&format!("{NODES}relay = \"0.0.0.0:7402\"\nrelay_advertise = \"10.0.0.2:17402\"\n"));
        let b = crate::load_as(&shared(&d, &advertised, "4111"), Some("b")).unwrap();
        let r = b.cluster.unwrap().relay.unwrap();
        assert_eq!(
            (r.address.to_string(), r.advertise.to_string()),
            ("0.0.0.0:7402".into(), "10.0.0.2:17402".into())
        );
        for (bad, says) in [
            (
                "relay = \"127.0.0.1:7402\"\nrelay_advertise = \"node-b:7402\"\n",
                "relay_advertise \"node-b:7402\" is not an address",
            ),
            ("relay_advertise = \"10.0.0.2:17402\"\n", "relay_advertise, and no relay"),
        ] {
            let path = shared(&d, &with(&format!("{NODES}{bad}")), "4111");
            let e = format!("{:#}", crate::load_as(&path, Some("a")).err().unwrap());
            assert!(e.contains(says), "{e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn each_node_runs_the_shards_its_section_names_and_every_shard_is_run_by_one() {
        let d = dir("shards");
        crate::certs::dev(&d.join("certs"), &["a".into(), "b".into()], 30).unwrap();
        let tls = "relay_tls = { cert = \"certs/a.pem\", key = \"certs/a.key\", ca = [\"certs/ca.pem\"] }\n";
        // Node a's and node b's sections, each with a relay and `shards` as given.
        let nodes = |a: &str, b: &str| {
            format!(
                "{tls}[cluster.nodes.a]\nrelay = \"127.0.0.1:7401\"\n{a}\n[cluster.nodes.b]\nrelay = \"127.0.0.1:7402\"\n{b}"
            )
        };
        let path = shared(&d, &nodes("shards = [0]\n", "shards = [1]\n"), "4111");
        for (node, runs) in [("a", [true, false]), ("b", [false, true])] {
            let c = crate::load_as(&path, Some(node)).unwrap().cluster.unwrap();
            assert_eq!([c.runs(0), c.runs(1)], runs, "node {node}");
        }
        // A node that names none runs every shard.
        let path = shared(&d, &nodes("shards = [1, 0]\n", ""), "4111");
        let a = crate::load_as(&path, Some("a")).unwrap().cluster.unwrap();
        assert_eq!(a.shards, Some(vec![0, 1]), "in order");
        let b = crate::load_as(&path, Some("b")).unwrap().cluster.unwrap();
        assert!(b.shards.is_none() && b.runs(0) && b.runs(1));
        for (a, b, says) in [
            ("shards = [0]\n", "shards = [2]\n", "shards names shard 2, and the switch runs 2"),
            ("shards = []\n", "", "shards names no shard"),
            ("shards = [1, 1]\n", "", "shards names shard 1 twice"),
            ("shards = [0]\n", "shards = [0]\n", "no node runs shard 1"),
        ] {
            let path = shared(&d, &nodes(a, b), "4111");
            let e = format!("{:#}", crate::load_as(&path, Some("a")).err().unwrap());
            assert!(e.contains(says), "{a} {b}: {e}");
        }
        // A standby over shards two nodes run is refused; one over one node's shards is not.
        let standby = |list: &str| {
            nodes("shards = [0]\n", "shards = [1]\n")
                + &format!("\n[cluster.nodes.c]\nrelay = \"127.0.0.1:7403\"\nstandby = true\n{list}")
        };
        let e = format!("{:#}", crate::load_as(&shared(&d, &standby(""), "4111"), Some("a")).err().unwrap());
        assert!(
            e.contains("cluster.nodes.c: a standby takes over one node's shards") && e.contains("a and b"),
            "{e}"
        );
        let c = crate::load_as(&shared(&d, &standby("shards = [1]\n"), "4111"), Some("c"))
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.shards, Some(vec![1]));
        // A node that runs some shards may take the others over while it runs.
        let path = shared(&d, &nodes("shards = [0]\ntakes_over = [1]\n", "shards = [1]\n"), "4111");
        assert_eq!(crate::load_as(&path, Some("a")).unwrap().cluster.unwrap().takes_over, vec![1]);
        assert!(crate::load_as(&path, Some("b")).unwrap().cluster.unwrap().takes_over.is_empty());
        for (a, says) in [
            ("takes_over = [1]\n", "takes_over, and no shards"),
            ("shards = [0]\ntakes_over = [0]\n", "takes_over names shard 0, which is not another"),
            ("shards = [0]\ntakes_over = [2]\n", "takes_over names shard 2"),
            ("shards = [0]\ntakes_over = [1]\nstandby = true\n", "takes_over, and a standby"),
        ] {
            let e = format!(
                "{:#}",
                crate::load_as(&shared(&d, &nodes(a, "shards = [1]\n"), "4111"), Some("b")).err().unwrap()
            );
            assert!(e.contains(says), "{a}: {e}");
        }
        // A node that runs some shards reaches the others over node links: it needs a relay.
        let text = nodes("shards = [0]\n", "shards = [1]\n").replace("relay = \"127.0.0.1:7402\"\n", "");
        let e = format!("{:#}", crate::load_as(&shared(&d, &text, "4111"), Some("a")).err().unwrap());
        assert!(e.contains("cluster.nodes.b: shards, and no relay"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_clusters_configuration_is_served_with_what_the_node_keeps_of_its_own() {
        // Node b's own file is older (another route) and names its settings in place, the
        // way a file of its own does; the cluster's is a's newer one.
        let (da, db) = (dir("keep-a"), dir("keep-b"));
        let a = shared(&da, NODES, "4222");
        let b = shared(&db, "node = \"b\"\nstandby = true\n", "4111");
        let text = std::fs::read_to_string(&b)
            .unwrap()
            .replace("127.0.0.1:7000", "127.0.0.1:7202")
            .replace("127.0.0.1:9100", "127.0.0.1:9202")
            .replace("dir = \"journal\"", "dir = \"journal-b\"");
        std::fs::write(&b, text).unwrap();
        let cluster = crate::read_source(&a).unwrap();
        let own = crate::read_source(&b).unwrap();
        let l = crate::from_cluster(&cluster, &own, &b, None).unwrap();
        let c = l.cluster.as_ref().unwrap();
        assert_eq!((c.node.as_str(), c.standby), ("b", true));
        assert_eq!(l.journal.as_ref().unwrap().dir, db.join("journal-b"));
        assert_eq!(l.admin.as_ref().unwrap().address.to_string(), "127.0.0.1:9202");
        assert_eq!(l.net.listens[0].address.to_string(), "127.0.0.1:7202");
        // The routes are the cluster's, and so is the digest.
        let keys: Vec<String> = l
            .engine
            .routes
            .routes()
            .iter()
            .filter_map(|r| match &r.key {
                corridor_engine::RouteKey::PanPrefix(p) => Some(String::from_utf8_lossy(p).into_owned()),
                _ => None,
            })
            .collect();
        assert!(
            keys.iter().any(|k| k.contains("4222")) && !keys.iter().any(|k| k.contains("4111")),
            "{keys:?}"
        );
        assert_eq!(l.digest, cluster.digest());
        // Another stream is another cluster.
        let other = shared(&db, "node = \"b\"\nstream = \"OTHER\"\n", "4111");
        let e = format!(
            "{:#}",
            crate::from_cluster(&cluster, &crate::read_source(&other).unwrap(), &other, None).err().unwrap()
        );
        assert!(e.contains("names stream \"CORRIDOR\", this node's file \"OTHER\""), "{e}");
        let _ = (std::fs::remove_dir_all(&da), std::fs::remove_dir_all(&db));
    }
}

//! The configuration most tests, benchmarks and examples start from, written once: an
//! acquirer `acq` (BIN `12345678`) on a listening link `acq-1`, and an issuer `iss` on a
//! dialed link `iss-1`. Each caller says how the links speak and where, and appends its
//! routes and sections (`[switch]` goes before: TOML tables after the arrays would belong to
//! them).

use std::fmt::Write as _;

/// One of the two links.
#[derive(Clone, Debug)]
pub struct FixtureLink {
    /// Where it listens or dials.
    pub address: String,
    /// Its framing (`native`, `bin2`, …).
    pub framing: &'static str,
    /// Its dialect (`native`, `iso87-ascii`, …).
    pub dialect: &'static str,
    /// More of the link's keys, one `key = value` a line.
    pub extra: Vec<String>,
}

impl FixtureLink {
    /// A native link at `address`.
    #[must_use]
    pub fn native(address: impl ToString) -> Self {
        Self::classic(address, "native", "native")
    }

    /// A link at `address` with `framing` and `dialect`.
    #[must_use]
    pub fn classic(address: impl ToString, framing: &'static str, dialect: &'static str) -> Self {
        Self { address: address.to_string(), framing, dialect, extra: Vec::new() }
    }

    /// With one more key (`key = value`).
    #[must_use]
    pub fn with(mut self, line: impl ToString) -> Self {
        self.extra.push(line.to_string());
        self
    }

    fn write(&self, out: &mut String, name: &str, mode: &str) {
        let _ = write!(
            out,
            "  [[participant.link]]\n  name = \"{name}\"\n  mode = \"{mode}\"\n  address = \"{}\"\n  framing = \"{}\"\n  dialect = \"{}\"\n",
            self.address, self.framing, self.dialect
        );
        for line in &self.extra {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// The two participants, `acquirer` listening and `issuer` dialed, as TOML.
#[must_use]
pub fn two_participants(acquirer: &FixtureLink, issuer: &FixtureLink) -> String {
    let mut out = String::from(
        "\n[[participant]]\nid = \"acq\"\nroles = [\"acquirer\"]\nacquirer_ids = [\"12345678\"]\n",
    );
    acquirer.write(&mut out, "acq-1", "listen");
    out.push_str("\n[[participant]]\nid = \"iss\"\nroles = [\"issuer\"]\n");
    issuer.write(&mut out, "iss-1", "dial");
    out.push('\n');
    out
}

/// One `[[rate]]` section, for a configuration or a rate file: `from` to `to` at `rate`
/// (decimal text), quoted as `FROM-TO-1`, valid from 2020 to 2099, with `markup_bps` when it
/// is not 0.
#[must_use]
pub fn rate(from: &str, to: &str, rate: &str, markup_bps: u32) -> String {
    let markup = if markup_bps == 0 { String::new() } else { format!("markup_bps = {markup_bps}\n") };
    format!(
        "[[rate]]\nquote = \"{from}-{to}-1\"\nfrom = \"{from}\"\nto = \"{to}\"\nrate = \"{rate}\"\n{markup}\
         valid_from = 2020-01-01T00:00:00Z\nvalid_to = 2099-01-01T00:00:00Z\n\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_fixture_is_a_rate_the_configuration_takes() {
        let text = format!(
            "[currency]\nsettlement = \"USD\"\n\n{}{}{}",
            rate("VND", "THB", "0.00137", 50),
            rate("VND", "USD", "0.0000394", 0),
            two_participants(&FixtureLink::native("127.0.0.1:0"), &FixtureLink::native("127.0.0.1:9"))
        );
        let loaded = crate::parse(&text).expect("valid");
        assert_eq!(loaded.engine.interop.rates.quotes().len(), 2);
        assert!(
            rate("A", "B", "1", 0).contains("quote = \"A-B-1\"")
                && !rate("A", "B", "1", 0).contains("markup")
        );
    }

    #[test]
    fn a_cluster_section_replicates_a_journal_and_names_its_servers() {
        let parts =
            two_participants(&FixtureLink::native("127.0.0.1:0"), &FixtureLink::native("127.0.0.1:9"));
        let key = std::env::temp_dir().join(format!("corridor-fixture-key-{}", std::process::id()));
        std::fs::write(&key, "5a".repeat(32)).unwrap();
        let journal = format!("[journal]\ndir = \"j\"\nkey_file = \"{}\"\n", key.display());
        let cluster = "[cluster]\nnode = \"n1\"\nnats = [\"nats://127.0.0.1:4222\"]\n";
        let e = crate::parse(&format!("{parts}{cluster}")).err().expect("refused").to_string();
        assert!(e.contains("add a [journal] section"), "{e}");
        let bad = cluster.replace("nats://", "http://");
        let e = crate::parse(&format!("{parts}{journal}{bad}")).err().expect("refused").to_string();
        assert!(e.contains("must be nats://host:port"), "{e}");
        let e = crate::parse(&format!("{parts}{journal}{cluster}replicas = 7\n"))
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("replicas must be 1-5"), "{e}");
        let ok = crate::parse(&format!("{parts}{journal}{cluster}")).expect("valid");
        let c = ok.cluster.as_ref().expect("a cluster");
        assert_eq!((c.node.as_str(), c.stream.as_str(), c.replicas, c.standby), ("n1", "CORRIDOR", 3, false));
        assert!(c.compress, "appends go compressed unless told");
        let plain = crate::parse(&format!("{parts}{journal}{cluster}compress = false\n")).expect("valid");
        assert!(!plain.cluster.as_ref().expect("a cluster").compress);
        let standby = crate::parse(&format!("{parts}{journal}{cluster}standby = true\n")).expect("valid");
        let summary = crate::summary(&standby);
        assert!(
            summary.contains("cluster: node n1 of stream CORRIDOR (3 copies) on 1 NATS server(s), a standby"),
            "{summary}"
        );
        assert!(crate::summary(&ok).contains("cluster: node n1"));
        assert!(!crate::summary(&ok).contains("standby"));
        assert!(standby.cluster.expect("a cluster").standby);
        let _ = std::fs::remove_file(&key);
    }

    #[test]
    fn the_fixture_loads_with_its_links_as_asked() {
        let text = two_participants(
            &FixtureLink::classic("127.0.0.1:0", "bin2", "iso87-ascii").with("sign_on_required = false"),
            &FixtureLink::native("127.0.0.1:9").with("inflight_max = 8"),
        ) + "[[route]]\ndefault = true\ndestination = \"iss\"\n";
        let c = crate::parse(&text).unwrap();
        let links = &c.engine.links;
        assert_eq!(links.len(), 2);
        assert_eq!((links[0].name.as_str(), links[0].sign_on_required), ("acq-1", false));
        assert_eq!((links[1].name.as_str(), links[1].inflight_max), ("iss-1", 8));
    }
}

//! What a seed's world is made of: the wires, the configuration, the routes.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// What a seed's world is made of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Topology {
    pub(crate) acq: Wire,
    pub(crate) iss: Wire,
    pub(crate) echo: Duration,
    /// Whether the acquirers' links require a sign-on (0800/001) before requests.
    pub(crate) sign_on: bool,
}

pub(crate) fn config() -> Config {
    config_for(Topology {
        acq: Wire::NATIVE,
        iss: Wire::NATIVE,
        echo: Duration::from_secs(30),
        sign_on: false,
    })
}

pub(crate) fn config_for(t: Topology) -> Config {
    let link = |name: &str, participant, dial| LinkSpec {
        name: name.into(),
        participant,
        dial,
        framing: if dial { t.iss.framing } else { t.acq.framing },
        dialect: if dial { t.iss.dialect } else { t.acq.dialect },
        frame_bytes_max: FRAME_BYTES_MAX,
        // The acquirer's limit is below what the load keeps in flight at the issuer's
        // slowest: back-pressure (requests held, the reader paused) is part of every seed.
        inflight_max: if dial { 4096 } else { ACQ_INFLIGHT_MAX },
        sign_on_required: dial || t.sign_on,
        echo_interval: t.echo,
        echo_missed_max: 3,
        at_limit: AtLimit::Backpressure,
        sign_on_timeout: Duration::from_secs(10),
        frame_timeout: Duration::from_secs(5),
        timeouts_down_max: 1000,
    };
    let participant = |id: &str, acquirer: &[&str]| Participant {
        id: id.into(),
        name: id.into(),
        roles: Roles { acquirer: !acquirer.is_empty(), issuer: acquirer.is_empty(), network: false },
        acquirer_ids: acquirer
            .iter()
            .filter_map(|s| corridor_wire::InstitutionId::from_ascii(s.as_bytes()))
            .collect(),
        forwarder_ids: Vec::new(),
        directory: Default::default(),
        hop: None,
        via: None,
        shard: None,
    };
    Config {
        participants: vec![
            participant("acq", &["12345678"]),
            participant("iss", &[]),
            Participant {
                id: "net".into(),
                name: "net".into(),
                roles: Roles { acquirer: false, issuer: false, network: true },
                acquirer_ids: corridor_wire::InstitutionId::from_ascii(NET_ACQUIRER.as_bytes())
                    .into_iter()
                    .collect(),
                forwarder_ids: corridor_wire::InstitutionId::from_ascii(NET_FORWARDER.as_bytes())
                    .into_iter()
                    .collect(),
                directory: Default::default(),
                hop: None,
                via: None,
                shard: None,
            },
        ],
        links: vec![
            link("acq-1", 0, false),
            link("iss-1", 1, true),
            link("iss-2", 1, true),
            link("net-1", 2, false),
        ],
        routes: routes(TIMEOUT),
        settings: Settings {
            institution_id: None,
            reversal_retry: Duration::from_millis(500),
            reversal_repeats_max: 1000,
            saf_age_max: Duration::from_secs(86_400),
            late_window: Duration::from_secs(120),
            duplicate_window: Duration::from_secs(86_400),
            metrics: true,
            // Above what a seed sends (a few thousand), reserved at each start.
            duplicate_window_entries: 1 << 16,
        },
        interop: Default::default(),
    }
}

/// The route table: BIN 4 to the issuer, with `timeout`.
pub(crate) fn routes(timeout: Duration) -> RouteTable {
    let route = Route { key: RouteKey::PanPrefix(b"4".to_vec()), mti_classes: None, destination: 1, timeout };
    RouteTable::new(vec![route]).unwrap_or_else(|_| unreachable!("one valid route"))
}

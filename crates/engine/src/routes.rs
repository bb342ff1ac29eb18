//! The route table: which participant must answer a request.
//!
//! An immutable snapshot, read on every request without a lock (through `arc-swap`) and
//! replaced whole on reload. Lookup order: the receiving institution id (DE 100), then the
//! longest PAN prefix (BINs of 6 and 8 digits and longer prefixes), then the default routes.
//! Each route may be limited to some MTI classes; the first route that matches the
//! request's class wins.
//!
//! A QR payment (DE 126) is routed by DE 100, then by the networks its payload carries, in
//! the order the originator's partnership policy gives them ([`crate::qr`]): for each, a
//! route for that network and the acquirer id found in its template, then one for the
//! network with any acquirer. A route back to the originator is passed over (a network's own
//! codes are on-us: it does not send them to the switch). Nothing else: its PAN, if any, is
//! the wallet's account, and a BIN or default route would send the payment back toward the
//! wallet.

use std::time::Duration;

use rustc_hash::FxHashMap;

use corridor_wire::{InstitutionId, Mti};

/// What a route matches on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteKey {
    /// The receiving institution id, DE 100.
    Receiver(InstitutionId),
    /// A PAN prefix of 1-19 digits (ASCII).
    PanPrefix(Vec<u8>),
    /// A QR network (its index in the registry), and optionally the acquirer id its
    /// template carries.
    Qr {
        /// The network.
        network: u16,
        /// Its id in the registry (`napas`), for people.
        name: Box<str>,
        /// The acquirer id; `None` for any.
        acquirer: Option<Box<str>>,
    },
    /// Anything not matched otherwise.
    Default,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// What it matches.
    pub key: RouteKey,
    /// MTI classes (second digit) it applies to: bit `c` for class `c`; `None` for all.
    pub mti_classes: Option<u16>,
    /// Index of the destination participant.
    pub destination: usize,
    /// How long the destination has to answer.
    pub timeout: Duration,
}

impl Route {
    fn accepts(&self, class: u8) -> bool {
        self.mti_classes.is_none_or(|m| m & (1 << class) != 0)
    }
}

/// A PAN prefix of up to 19 digits as a number, with its length: `(len, value)`.
type PrefixKey = (u8, u64);

fn prefix_key(digits: &[u8]) -> Option<PrefixKey> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
    }
    // 1-19, checked above.
    Some((digits.len() as u8, v))
}

/// What a request is routed by.
#[derive(Clone, Copy, Debug)]
pub struct RouteQuery<'a> {
    /// Its MTI (routes may be limited to some classes).
    pub mti: Mti,
    /// The receiving institution id, DE 100.
    pub receiver: Option<&'a InstitutionId>,
    /// The PAN's ASCII digits, DE 2.
    pub pan: Option<&'a [u8]>,
    /// A QR payment's networks, in the order to try them; `None` for a request that is not
    /// a QR payment.
    pub qr: Option<&'a [QrTarget<'a>]>,
    /// The originating participant: a QR route back to it is passed over.
    pub origin: Option<usize>,
}

impl<'a> RouteQuery<'a> {
    /// A query by DE 100 and the PAN.
    #[must_use]
    pub const fn new(mti: Mti, receiver: Option<&'a InstitutionId>, pan: Option<&'a [u8]>) -> Self {
        Self { mti, receiver, pan, qr: None, origin: None }
    }
}

/// A network found in a QR payload, to route by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QrTarget<'a> {
    /// The network's index in the registry.
    pub network: u16,
    /// The acquirer id its template carries.
    pub acquirer: Option<&'a str>,
}

/// A network's QR routes: for any acquirer, and by acquirer id.
#[derive(Clone, Debug, Default)]
struct QrRoutes {
    any: Vec<usize>,
    by_acquirer: FxHashMap<Box<str>, Vec<usize>>,
}

/// The immutable route table.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    by_receiver: FxHashMap<InstitutionId, Vec<usize>>,
    by_prefix: FxHashMap<PrefixKey, Vec<usize>>,
    by_qr: FxHashMap<u16, QrRoutes>,
    /// Distinct prefix lengths, longest first.
    prefix_lens: Vec<u8>,
    defaults: Vec<usize>,
}

/// A route that cannot be added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRoute(pub String);

impl std::fmt::Display for InvalidRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidRoute {}

impl RouteTable {
    /// Builds a table from routes, in order of preference within each key.
    ///
    /// # Errors
    ///
    /// [`InvalidRoute`] for a PAN prefix that is not 1-19 digits.
    pub fn new(routes: Vec<Route>) -> Result<Self, InvalidRoute> {
        let mut t = Self::default();
        for (i, r) in routes.iter().enumerate() {
            match &r.key {
                RouteKey::Receiver(id) => t.by_receiver.entry(*id).or_default().push(i),
                RouteKey::PanPrefix(p) => {
                    let key = prefix_key(p).ok_or_else(|| {
                        InvalidRoute(format!(
                            "PAN prefix {:?} must be 1-19 digits",
                            String::from_utf8_lossy(p)
                        ))
                    })?;
                    t.by_prefix.entry(key).or_default().push(i);
                    if !t.prefix_lens.contains(&key.0) {
                        t.prefix_lens.push(key.0);
                    }
                }
                RouteKey::Qr { network, acquirer, .. } => {
                    let q = t.by_qr.entry(*network).or_default();
                    match acquirer {
                        Some(a) => q.by_acquirer.entry(a.clone()).or_default().push(i),
                        None => q.any.push(i),
                    }
                }
                RouteKey::Default => t.defaults.push(i),
            }
        }
        t.prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
        t.routes = routes;
        Ok(t)
    }

    /// Every route, in configuration order.
    #[must_use]
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn first(&self, candidates: Option<&Vec<usize>>, class: u8) -> Option<&Route> {
        candidates?.iter().map(|&i| &self.routes[i]).find(|r| r.accepts(class))
    }

    fn first_qr(&self, candidates: Option<&Vec<usize>>, class: u8, origin: Option<usize>) -> Option<&Route> {
        candidates?
            .iter()
            .map(|&i| &self.routes[i])
            .find(|r| r.accepts(class) && Some(r.destination) != origin)
    }

    /// The route for a request: by DE 100, then (a QR payment) its networks, else the
    /// longest matching PAN prefix, then the default. See the module docs.
    #[must_use]
    pub fn lookup(&self, q: &RouteQuery<'_>) -> Option<&Route> {
        self.lookup_with_target(q).map(|(r, _)| r)
    }

    /// [`RouteTable::lookup`], with the place in `q.qr` of the network the route was found
    /// for (`None` when DE 100, a BIN or the default chose it).
    #[must_use]
    pub fn lookup_with_target(&self, q: &RouteQuery<'_>) -> Option<(&Route, Option<usize>)> {
        let (class, receiver, pan) = (q.mti.class(), q.receiver, q.pan);
        if let Some(r) = receiver.and_then(|id| self.first(self.by_receiver.get(id), class)) {
            return Some((r, None));
        }
        if let Some(targets) = q.qr {
            return self.lookup_qr(targets, class, q.origin).map(|(r, at)| (r, Some(at)));
        }
        if let Some(pan) = pan {
            for &len in &self.prefix_lens {
                if usize::from(len) > pan.len() {
                    continue;
                }
                let Some(key) = prefix_key(&pan[..usize::from(len)]) else { continue };
                if let Some(r) = self.first(self.by_prefix.get(&key), class) {
                    return Some((r, None));
                }
            }
        }
        self.first(Some(&self.defaults), class).map(|r| (r, None))
    }

    /// The first of `targets` with a route (by acquirer id, then for any acquirer), and its
    /// place in `targets`.
    #[must_use]
    pub fn lookup_qr(
        &self,
        targets: &[QrTarget<'_>],
        class: u8,
        origin: Option<usize>,
    ) -> Option<(&Route, usize)> {
        for (at, t) in targets.iter().enumerate() {
            let Some(q) = self.by_qr.get(&t.network) else { continue };
            let by_acquirer = t.acquirer.and_then(|a| self.first_qr(q.by_acquirer.get(a), class, origin));
            if let Some(r) = by_acquirer.or_else(|| self.first_qr(Some(&q.any), class, origin)) {
                return Some((r, at));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(key: RouteKey, destination: usize) -> Route {
        Route { key, mti_classes: None, destination, timeout: Duration::from_secs(5) }
    }

    fn id(s: &str) -> InstitutionId {
        InstitutionId::from_ascii(s.as_bytes()).expect("digits")
    }

    #[test]
    fn longest_prefix_wins_then_receiver_then_default() {
        let t = RouteTable::new(vec![
            route(RouteKey::PanPrefix(b"476173".to_vec()), 1),
            route(RouteKey::PanPrefix(b"47617390".to_vec()), 2),
            route(RouteKey::PanPrefix(b"4761739001".to_vec()), 3),
            route(RouteKey::Receiver(id("44556677")), 4),
            route(RouteKey::Default, 5),
        ])
        .expect("valid");
        let mti = Mti::FINANCIAL_REQUEST;
        let dest = |pan: &[u8], rx: Option<&InstitutionId>| {
            t.lookup(&RouteQuery::new(mti, rx, Some(pan))).map(|r| r.destination)
        };
        assert_eq!(dest(b"4761739001010010", None), Some(3));
        assert_eq!(dest(b"4761739011111111", None), Some(2));
        assert_eq!(dest(b"4761731101010010", None), Some(1));
        assert_eq!(dest(b"5500000000000004", None), Some(5));
        assert_eq!(dest(b"4761739001010010", Some(&id("44556677"))), Some(4), "DE 100 comes first");
        assert_eq!(dest(b"4761739001010010", Some(&id("11111111"))), Some(3), "unknown DE 100 falls through");
        assert_eq!(dest(b"47", None), Some(5), "a PAN shorter than every prefix");
    }

    #[test]
    fn mti_classes_filter_routes() {
        let mut only_auth = route(RouteKey::PanPrefix(b"476173".to_vec()), 1);
        only_auth.mti_classes = Some(1 << 1);
        let t =
            RouteTable::new(vec![only_auth, route(RouteKey::PanPrefix(b"4761".to_vec()), 2)]).expect("valid");
        let pan: &[u8] = b"4761739001010010";
        let q = |mti| RouteQuery::new(mti, None, Some(pan));
        assert_eq!(t.lookup(&q(Mti::AUTHORIZATION_REQUEST)).map(|r| r.destination), Some(1));
        assert_eq!(t.lookup(&q(Mti::FINANCIAL_REQUEST)).map(|r| r.destination), Some(2));
        let none = RouteTable::new(vec![]).expect("valid");
        assert!(none.lookup(&q(Mti::FINANCIAL_REQUEST)).is_none());
    }

    #[test]
    fn qr_payments_go_by_network_and_acquirer_in_the_order_given_never_back_or_by_bin() {
        let qr = |network, acquirer: Option<&str>| RouteKey::Qr {
            network,
            name: "n".into(),
            acquirer: acquirer.map(Into::into),
        };
        let t = RouteTable::new(vec![
            route(qr(1, None), 10),
            route(qr(1, Some("970436")), 11),
            route(qr(2, None), 12),
            route(RouteKey::PanPrefix(b"4761".to_vec()), 13),
            route(RouteKey::Default, 14),
            route(RouteKey::Receiver(id("44556677")), 15),
        ])
        .expect("valid");
        let mti = Mti::FINANCIAL_REQUEST;
        let dest = |targets: &[QrTarget<'_>], origin, rx: Option<&InstitutionId>| {
            let q =
                RouteQuery { mti, receiver: rx, pan: Some(b"4761739001010010"), qr: Some(targets), origin };
            t.lookup(&q).map(|r| r.destination)
        };
        let napas = |a| QrTarget { network: 1, acquirer: a };
        let unionpay = QrTarget { network: 2, acquirer: Some("62500123") };
        assert_eq!(dest(&[napas(Some("970436"))], None, None), Some(11), "the acquirer's route first");
        assert_eq!(dest(&[napas(Some("970415"))], None, None), Some(10), "then the network's");
        assert_eq!(dest(&[unionpay, napas(None)], None, None), Some(12), "the order given");
        assert_eq!(dest(&[unionpay, napas(None)], Some(12), None), Some(10), "never back to the originator");
        assert_eq!(
            dest(&[QrTarget { network: 9, acquirer: None }], None, None),
            None,
            "no BIN or default fallback"
        );
        assert_eq!(dest(&[], None, Some(&id("44556677"))), Some(15), "DE 100 still comes first");
        assert_eq!(t.lookup_qr(&[unionpay, napas(None)], 2, Some(12)).map(|(_, at)| at), Some(1));
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert!(RouteTable::new(vec![route(RouteKey::PanPrefix(b"47x".to_vec()), 1)]).is_err());
        assert!(RouteTable::new(vec![route(RouteKey::PanPrefix(Vec::new()), 1)]).is_err());
        assert!(RouteTable::new(vec![route(RouteKey::PanPrefix(vec![b'1'; 20]), 1)]).is_err());
    }
}

//! The route table: which participant must answer a request.
//!
//! An immutable snapshot, read on every request without a lock (through `arc-swap`) and
//! replaced whole on reload. Lookup order: the receiving institution id (DE 100), then the
//! longest PAN prefix (BINs of 6 and 8 digits and longer prefixes), then the default routes.
//! Each route may be limited to some MTI classes; the first route that matches the
//! request's class wins.

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
}

/// The immutable route table.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    by_receiver: FxHashMap<InstitutionId, Vec<usize>>,
    by_prefix: FxHashMap<PrefixKey, Vec<usize>>,
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

    /// The route for a request: by DE 100, then the longest matching PAN prefix, then the
    /// default.
    #[must_use]
    pub fn lookup(&self, q: &RouteQuery<'_>) -> Option<&Route> {
        let (class, receiver, pan) = (q.mti.class(), q.receiver, q.pan);
        if let Some(r) = receiver.and_then(|id| self.first(self.by_receiver.get(id), class)) {
            return Some(r);
        }
        if let Some(pan) = pan {
            for &len in &self.prefix_lens {
                if usize::from(len) > pan.len() {
                    continue;
                }
                let Some(key) = prefix_key(&pan[..usize::from(len)]) else { continue };
                if let Some(r) = self.first(self.by_prefix.get(&key), class) {
                    return Some(r);
                }
            }
        }
        self.first(Some(&self.defaults), class)
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
            t.lookup(&RouteQuery { mti, receiver: rx, pan: Some(pan) }).map(|r| r.destination)
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
        let q = |mti| RouteQuery { mti, receiver: None, pan: Some(pan) };
        assert_eq!(t.lookup(&q(Mti::AUTHORIZATION_REQUEST)).map(|r| r.destination), Some(1));
        assert_eq!(t.lookup(&q(Mti::FINANCIAL_REQUEST)).map(|r| r.destination), Some(2));
        let none = RouteTable::new(vec![]).expect("valid");
        assert!(none.lookup(&q(Mti::FINANCIAL_REQUEST)).is_none());
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert!(RouteTable::new(vec![route(RouteKey::PanPrefix(b"47x".to_vec()), 1)]).is_err());
        assert!(RouteTable::new(vec![route(RouteKey::PanPrefix(Vec::new()), 1)]).is_err());
        assert!(RouteTable::new(vec![route(RouteKey::PanPrefix(vec![b'1'; 20]), 1)]).is_err());
    }
}

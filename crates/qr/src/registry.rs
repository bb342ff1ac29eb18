//! The registry of QR networks: which network a merchant account object belongs to, and
//! where its acquirer id sits.
//!
//! Data, not code: [`Registry::default`] is `proto-spec/qr-networks.toml`, embedded, and
//! [`Registry::from_toml`] loads another. A registry is checked as it loads (every path and
//! range parses, IDs are in range, network ids are distinct), so classifying a payload never
//! fails: an object no rule matches is an unknown network, reported with its GUID.

use std::{fmt, ops::Range, sync::OnceLock};

use serde::Deserialize;

use crate::{
    limits::{ACQUIRER_PATH_MAX, LOCATOR_ALTERNATIVES_MAX, NETWORKS_MAX, RULES_MAX},
    mpm::{self, DataObject, MpmError, Payload},
};

/// The registry this crate ships, `proto-spec/qr-networks.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../../proto-spec/qr-networks.toml");

/// Where an acquirer id sits inside a merchant account object.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Locator {
    /// Sub-IDs to descend, from the object.
    path: Vec<u8>,
    /// Then the characters to take, or what follows an `@`.
    take: Take,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Take {
    All,
    Chars(Range<usize>),
    AfterAt,
}

impl Locator {
    fn parse(s: &str) -> Result<Self, String> {
        let (path, take) = if let Some(p) = s.strip_suffix('@') {
            (p, Take::AfterAt)
        } else if let Some((p, r)) = s.split_once('[') {
            let r = r.strip_suffix(']').ok_or_else(|| format!("acquirer {s:?}: a range ends with ']'"))?;
            let (a, b) = r.split_once("..").ok_or_else(|| format!("acquirer {s:?}: a range is [a..b]"))?;
            let (a, b) = (a.parse::<usize>(), b.parse::<usize>());
            match (a, b) {
                (Ok(a), Ok(b)) if a < b && b <= 99 => (p, Take::Chars(a..b)),
                _ => return Err(format!("acquirer {s:?}: a range [a..b] with a < b <= 99")),
            }
        } else {
            (s, Take::All)
        };
        let mut ids = Vec::new();
        if !path.is_empty() {
            for part in path.split('.') {
                match part.as_bytes() {
                    [a @ b'0'..=b'9', b @ b'0'..=b'9'] => ids.push((a - b'0') * 10 + (b - b'0')),
                    _ => return Err(format!("acquirer {s:?}: sub-IDs are two digits, joined by '.'")),
                }
            }
        }
        if ids.len() > ACQUIRER_PATH_MAX {
            return Err(format!("acquirer {s:?}: at most {ACQUIRER_PATH_MAX} sub-IDs"));
        }
        Ok(Self { path: ids, take })
    }

    fn locate<'a>(&self, object: &DataObject<'a>) -> Option<&'a str> {
        let mut value = object.value;
        for &id in &self.path {
            value = mpm::find(value, id)?;
        }
        match &self.take {
            Take::All => Some(value),
            Take::AfterAt => value.split_once('@').map(|(_, bank)| bank).filter(|b| !b.is_empty()),
            Take::Chars(r) => {
                let mut at = value.char_indices().map(|(i, _)| i).chain(std::iter::once(value.len()));
                let start = at.nth(r.start)?;
                let end = at.nth(r.end - r.start - 1)?;
                Some(&value[start..end])
            }
        }
    }
}

/// Where an id may sit: alternatives, `|`-separated, the first present wins (a PromptPay
/// transfer's proxy is a mobile number in 01, a national id in 02 or an e-wallet in 03).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Locators(Vec<Locator>);

impl Locators {
    fn parse(s: &str) -> Result<Self, String> {
        let alternatives = s.split('|').map(Locator::parse).collect::<Result<Vec<_>, _>>()?;
        if alternatives.len() > LOCATOR_ALTERNATIVES_MAX {
            return Err(format!("{s:?}: at most {LOCATOR_ALTERNATIVES_MAX} alternatives"));
        }
        Ok(Self(alternatives))
    }

    fn locate<'a>(&self, object: &DataObject<'a>) -> Option<&'a str> {
        match &self.0[..] {
            // Most rules name one place.
            [one] => one.locate(object),
            many => many.iter().find_map(|l| l.locate(object)),
        }
    }
}

/// One way to recognize a network's merchant account object.
#[derive(Clone, Debug)]
struct Rule {
    primitive: Vec<u8>,
    templates: Vec<u8>,
    guid: Vec<String>,
    guid_prefix: Vec<String>,
    any_guid: bool,
    account: bool,
    country: Option<String>,
    acquirer: Option<Locators>,
    merchant: Option<Locators>,
}

impl Rule {
    fn matches(&self, object: &DataObject<'_>, guid: Option<&str>, country: Option<&str>) -> bool {
        if self.country.as_deref().is_some_and(|c| country != Some(c)) {
            return false;
        }
        if object.id <= 25 {
            return self.primitive.contains(&object.id);
        }
        if !self.templates.contains(&object.id) {
            return false;
        }
        let Some(guid) = guid else { return false };
        self.any_guid
            || self.guid.iter().any(|g| g.eq_ignore_ascii_case(guid))
            || self.guid_prefix.iter().any(|p| {
                guid.len() >= p.len()
                    && guid.is_char_boundary(p.len())
                    && guid[..p.len()].eq_ignore_ascii_case(p)
            })
            || (self.account && is_account(guid))
    }
}

/// `name@bank`: something, one `@`, something, no spaces.
fn is_account(s: &str) -> bool {
    matches!(s.split_once('@'), Some((n, b)) if !n.is_empty() && !b.is_empty() && !b.contains('@') && !s.contains(' '))
}

/// One QR network.
#[derive(Clone, Debug)]
pub struct Network {
    /// Its id, as routes and policies name it (`napas`, `unionpay`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The market it belongs to (ISO 3166-1 alpha-2), when it has one.
    pub market: Option<String>,
    /// Mandatory root IDs its codes may leave out.
    pub optional: Vec<u8>,
    rules: Vec<Rule>,
}

/// A merchant account object, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// The object's ID (02–51).
    pub id: u8,
    /// The network's index in the registry; `None` for an unknown network.
    pub network: Option<usize>,
    /// A template's sub-ID 00 (its GUID, or a KHQR account), as written.
    pub guid: Option<&'a str>,
    /// The acquirer id, where the network's rule says it is and the payload has it.
    pub acquirer: Option<&'a str>,
    /// The merchant's id in the network, likewise.
    pub merchant: Option<&'a str>,
}

/// The QR networks the switch knows.
#[derive(Clone, Debug)]
pub struct Registry {
    networks: Vec<Network>,
}

/// A registry file that cannot be used: what is wrong, naming the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError(pub String);

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QR network registry: {}", self.0)
    }
}

impl std::error::Error for RegistryError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRegistry {
    network: Vec<FileNetwork>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNetwork {
    id: String,
    name: String,
    market: Option<String>,
    #[serde(default)]
    optional: Vec<u8>,
    rule: Vec<FileRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    #[serde(default)]
    primitive: Vec<u8>,
    templates: Option<Vec<u8>>,
    #[serde(default)]
    guid: Vec<String>,
    #[serde(default)]
    guid_prefix: Vec<String>,
    #[serde(default)]
    any_guid: bool,
    #[serde(default)]
    account: bool,
    country: Option<String>,
    acquirer: Option<String>,
    merchant: Option<String>,
}

fn rule(network: &str, r: FileRule) -> Result<Rule, String> {
    let err = |m: &str| format!("network {network:?}: {m}");
    let templated = !r.guid.is_empty() || !r.guid_prefix.is_empty() || r.any_guid || r.account;
    if r.primitive.is_empty() != templated {
        return Err(err(
            "a rule has either primitive IDs or a GUID condition (guid, guid_prefix, any_guid, account)",
        ));
    }
    if r.primitive.iter().any(|id| !(2..=25).contains(id)) {
        return Err(err("primitive IDs are 02-25"));
    }
    let templates =
        if r.primitive.is_empty() { r.templates.unwrap_or_else(|| (26..=51).collect()) } else { Vec::new() };
    if templates.iter().any(|id| !(26..=51).contains(id)) {
        return Err(err("template IDs are 26-51"));
    }
    if r.any_guid && r.country.is_none() {
        return Err(err("any_guid matches every GUID: it needs a country"));
    }
    if r.country.as_deref().is_some_and(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(err("a country is two capital letters (ISO 3166-1 alpha-2)"));
    }
    let acquirer = r.acquirer.as_deref().map(Locators::parse).transpose().map_err(|e| err(&e))?;
    let merchant = r.merchant.as_deref().map(Locators::parse).transpose().map_err(|e| err(&e))?;
    Ok(Rule {
        primitive: r.primitive,
        templates,
        guid: r.guid,
        guid_prefix: r.guid_prefix,
        any_guid: r.any_guid,
        account: r.account,
        country: r.country,
        acquirer,
        merchant,
    })
}

impl Registry {
    /// Loads a registry from its TOML text (the format of `proto-spec/qr-networks.toml`).
    ///
    /// # Errors
    ///
    /// [`RegistryError`] naming the network and what is wrong with it.
    pub fn from_toml(text: &str) -> Result<Self, RegistryError> {
        let file: FileRegistry = toml::from_str(text).map_err(|e| RegistryError(e.to_string()))?;
        if file.network.len() > NETWORKS_MAX {
            return Err(RegistryError(format!("{} networks: at most {NETWORKS_MAX}", file.network.len())));
        }
        let mut networks = Vec::with_capacity(file.network.len());
        for n in file.network {
            if n.id.is_empty()
                || !n.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(RegistryError(format!(
                    "network id {:?}: lowercase letters, digits and '-'",
                    n.id
                )));
            }
            if networks.iter().any(|m: &Network| m.id == n.id) {
                return Err(RegistryError(format!("network {:?} appears twice", n.id)));
            }
            if n.rule.is_empty() || n.rule.len() > RULES_MAX {
                return Err(RegistryError(format!("network {:?}: 1 to {RULES_MAX} rules", n.id)));
            }
            if n.optional.iter().any(|id| ![52, 53, 58, 59, 60].contains(id)) {
                return Err(RegistryError(format!(
                    "network {:?}: optional lists mandatory IDs (52, 53, 58, 59, 60)",
                    n.id
                )));
            }
            let rules = n
                .rule
                .into_iter()
                .map(|r| rule(&n.id, r))
                .collect::<Result<_, _>>()
                .map_err(RegistryError)?;
            networks.push(Network { id: n.id, name: n.name, market: n.market, optional: n.optional, rules });
        }
        Ok(Self { networks })
    }

    /// The registry this crate ships, parsed once.
    ///
    /// # Panics
    ///
    /// Never: the embedded file is checked by this crate's tests.
    #[must_use]
    pub fn builtin() -> &'static Self {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            #[allow(clippy::expect_used, reason = "the embedded file is checked by this crate's tests")]
            Self::from_toml(DEFAULT_TOML).expect("the embedded registry parses")
        })
    }

    /// The networks, in file order.
    #[must_use]
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// The index of the network with `id`.
    #[must_use]
    pub fn index(&self, id: &str) -> Option<usize> {
        self.networks.iter().position(|n| n.id == id)
    }

    /// Classifies one merchant account object (IDs 02–51) of a payload whose country (ID 58)
    /// is `country`.
    #[must_use]
    pub fn classify_object<'a>(&self, object: &DataObject<'a>, country: Option<&str>) -> Found<'a> {
        let guid = if object.id >= 26 { mpm::find(object.value, 0) } else { None };
        for (i, n) in self.networks.iter().enumerate() {
            if let Some(r) = n.rules.iter().find(|r| r.matches(object, guid, country)) {
                let acquirer = r.acquirer.as_ref().and_then(|l| l.locate(object));
                let merchant = r.merchant.as_ref().and_then(|l| l.locate(object));
                return Found { id: object.id, network: Some(i), guid, acquirer, merchant };
            }
        }
        Found { id: object.id, network: None, guid, acquirer: None, merchant: None }
    }

    /// Every merchant account object of `payload`, classified, in payload order.
    pub fn classify<'s, 'a>(&'s self, payload: &'s Payload<'a>) -> impl Iterator<Item = Found<'a>> + 's {
        let country = payload.country();
        payload.merchant_accounts().map(move |o| self.classify_object(o, country))
    }

    /// Parses a payload ([`mpm::parse`]) and checks its mandatory objects, excusing those
    /// every network found in it may leave out (a VietQR transfer code has no MCC).
    ///
    /// # Errors
    ///
    /// [`MpmError`] as [`mpm::decode`] gives it.
    pub fn decode<'a>(&self, text: &'a str) -> Result<Payload<'a>, MpmError> {
        self.decode_classified(text).map(|(p, _)| p)
    }

    /// [`Registry::decode`], with the classification it made: every merchant account
    /// object, in payload order.
    ///
    /// # Errors
    ///
    /// [`MpmError`] as [`mpm::decode`] gives it.
    pub fn decode_classified<'a>(&self, text: &'a str) -> Result<(Payload<'a>, Vec<Found<'a>>), MpmError> {
        let payload = mpm::parse(text)?;
        let found: Vec<Found<'a>> = self.classify(&payload).collect();
        let mut excused: Option<Vec<u8>> = None;
        for f in &found {
            let allowed = f.network.map_or(&[][..], |i| &self.networks[i].optional[..]);
            excused = Some(match excused {
                None => allowed.to_vec(),
                Some(e) => e.into_iter().filter(|id| allowed.contains(id)).collect(),
            });
        }
        payload.check_mandatory(excused.as_deref().unwrap_or(&[]))?;
        Ok((payload, found))
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpm::{encode, nested};

    fn found(r: &Registry, text: &str) -> Vec<(Option<String>, Option<String>)> {
        let p = r.decode(text).unwrap();
        r.classify(&p)
            .map(|f| (f.network.map(|i| r.networks()[i].id.clone()), f.acquirer.map(str::to_owned)))
            .collect()
    }

    fn some(n: &str, a: Option<&str>) -> (Option<String>, Option<String>) {
        (Some(n.to_owned()), a.map(str::to_owned))
    }

    #[test]
    fn the_shipped_registry_loads() {
        let r = Registry::builtin();
        for id in [
            "visa",
            "mastercard",
            "unionpay",
            "napas",
            "vnpay",
            "qris",
            "promptpay",
            "duitnow",
            "paynow",
            "sgqr",
            "khqr",
        ] {
            assert!(r.index(id).is_some(), "{id}");
        }
    }

    /// Public payloads, as the schemes' SDKs and documentation print them.
    #[test]
    fn public_payloads_are_recognized() {
        let r = Registry::builtin();
        // VietQR, NAPAS's transfer-to-account code (a public Go SDK's README): no MCC, name
        // or city; the member BIN in 38.01.00.
        let vietqr = "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA530370454061200005802VN62170813ung ho lu lut6304C15C";
        assert_eq!(found(r, vietqr), vec![some("napas", Some("970415"))]);
        assert!(
            matches!(mpm::decode(vietqr), Err(MpmError::Missing { id: 52 })),
            "strict EMVCo decoding still asks for 52"
        );
        // KHQR, an individual's code as the Bakong SDK prints it.
        let khqr = "00020101021229220018chamroeun_tam@wing520459995303116540710000005802KH5913Chamroeun Tam6010PHNOM PENH9917001317627644609676304198A";
        assert_eq!(found(r, khqr), vec![some("khqr", Some("wing"))]);
    }

    /// PromptPay's credit-transfer and bill-payment codes carry no MCC, name or city; a code
    /// that also names a network that asks for them (a card scheme) must still carry them.
    #[test]
    fn a_code_is_excused_only_what_every_network_in_it_excuses() {
        let r = Registry::builtin();
        let transfer = nested(&[(0, "A000000677010111"), (1, "0066812345678")]).unwrap();
        let bill = nested(&[(0, "A000000677010112"), (1, "0112233445566"), (2, "CUSTOMER001")]).unwrap();
        for (id, account) in [(29, &transfer), (30, &bill)] {
            let bare =
                encode(&[(0, "01"), (1, "12"), (id, account), (58, "TH"), (53, "764"), (54, "300.00")])
                    .unwrap();
            assert_eq!(found(r, &bare), vec![some("promptpay", None)], "{bare}");
            assert_eq!(mpm::decode(&bare).unwrap_err(), MpmError::Missing { id: 52 }, "strict decoding asks");
            let with_card =
                encode(&[(0, "01"), (4, "5412345678901234"), (id, account), (58, "TH"), (53, "764")])
                    .unwrap();
            assert_eq!(r.decode(&with_card).unwrap_err(), MpmError::Missing { id: 52 });
        }
        // VNPAY's codes name the merchant but carry no MCC or city; without a name, refused.
        let vnpay = nested(&[(0, "A000000775"), (1, "0102154778")]).unwrap();
        let named =
            encode(&[(0, "01"), (26, &vnpay), (53, "704"), (58, "VN"), (59, "TUGIACOMPANY")]).unwrap();
        assert_eq!(found(r, &named), vec![some("vnpay", None)]);
        let nameless = encode(&[(0, "01"), (26, &vnpay), (53, "704"), (58, "VN")]).unwrap();
        assert_eq!(r.decode(&nameless).unwrap_err(), MpmError::Missing { id: 59 });
    }

    #[test]
    fn qris_accounts_give_the_nns_and_the_national_repository_is_qris_too() {
        let r = Registry::builtin();
        let gojek =
            nested(&[(0, "COM.GO-JEK.WWW"), (1, "936009123428549045"), (2, "G628593655"), (3, "UMI")])
                .unwrap();
        let national = nested(&[(0, "ID.CO.QRIS.WWW"), (2, "ID1025380163258"), (3, "UMI")]).unwrap();
        let text = encode(&[
            (0, "01"),
            (1, "11"),
            (26, &gojek),
            (51, &national),
            (52, "5045"),
            (53, "360"),
            (58, "ID"),
            (59, "Misterdevs"),
            (60, "JAKARTA"),
        ])
        .unwrap();
        assert_eq!(found(r, &text), vec![some("qris", Some("93600912")), some("qris", None)]);
        // The same issuer GUID outside Indonesia is someone else's: unknown.
        let elsewhere =
            encode(&[(0, "01"), (26, &gojek), (52, "5045"), (53, "702"), (58, "SG"), (59, "M"), (60, "S")])
                .unwrap();
        assert_eq!(found(r, &elsewhere), vec![(None, None)]);
    }

    fn sticker(accounts: &[(u8, String)]) -> String {
        let mut objs: Vec<(u8, &str)> = vec![(0, "01"), (1, "11")];
        objs.extend(accounts.iter().map(|(id, v)| (*id, v.as_str())));
        objs.extend([(52, "5812"), (53, "764"), (58, "TH"), (59, "SOM TAM"), (60, "BANGKOK")]);
        encode(&objs).unwrap()
    }

    #[test]
    fn a_multi_network_sticker_lists_each_network_in_payload_order_and_unknown_guids_are_opaque() {
        let r = Registry::builtin();
        let promptpay = nested(&[(0, "A000000677010111"), (1, "0066812345678")]).unwrap();
        let unknown = nested(&[(0, "COM.EXAMPLE.WALLET"), (1, "12345")]).unwrap();
        let text = sticker(&[
            (4, "5412345678901234".into()),
            (15, "6250012345678901123456789012345".into()),
            (29, promptpay),
            (31, unknown),
        ]);
        let p = r.decode(&text).unwrap();
        let got: Vec<Found<'_>> = r.classify(&p).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].network, r.index("mastercard"));
        assert_eq!(got[0].acquirer, Some("541234"));
        assert_eq!(got[1].network, r.index("unionpay"));
        assert_eq!(got[1].acquirer, Some("62500123"));
        assert_eq!(got[2].network, r.index("promptpay"));
        assert_eq!(
            got[3],
            Found { id: 31, network: None, guid: Some("COM.EXAMPLE.WALLET"), acquirer: None, merchant: None }
        );
        assert_eq!(got[1].merchant, Some("123456789012345"), "UnionPay's merchant id follows the two IINs");
    }

    #[test]
    fn guids_compare_ignoring_case_and_other_schemes_are_recognized() {
        let r = Registry::builtin();
        for (guid, sub1, net, acq) in [
            (
                "a000000727",
                Some(nested(&[(0, "970436"), (1, "0123456789")]).unwrap()),
                "napas",
                Some("970436"),
            ),
            ("A000000775", Some("0102030405".to_owned()), "vnpay", None),
            ("A0000006150001", Some("890053".to_owned()), "duitnow", Some("890053")),
            ("SG.PAYNOW", Some("2".to_owned()), "paynow", None),
            ("sg.sgqr", Some("180918D8F8C5".to_owned()), "sgqr", None),
            ("ID.CO.BANKMANDIRI.WWW", Some("9360000812345678".to_owned()), "qris", Some("93600008")),
        ] {
            let mut sub: Vec<(u8, &str)> = vec![(0, guid)];
            if let Some(s) = &sub1 {
                sub.push((1, s));
            }
            let text = sticker(&[(38, nested(&sub).unwrap())]);
            assert_eq!(found(r, &text), vec![some(net, acq)], "{guid}");
        }
    }

    #[test]
    fn khqr_needs_an_account_and_cambodia() {
        let r = Registry::builtin();
        let acct = nested(&[(0, "shop@abaa"), (1, "merchant-1")]).unwrap();
        let objs =
            [(0, "01"), (30, acct.as_str()), (52, "5812"), (53, "116"), (58, "KH"), (59, "A"), (60, "PP")];
        let text = encode(&objs).unwrap();
        assert_eq!(found(r, &text), vec![some("khqr", Some("abaa"))]);
        // The same template in Thailand is not KHQR.
        let th = sticker(&[(30, acct)]);
        assert_eq!(found(r, &th), vec![(None, None)]);
    }

    #[test]
    fn bad_registries_are_refused_with_the_network_named() {
        for (text, want) in [
            ("[[network]]\nid='x'\nname='X'\n[[network.rule]]\nprimitive=[30]", "primitive IDs are 02-25"),
            ("[[network]]\nid='x'\nname='X'\n[[network.rule]]\nguid=['A']\nacquirer='1.0'", "two digits"),
            ("[[network]]\nid='x'\nname='X'\n[[network.rule]]\nguid=['A']\nacquirer='01[5..2]'", "a < b"),
            ("[[network]]\nid='x'\nname='X'\n[[network.rule]]\nany_guid=true", "needs a country"),
            ("[[network]]\nid='x'\nname='X'\n[[network.rule]]\nprimitive=[2]\nguid=['A']", "either"),
            (
                "[[network]]\nid='x'\nname='X'\n[[network.rule]]\nprimitive=[2]\n[[network]]\nid='x'\nname='Y'\n[[network.rule]]\nprimitive=[3]",
                "twice",
            ),
            ("[[network]]\nid='x'\nname='X'\nrule=[]", "rules"),
            (
                "[[network]]\nid='x'\nname='X'\n[[network.rule]]\nguid=['A']\nmerchant='01|02|03|04|05'",
                "at most 4 alternatives",
            ),
            ("[[network]]\nid='x'\nname='X'\ncolour='red'\n[[network.rule]]\nprimitive=[2]", "unknown field"),
        ] {
            let e = Registry::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn an_acquirer_range_past_the_value_is_absent_not_a_panic() {
        let r = Registry::from_toml(
            "[[network]]\nid='x'\nname='X'\n[[network.rule]]\nprimitive=[2]\nacquirer='[0..8]'",
        )
        .unwrap();
        let text = sticker(&[(2, "1234".into())]);
        let p = r.decode(&text).unwrap();
        let f: Vec<_> = r.classify(&p).collect();
        assert_eq!(f[0].acquirer, None);
        assert_eq!(f[0].network, Some(0));
    }
}

//! The cross-border parts of the file: the QR network registry (`[qr]`), the participant
//! directory (`market`, `currency`, `limit`, `networks`, `qr_policy` of a participant), the
//! settlement currency and the rate table (`[currency]`, `[[rate]]` and rate files).

use std::{path::Path, sync::Arc};

use anyhow::{bail, Context, Result};
use corridor_engine::{
    config::{DirectoryEntry, Interop},
    exchange::{self, Currency, Quote, Rate, Rates},
};
use corridor_qr::Registry;
use corridor_wire::clock::days_from_civil;

use crate::{
    file::{CurrencySection, File, ParticipantSection, RateFile, RateSection},
    limits::RATES_MAX,
    Source,
};

/// A market: two capital letters.
pub(crate) fn market(s: &str, at: &str) -> Result<[u8; 2]> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok([*a, *b]),
        _ => bail!("{at}: market {s:?} must be an ISO 3166-1 alpha-2 code such as VN"),
    }
}

/// A currency by its alphabetic or numeric ISO 4217 code.
pub(crate) fn currency(s: &str, at: &str) -> Result<Currency> {
    exchange::by_code(s).with_context(|| format!("{at}: currency {s:?} is not an ISO 4217 code (VND or 704)"))
}

/// The registry `[qr] networks` names, or the shipped one.
pub(crate) fn registry(file: &File, source: &Source, base: &Path) -> Result<Registry> {
    match file.qr.as_ref().and_then(|q| q.networks.as_deref()) {
        None => Ok(Registry::builtin().clone()),
        Some(f) => {
            let path = base.join(f);
            let text =
                source.file(f).with_context(|| format!("[qr] networks: cannot read {}", path.display()))?;
            Registry::from_toml(text).with_context(|| format!("[qr] networks: {}", path.display()))
        }
    }
}

/// A participant's directory entry.
pub(crate) fn directory(p: &ParticipantSection, registry: &Registry, at: &str) -> Result<DirectoryEntry> {
    let market = p.market.as_deref().map(|m| market(m, at)).transpose()?;
    let currencies = p.currencies.iter().map(|c| currency(c, at)).collect::<Result<Vec<_>>>()?;
    let currency = p.currency.as_deref().map(|c| currency(c, at)).transpose()?;
    if !currencies.is_empty() && currency.is_none() {
        bail!("{at}: currencies lists the others: give currency (the one it bills in by default) too");
    }
    let limit = match (&p.limit, currency) {
        (None, _) => None,
        (Some(_), None) => bail!("{at}: a limit is in the participant's currency: give currency too"),
        (Some(l), Some(c)) => Some(exchange::minor_units(l, c.exponent).with_context(|| {
            format!("{at}: limit {l:?} must be a decimal amount in {c} (at most {} decimals)", c.exponent)
        })?),
    };
    let network = |id: &String, what: &str| -> Result<u16> {
        let i = registry.index(id).with_context(|| {
            format!("{at}: {what} names QR network {id:?}, which the registry does not have")
        })?;
        Ok(u16::try_from(i).unwrap_or(u16::MAX))
    };
    let networks = p.networks.iter().map(|n| network(n, "networks")).collect::<Result<Vec<_>>>()?;
    let qr_policy = p.qr_policy.iter().map(|n| network(n, "qr_policy")).collect::<Result<Vec<_>>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = p.qr_policy.iter().find(|n| !seen.insert(*n)) {
        bail!("{at}: qr_policy names {dup:?} twice");
    }
    Ok(DirectoryEntry { market, currency, currencies, limit, networks, qr_policy })
}

/// A TOML offset date-time as milliseconds since the Unix epoch.
fn unix_ms(t: &toml::value::Datetime, at: &str) -> Result<u64> {
    let (Some(date), Some(time), Some(offset)) = (t.date, t.time, t.offset) else {
        bail!("{at}: {t} needs a date, a time and an offset (2026-12-01T00:00:00Z)");
    };
    let offset_min = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    let days = days_from_civil(i32::from(date.year), date.month, date.day)
        .with_context(|| format!("{at}: {t} is no calendar date"))?;
    let secs =
        days * 86_400 + i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second)
            - offset_min * 60;
    let ms = secs * 1000 + i64::from(time.nanosecond / 1_000_000);
    u64::try_from(ms).with_context(|| format!("{at}: {t} is before 1970"))
}

fn quote(r: &RateSection, at: &str) -> Result<Quote> {
    let at = format!("{at}, quote {:?}", r.quote);
    if r.quote.is_empty()
        || r.quote.len() > corridor_engine::limits::QUOTE_ID_CHARS_MAX
        || !r.quote.bytes().all(|b| (b'!'..=b'~').contains(&b))
    {
        bail!(
            "{at}: a quote id is 1-{} printable characters without spaces",
            corridor_engine::limits::QUOTE_ID_CHARS_MAX
        );
    }
    if r.markup_bps > 10_000 {
        bail!("{at}: markup_bps {} is more than 10,000 (100%)", r.markup_bps);
    }
    Ok(Quote {
        id: r.quote.as_str().into(),
        from: currency(&r.from, &at)?,
        to: currency(&r.to, &at)?,
        rate: Rate::from_decimal(&r.rate).map_err(|e| anyhow::anyhow!("{at}: {e}"))?,
        markup_bps: r.markup_bps,
        valid_from_ms: unix_ms(&r.valid_from, &format!("{at}: valid_from"))?,
        valid_to_ms: unix_ms(&r.valid_to, &format!("{at}: valid_to"))?,
    })
}

/// The switch-wide part: registry, rates (inline and from rate files), settlement currency,
/// the switch's market.
pub(crate) fn interop(file: &File, registry: Registry, source: &Source, base: &Path) -> Result<Interop> {
    let section = file.currency.as_ref();
    let settlement = section
        .and_then(|c| c.settlement.as_deref())
        .map(|c| currency(c, "[currency] settlement"))
        .transpose()?;
    let mut quotes = Vec::new();
    for r in &file.rates {
        quotes.push(quote(r, "[[rate]]")?);
    }
    for f in section.map_or(&[][..], |c: &CurrencySection| &c.rate_files[..]) {
        let path = base.join(f);
        // Read (and its size bounded) once, in `Source::gather`.
        let text = source.file(f).with_context(|| format!("rate file {}", path.display()))?;
        let parsed: RateFile = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("rate file {}: {}", path.display(), e.to_string().trim_end()))?;
        for r in &parsed.rates {
            quotes.push(quote(r, &format!("rate file {}", path.display()))?);
        }
    }
    if quotes.len() > RATES_MAX {
        bail!("{} quotes: at most {RATES_MAX}", quotes.len());
    }
    let rates = Rates::new(quotes).map_err(|e| anyhow::anyhow!("rates: {e}"))?;
    let market = file.switch.market.as_deref().map(|m| market(m, "[switch]")).transpose()?;
    Ok(Interop { registry: Arc::new(registry), rates: Arc::new(rates), settlement, market })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[switch]
market = "CN"

[currency]
settlement = "USD"

[[rate]]
quote = "VND-THB-1"
from = "VND"
to = "THB"
rate = "0.00137"
markup_bps = 50
valid_from = 2026-12-01T00:00:00Z
valid_to = 2026-12-02T00:00:00Z

[[participant]]
id = "wallet"
roles = ["acquirer"]
acquirer_ids = ["11110001"]
market = "TH"
currency = "THB"
limit = "20000.00"
qr_policy = ["napas", "unionpay"]
  [[participant.link]]
  name = "w"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"

[[participant]]
id = "napas"
roles = ["network"]
market = "VN"
currency = "VND"
networks = ["napas"]
  [[participant.link]]
  name = "n"
  mode = "dial"
  address = "127.0.0.1:9"
  framing = "native"
  dialect = "native"

[[route]]
qr_network = "napas"
qr_acquirer = "970436"
destination = "napas"
"#;

    #[test]
    fn the_directory_rates_and_qr_routes_load() {
        let c = crate::parse(BASE).unwrap().engine;
        let w = &c.participants[0].directory;
        assert_eq!(w.market, Some(*b"TH"));
        assert_eq!(w.currency.map(|c| c.numeric), Some(764));
        assert_eq!(w.limit, Some(2_000_000));
        let reg = &c.interop.registry;
        assert_eq!(w.qr_policy, [reg.index("napas").unwrap() as u16, reg.index("unionpay").unwrap() as u16]);
        assert_eq!(c.interop.settlement.map(|c| c.numeric), Some(840));
        assert_eq!(c.interop.market, Some(*b"CN"));
        let q = c.interop.rates.by_id("VND-THB-1").unwrap();
        assert_eq!((q.valid_from_ms, q.valid_to_ms), (1_796_083_200_000, 1_796_169_600_000));
        assert_eq!(&q.billing_rate().n8(), b"70013769");
        assert!(c.interop_active());
    }

    #[test]
    fn each_cross_border_rule_is_enforced_with_a_precise_message() {
        let cases: &[(&str, &str, &str)] = &[
            ("market = \"TH\"", "market = \"Thailand\"", "ISO 3166-1 alpha-2"),
            ("currency = \"THB\"", "currency = \"BAHT\"", "not an ISO 4217 code"),
            ("currency = \"THB\"\nlimit", "currencies = [\"USD\"]\nlimit", "give currency"),
            ("currency = \"THB\"", "currency = \"THB\"\ncurrencies = [\"USX\"]", "not an ISO 4217 code"),
            ("currency = \"THB\"\nlimit", "limit", "give currency too"),
            ("limit = \"20000.00\"", "limit = \"20000.001\"", "at most 2 decimals"),
            ("qr_policy = [\"napas\", \"unionpay\"]", "qr_policy = [\"napas\", \"napas\"]", "twice"),
            ("qr_policy = [\"napas\", \"unionpay\"]", "qr_policy = [\"venmo\"]", "does not have"),
            ("networks = [\"napas\"]", "networks = [\"napass\"]", "does not have"),
            (
                "qr_network = \"napas\"\nqr_acquirer",
                "qr_network = \"napa\"\nqr_acquirer",
                "not in the QR network registry",
            ),
            ("qr_network = \"napas\"\nqr_acquirer", "qr_acquirer", "goes with qr_network"),
            ("rate = \"0.00137\"", "rate = \"1,37\"", "a decimal number"),
            ("rate = \"0.00137\"", "rate = \"0\"", "above 0.00000005"),
            ("valid_to = 2026-12-02T00:00:00Z", "valid_to = 2026-11-30T00:00:00Z", "after valid_from"),
            (
                "valid_to = 2026-12-02T00:00:00Z",
                "valid_to = 2026-12-02T00:00:00",
                "needs a date, a time and an offset",
            ),
            ("to = \"THB\"", "to = \"VND\"", "from and to are both VND"),
            ("markup_bps = 50", "markup_bps = 10001", "more than 10,000"),
            ("quote = \"VND-THB-1\"", "quote = \"VND THB 1\"", "printable characters without spaces"),
            ("settlement = \"USD\"", "settlement = \"USX\"", "not an ISO 4217 code"),
            ("settlement = \"USD\"", "settlement = \"USD\"\nrate_files = [\"missing.toml\"]", "rate file"),
        ];
        for (from, to, want) in cases {
            assert!(BASE.contains(from), "{from}");
            let text = BASE.replacen(from, to, 1);
            let e = format!("{:#}", crate::parse(&text).err().unwrap_or_else(|| panic!("{to}: accepted")));
            assert!(e.contains(want), "{to}: {e}");
        }
    }

    #[test]
    fn a_business_day_runs_from_cutover_to_cutover_in_its_offset() {
        let day = 20_788 * 86_400_000i64; // 2026-12-01T00:00Z
        let c = |s: &str| crate::parse(&format!("[clearing]\ncutover = \"{s}\"\n{BASE}")).map(|l| l.clearing);
        assert_eq!(
            crate::parse(BASE).unwrap().clearing.window(2026, 12, 1).unwrap(),
            (day, day + 86_400_000),
            "the UTC day"
        );
        assert_eq!(c("24:00Z").unwrap().window(2026, 12, 1).unwrap(), (day, day + 86_400_000));
        // 22:00 at UTC+8 is 14:00Z.
        assert_eq!(c("22:00+08:00").unwrap().window(2026, 12, 1).unwrap().1, day + 14 * 3_600_000);
        assert_eq!(
            c("01:30-05:00").unwrap().window(2026, 12, 1).unwrap().1,
            day + 6 * 3_600_000 + 30 * 60_000
        );
        for bad in ["24:01Z", "22:00", "2200Z", "22:00+15:00", "x"] {
            assert!(c(bad).unwrap_err().to_string().contains("cutover"), "{bad}");
        }
    }

    #[test]
    fn rate_files_add_quotes_and_a_reload_lists_what_changed() {
        let dir = std::env::temp_dir().join(format!("corridor-rates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_file =
            BASE.replacen("settlement = \"USD\"", "settlement = \"USD\"\nrate_files = [\"rates.toml\"]", 1);
        let file = |rate: &str| {
            format!("[[rate]]\nquote = \"THB-USD-1\"\nfrom = \"THB\"\nto = \"USD\"\nrate = \"{rate}\"\nvalid_from = 2026-12-01T00:00:00Z\nvalid_to = 2026-12-02T00:00:00Z\n")
        };
        std::fs::write(dir.join("rates.toml"), file("0.0279")).unwrap();
        let first = crate::parse_in(&with_file, &dir).unwrap();
        assert_eq!(first.engine.interop.rates.quotes().len(), 2);
        let current = crate::reload::Current::of(&first);
        std::fs::write(dir.join("rates.toml"), file("0.0281")).unwrap();
        let second =
            crate::parse_in(&with_file.replace("limit = \"20000.00\"", "limit = \"15000.00\""), &dir)
                .unwrap();
        let r = crate::reload::rebase(&current, second).unwrap();
        let text = r.changes.join("\n");
        assert!(text.contains("rate quote THB-USD-1: THB -> USD at 0.0279"), "{text}");
        assert!(text.contains("-> THB -> USD at 0.0281"), "{text}");
        assert!(text.contains("participant wallet: directory") && text.contains("limit 15000.00"), "{text}");
        assert_eq!(r.next.engine.interop.rates.by_id("THB-USD-1").unwrap().rate.decimal(), "0.0281");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dates_become_unix_milliseconds() {
        assert_eq!(days_from_civil(2026, 12, 1), Some(20_788));
        let t: toml::value::Datetime = "2026-12-01T08:30:00+07:00".parse().unwrap();
        assert_eq!(unix_ms(&t, "x").unwrap(), (20_788 * 86_400 + 3600 + 30 * 60) * 1000);
        let local: toml::value::Datetime = "2026-12-01T08:30:00".parse().unwrap();
        assert!(unix_ms(&local, "x").unwrap_err().to_string().contains("offset"));
    }
}

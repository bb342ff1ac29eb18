//! Cross-border payments at admission: a QR payment's payload read and its networks put in
//! the order the originator's partnership policy gives; the merchant's fields taken from
//! the payload; the currencies filled or checked; the participants' limits.
//!
//! What the switch does, in order (SPEC.md §16):
//!
//! 1. **The payload** (DE 126, an EMV QR code's UTF-8 bytes) must be a valid
//!    merchant-presented code for the registry, else `30`.
//! 2. **Its networks**, classified by the registry, are the route targets: with a policy
//!    (`qr_policy`), only the networks it lists, in its order; without, every known network
//!    in the payload's order. No target with a route: `92`.
//! 3. **The merchant's fields**, when the request lacks them: DE 18 from ID 52, DE 41 from
//!    62.07 (when it fits 8 characters), DE 42 from the chosen network's merchant id (when it
//!    fits 15), DE 43 from IDs 59, 60, 58 (name 23, city 13, two spaces, country 2;
//!    characters outside printable ASCII written `?`), DE 49 from ID 53 and DE 4 from ID 54.
//!    A request that has them must agree with the payload: DE 49 with ID 53, DE 4 with ID 54
//!    when the code carries an amount; else `13`.
//! 4. **Currencies**, for every financial or authorization request with DE 4 and DE 49 once
//!    the switch knows currencies: the wallet's currency is DE 51 (one the directory lists
//!    for the originator, when it lists any: else `12`), or the originator's in the
//!    directory. When it differs from DE 49, the billing amount DE 6 is DE 4 converted at the
//!    quote's billing rate (the mid rate plus its markup), written in DE 10; the quote is the
//!    one DE 125 names, or the one in force. An originator that sent DE 6 and DE 10 has them
//!    checked: DE 10 must be that quote's billing rate and DE 6 the conversion of DE 4 at it,
//!    else `13`. A quote DE 125 names that is unknown, for another pair, expired or not yet
//!    valid, and a pair with no quote in force, are `12`. The same for DE 5/9/50 in the
//!    switch's settlement currency, at the mid rate of the quote in force. A wallet in the
//!    transaction's currency gets DE 6 = DE 4 at rate 1.
//! 5. **Limits**: the originator's and the destination's limit per transaction (each in its
//!    own currency) against the amount in that currency — the converted amount when it is
//!    the wallet's or the settlement currency, else DE 4 converted at the mid rate in force —
//!    so the lower of the two applies (BIS Nexus's rule); over either: `61`.

use corridor_qr::{Found, Payload};
use corridor_wire::{de, FieldId, ResponseCode};

use crate::{
    engine::Msg,
    exchange::{self, by_numeric, Currency, Quote, Rate},
    limits::{QR_TARGETS_MAX, QUOTE_ID_CHARS_MAX},
    routes::QrTarget,
};

/// `12`: the quote named is unknown, expired or for another pair; no rate for the pair; a
/// currency the switch does not know.
pub const INVALID_TRANSACTION: ResponseCode = ResponseCode(*b"12");
/// `13`: an amount or rate that does not agree with the payload or the quote.
pub const INVALID_AMOUNT: ResponseCode = ResponseCode(*b"13");
/// `61`: over a participant's limit per transaction.
pub const EXCEEDS_LIMIT: ResponseCode = ResponseCode(*b"61");

/// DE 126's payload as text: `None` when the request has none, `30` when it is not UTF-8.
pub(crate) fn payload_text(msg: &Msg<'_>) -> Result<Option<String>, ResponseCode> {
    let Some(f) = msg.field(de::QR_PAYLOAD) else { return Ok(None) };
    String::from_utf8(f.to_vec()).map(Some).map_err(|_| ResponseCode::FORMAT_ERROR)
}

/// A QR payment's code, read: the payload, and its networks as route targets in the order
/// `policy` gives ([`targets`]). What it returns borrows `text` only, not the registry.
///
/// # Errors
///
/// The payload is not a valid code for `registry`.
pub(crate) fn read<'a>(
    registry: &corridor_qr::Registry,
    text: &'a str,
    policy: &[u16],
) -> Result<(Payload<'a>, Vec<(QrTarget<'a>, Found<'a>)>), corridor_qr::MpmError> {
    let (payload, found) = registry.decode_classified(text)?;
    Ok((payload, targets(found, policy)))
}

/// The networks the registry found (`found`, in payload order) as route targets, in the
/// order `policy` gives (see the module docs), at most [`QR_TARGETS_MAX`], each with what the
/// registry found.
fn targets<'a>(found: Vec<Found<'a>>, policy: &[u16]) -> Vec<(QrTarget<'a>, Found<'a>)> {
    let mut out: Vec<(QrTarget<'a>, Found<'a>)> = found
        .into_iter()
        .filter_map(|f| {
            let network = u16::try_from(f.network?).ok()?;
            Some((QrTarget { network, acquirer: f.acquirer }, f))
        })
        .collect();
    if !policy.is_empty() {
        out.retain(|(t, _)| policy.contains(&t.network));
        // A stable sort: a network's several objects keep the payload's order.
        out.sort_by_key(|(t, _)| policy.iter().position(|&n| n == t.network));
    }
    out.truncate(QR_TARGETS_MAX);
    out
}

/// A field value the switch adds to a request it forwards (canonical text).
pub(crate) type FillField = (FieldId, Vec<u8>);

/// Text as a fixed-length `ans` value: printable ASCII (anything else `?`), cut or padded
/// with spaces to `n` characters.
fn ans_fixed(text: &str, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> =
        text.chars().take(n).map(|c| if (' '..='~').contains(&c) { c as u8 } else { b'?' }).collect();
    v.resize(n, b' ');
    v
}

/// A twelve-digit amount (DE 4, 5, 6); `v` is at most [`exchange::AMOUNT_MAX`].
fn amount_text(mut v: u64) -> Vec<u8> {
    let mut out = vec![b'0'; 12];
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out
}

/// What one request's conversion used: the currencies and amounts, for the limits.
struct Amounts {
    tx: (Currency, u64),
    billing: Option<(Currency, u64)>,
    settlement: Option<(Currency, u64)>,
}

impl Amounts {
    fn in_currency(&self, c: Currency) -> Option<u64> {
        [Some(self.tx), self.billing, self.settlement]
            .into_iter()
            .flatten()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v)
    }
}

/// The inputs of the currency and limit steps that come from the configuration.
pub(crate) struct Parties<'c> {
    /// The originator's directory entry.
    pub origin: &'c crate::config::DirectoryEntry,
    /// The destination's.
    pub destination: &'c crate::config::DirectoryEntry,
    /// The switch's settlement currency.
    pub settlement: Option<Currency>,
    /// The rate table.
    pub rates: &'c exchange::Rates,
}

/// A field's canonical value as text, if present.
fn text(msg: &Msg<'_>, id: FieldId) -> Option<Vec<u8>> {
    msg.field(id).map(|f| f.to_vec())
}

fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 12 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &b| n * 10 + u64::from(b - b'0')))
}

fn currency_of(v: &[u8]) -> Result<Currency, ResponseCode> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(by_numeric)
        .ok_or(INVALID_TRANSACTION)
}

/// Step 3: the merchant's fields from the payload (added to `fill`), and the transaction's
/// currency and amount as the request and payload give them.
pub(crate) fn merchant_fields(
    msg: &Msg<'_>,
    payload: &Payload<'_>,
    chosen: Option<&Found<'_>>,
    fill: &mut Vec<FillField>,
) -> Result<(), ResponseCode> {
    if !msg.has(de::MERCHANT_TYPE) {
        if let Some(mcc) = payload.mcc().filter(|m| m.len() == 4 && m.bytes().all(|b| b.is_ascii_digit())) {
            fill.push((de::MERCHANT_TYPE, mcc.as_bytes().to_vec()));
        }
    }
    if !msg.has(de::TERMINAL_ID) {
        let terminal = payload.get(62).and_then(|o| o.child(7)).map(|c| c.value);
        if let Some(t) =
            terminal.filter(|t| (1..=8).contains(&t.len()) && t.bytes().all(|b| (b' '..=b'~').contains(&b)))
        {
            fill.push((de::TERMINAL_ID, ans_fixed(t, 8)));
        }
    }
    if !msg.has(de::MERCHANT_ID) {
        let id = chosen.and_then(|f| f.merchant);
        if let Some(m) =
            id.filter(|m| (1..=15).contains(&m.len()) && m.bytes().all(|b| (b' '..=b'~').contains(&b)))
        {
            fill.push((de::MERCHANT_ID, ans_fixed(m, 15)));
        }
    }
    if !msg.has(de::MERCHANT_NAME) && payload.merchant_name().is_some() {
        let mut v = ans_fixed(payload.merchant_name().unwrap_or(""), 23);
        v.extend(ans_fixed(payload.city().unwrap_or(""), 13));
        v.extend(b"  ");
        v.extend(ans_fixed(payload.country().unwrap_or(""), 2));
        fill.push((de::MERCHANT_NAME, v));
    }
    let qr_currency = payload.currency().map(|c| currency_of(c.as_bytes())).transpose()?;
    match (text(msg, de::CURRENCY), qr_currency) {
        (Some(given), Some(c)) if given != c.numeric_text() => return Err(INVALID_AMOUNT),
        (None, Some(c)) => fill.push((de::CURRENCY, c.numeric_text().to_vec())),
        _ => {}
    }
    if let Some(a) = payload.amount() {
        let c = qr_currency.ok_or(INVALID_AMOUNT)?;
        let qr_amount = exchange::minor_units(a, c.exponent).ok_or(INVALID_AMOUNT)?;
        match text(msg, de::AMOUNT) {
            Some(given) if number(&given) != Some(qr_amount) => return Err(INVALID_AMOUNT),
            Some(_) => {}
            None => fill.push((de::AMOUNT, amount_text(qr_amount))),
        }
    }
    Ok(())
}

/// The value of `id` in the request, or in what the switch is adding.
fn given_or_filled(msg: &Msg<'_>, fill: &[FillField], id: FieldId) -> Option<Vec<u8>> {
    text(msg, id).or_else(|| fill.iter().find(|(f, _)| *f == id).map(|(_, v)| v.clone()))
}

/// One conversion (billing or settlement): fills its amount, rate and currency fields, or
/// checks those the request has. `quote` is the quote to use, or the reason there is none.
fn convert_into(
    msg: &Msg<'_>,
    fill: &mut Vec<FillField>,
    (tx, amount): (Currency, u64),
    to: Currency,
    rate: Result<Rate, ResponseCode>,
    (amount_de, rate_de, currency_de): (FieldId, FieldId, FieldId),
) -> Result<u64, ResponseCode> {
    let rate = if to == tx { Rate::ONE } else { rate? };
    let converted = exchange::convert(amount, tx.exponent, to.exponent, rate).ok_or(INVALID_AMOUNT)?;
    match (text(msg, amount_de), text(msg, rate_de)) {
        (Some(given), Some(given_rate)) => {
            if Rate::from_n8(&given_rate) != Some(rate) || number(&given) != Some(converted) {
                return Err(INVALID_AMOUNT);
            }
        }
        // An amount without its rate (or a rate without its amount) cannot be checked.
        (Some(_), None) | (None, Some(_)) => return Err(INVALID_AMOUNT),
        (None, None) => {
            fill.push((amount_de, amount_text(converted)));
            fill.push((rate_de, rate.n8().to_vec()));
        }
    }
    if !msg.has(currency_de) {
        fill.push((currency_de, to.numeric_text().to_vec()));
    }
    Ok(converted)
}

/// Steps 4 and 5 (see the module docs), with `fill` holding what step 3 added.
pub(crate) fn currencies_and_limits(
    msg: &Msg<'_>,
    parties: &Parties<'_>,
    unix_ms: u64,
    fill: &mut Vec<FillField>,
) -> Result<(), ResponseCode> {
    let (Some(amount), Some(currency)) =
        (given_or_filled(msg, fill, de::AMOUNT), given_or_filled(msg, fill, de::CURRENCY))
    else {
        return Ok(());
    };
    let tx = currency_of(&currency)?;
    let amount = number(&amount).ok_or(INVALID_AMOUNT)?;
    let rates = parties.rates;
    let current = |to: Currency| -> Result<&Quote, ResponseCode> {
        rates.current(tx.numeric, to.numeric, unix_ms).ok_or(INVALID_TRANSACTION)
    };
    let wallet = match text(msg, de::CURRENCY_BILLING) {
        Some(c) => {
            let c = currency_of(&c)?;
            let o = parties.origin;
            if !o.currencies.is_empty() && o.currency != Some(c) && !o.currencies.contains(&c) {
                return Err(INVALID_TRANSACTION);
            }
            Some(c)
        }
        None => parties.origin.currency,
    };
    let billing = match wallet {
        None => None,
        Some(w) => {
            let named = text(msg, de::QUOTE_ID);
            let quote = match &named {
                Some(id) if id.len() > QUOTE_ID_CHARS_MAX => Err(INVALID_TRANSACTION),
                Some(id) => std::str::from_utf8(id)
                    .ok()
                    .and_then(|id| rates.by_id(id))
                    .filter(|q| q.from == tx && q.to == w && q.valid_at(unix_ms))
                    .ok_or(INVALID_TRANSACTION),
                None => current(w),
            };
            let rate = quote.map(Quote::billing_rate);
            let fields = (de::AMOUNT_BILLING, de::RATE_BILLING, de::CURRENCY_BILLING);
            Some((w, convert_into(msg, fill, (tx, amount), w, rate, fields)?))
        }
    };
    let settlement = match parties.settlement {
        None => None,
        Some(s) => {
            let rate = current(s).map(|q| q.rate);
            let fields = (de::AMOUNT_SETTLEMENT, de::RATE_SETTLEMENT, de::CURRENCY_SETTLEMENT);
            Some((s, convert_into(msg, fill, (tx, amount), s, rate, fields)?))
        }
    };
    let amounts = Amounts { tx: (tx, amount), billing, settlement };
    for p in [parties.origin, parties.destination] {
        let (Some(limit), Some(c)) = (p.limit, p.currency) else { continue };
        let there = match amounts.in_currency(c) {
            Some(v) => v,
            None => {
                let q = current(c)?;
                exchange::convert(amount, tx.exponent, c.exponent, q.rate).ok_or(EXCEEDS_LIMIT)?
            }
        };
        if there > limit {
            return Err(EXCEEDS_LIMIT);
        }
    }
    Ok(())
}

//! Routes from the configuration and from CSV route files (BIN tables run to hundreds of
//! thousands of prefixes), checked in one pass: a duplicate key and class set is found by a
//! hash lookup, not a scan, and every duplicate is reported in one error.

use std::path::Path;

use anyhow::{bail, Context, Result};
use corridor_engine::{Participant, Route, RouteKey};
use rustc_hash::FxHashMap;

use crate::limits::{DUPLICATES_SHOWN, ROUTES_MAX, ROUTE_TIMEOUT};

/// Routes gathered so far, with where each key was first given.
#[derive(Default)]
pub(crate) struct Routes {
    routes: Vec<Route>,
    first: FxHashMap<(RouteKey, Option<u16>), u32>,
    duplicates: Vec<String>,
    duplicates_count: usize,
}

impl Routes {
    /// Adds `r`; `at` names its place (computed only for a duplicate's report).
    pub(crate) fn push(&mut self, r: Route, at: impl FnOnce() -> String) -> Result<()> {
        if self.routes.len() >= ROUTES_MAX {
            bail!("more than {ROUTES_MAX} routes");
        }
        let index = u32::try_from(self.routes.len()).unwrap_or(u32::MAX);
        match self.first.entry((r.key.clone(), r.mti_classes)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                self.duplicates_count += 1;
                if self.duplicates.len() < DUPLICATES_SHOWN {
                    let earlier = *e.get();
                    self.duplicates.push(format!("{} repeats route {}", at(), earlier + 1));
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(index);
            }
        }
        self.routes.push(r);
        Ok(())
    }

    /// The routes, or one error naming the duplicates.
    pub(crate) fn finish(self) -> Result<Vec<Route>> {
        if self.duplicates_count > 0 {
            let more = self.duplicates_count - self.duplicates.len();
            let tail = if more > 0 { format!("; and {more} more") } else { String::new() };
            bail!(
                "{} routes repeat a key and classes routed before: {}{tail}",
                self.duplicates_count,
                self.duplicates.join("; ")
            );
        }
        Ok(self.routes)
    }
}

/// A `pan_prefix` value.
pub(crate) fn pan_prefix(p: &str) -> Result<RouteKey> {
    if p.is_empty() || p.len() > 19 || !p.bytes().all(|b| b.is_ascii_digit()) {
        bail!("pan_prefix {p:?} must be 1-19 digits");
    }
    Ok(RouteKey::PanPrefix(p.as_bytes().to_vec()))
}

/// The index of destination participant `id`, which must answer requests.
pub(crate) fn destination(participants: &[Participant], id: &str) -> Result<usize> {
    let d = participants
        .iter()
        .position(|p| p.id == id)
        .with_context(|| format!("no participant with id {id:?}"))?;
    if !participants[d].roles.issuer && !participants[d].roles.network {
        bail!("destination {id:?} has neither the issuer nor the network role");
    }
    Ok(d)
}

/// MTI classes as a bit set.
pub(crate) fn classes(cs: &[u8]) -> Result<u16> {
    if cs.is_empty() || cs.iter().any(|&c| c > 9) {
        bail!("mti_classes must be digits 0-9");
    }
    Ok(cs.iter().fold(0u16, |m, &c| m | 1 << c))
}

/// Reads a CSV route file into `into`. Its header names the columns: `pan_prefix` and
/// `destination` are required, `timeout_ms` and `mti_classes` (digits, e.g. `12` for
/// classes 1 and 2) optional and may be left empty. Lines starting with `#` are comments.
pub(crate) fn read_csv(
    path: &Path,
    content: &str,
    participants: &[Participant],
    into: &mut Routes,
) -> Result<()> {
    let mut reader =
        csv::ReaderBuilder::new().comment(Some(b'#')).trim(csv::Trim::All).from_reader(content.as_bytes());
    let headers = reader.headers().context("no header line")?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(prefix_col), Some(dest_col)) = (column("pan_prefix"), column("destination")) else {
        bail!(
            "the header must name pan_prefix and destination (it has {:?})",
            headers.iter().collect::<Vec<_>>()
        );
    };
    if let Some(unknown) =
        headers.iter().find(|h| !["pan_prefix", "destination", "timeout_ms", "mti_classes"].contains(h))
    {
        bail!("unknown column {unknown:?} (expected pan_prefix, destination, timeout_ms, mti_classes)");
    }
    let (timeout_col, classes_col) = (column("timeout_ms"), column("mti_classes"));
    // Destinations repeat across a BIN table: look each id up once.
    let mut dest_cache: FxHashMap<String, usize> = FxHashMap::default();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).with_context(|| "a line that is not CSV")? {
        let line = record.position().map_or(0, csv::Position::line);
        let at = || format!("line {line}");
        let field = |c: usize| record.get(c).unwrap_or("");
        let key = pan_prefix(field(prefix_col)).with_context(at)?;
        let dest_id = field(dest_col);
        let destination = match dest_cache.get(dest_id) {
            Some(&d) => d,
            None => {
                let d = destination(participants, dest_id).with_context(at)?;
                dest_cache.insert(dest_id.to_owned(), d);
                d
            }
        };
        let timeout_ms = match timeout_col.map(field).filter(|v| !v.is_empty()) {
            None => ROUTE_TIMEOUT.default,
            Some(v) => {
                v.parse::<u64>().ok().filter(|ms| ROUTE_TIMEOUT.range().contains(ms)).with_context(|| {
                    format!(
                        "line {line}: timeout_ms must be {}-{}, not {v:?}",
                        ROUTE_TIMEOUT.min, ROUTE_TIMEOUT.max
                    )
                })?
            }
        };
        let mti_classes = match classes_col.map(field).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => {
                let digits: Option<Vec<u8>> =
                    v.bytes().map(|b| b.is_ascii_digit().then(|| b - b'0')).collect();
                let digits =
                    digits.with_context(|| format!("line {line}: mti_classes {v:?} must be digits"))?;
                Some(classes(&digits).with_context(at)?)
            }
        };
        let route =
            Route { key, mti_classes, destination, timeout: std::time::Duration::from_millis(timeout_ms) };
        into.push(route, || format!("{}, line {line}", path.display()))?;
    }
    Ok(())
}

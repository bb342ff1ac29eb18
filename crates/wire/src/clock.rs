//! Wall-clock fields and the network management request: what every sender of DE 7 and of
//! an 0800 (the switch, the load generator, a test peer) writes the same way.
//!
//! Sans-IO like the rest of the crate: [`WallClock`] ties an `Instant` the caller supplies to
//! Unix time once, and every DE 7 is computed from it; only [`WallClock::now`] reads a clock,
//! for callers to anchor with.

use bytes::BytesMut;

use crate::{de, Dialect, EncodeError, Mti, NetworkCode, OwnedMessage, Stan};

/// Wall-clock time as the engine knows it: seconds since the Unix epoch at a reference
/// instant. The engine never reads a clock; the caller supplies both ends.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    /// A reference instant.
    pub at: std::time::Instant,
    /// Unix seconds (UTC) at that instant.
    pub unix_secs: u64,
}

impl WallClock {
    /// The system's wall-clock time now, for a caller to anchor an engine (or anything else
    /// that writes DE 7) with. The engine itself never reads a clock.
    #[must_use]
    pub fn now() -> Self {
        let unix_secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { at: std::time::Instant::now(), unix_secs }
    }

    /// DE 7 (MMDDhhmmss, UTC) at `now`.
    #[must_use]
    pub fn transmission_time(&self, now: std::time::Instant) -> [u8; 10] {
        let secs = self.unix_secs + now.saturating_duration_since(self.at).as_secs();
        let t = utc(secs);
        let mut out = [b'0'; 10];
        for (i, v) in [u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second()].into_iter().enumerate()
        {
            // Each part is below 100.
            out[i * 2] = b'0' + v / 10;
            out[i * 2 + 1] = b'0' + v % 10;
        }
        out
    }
}

/// The UTC date and time `secs` seconds after the Unix epoch (the calendar is `time`'s).
/// Past year 9999 (which no clock here reaches) it is the last second `time` holds.
fn utc(secs: u64) -> time::OffsetDateTime {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc())
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` when there is no such date.
#[must_use]
pub fn days_from_civil(y: i32, m: u8, d: u8) -> Option<i64> {
    let month = time::Month::try_from(m).ok()?;
    let date = time::Date::from_calendar_date(y, month, d).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp().div_euclid(86_400))
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[must_use]
pub fn utc_text(ms: u64) -> String {
    let t = utc(ms / 1000);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms % 1000
    )
}

/// A network management request (0800) with DE 7, DE 11 and DE 70, in `dialect`: what the
/// switch sends to sign on and echo, and what a peer sends to sign on to it.
///
/// # Errors
///
/// Never for valid arguments (the values fit their fields); an [`EncodeError`]
/// otherwise.
pub fn network_request(
    code: NetworkCode,
    stan: Stan,
    de7: [u8; 10],
    dialect: Dialect,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
    m.set(de::TRANSMISSION_TIME, de7.to_vec())?
        .set(de::STAN, stan.to_ascii().to_vec())?
        .set(de::NETWORK_CODE, code.to_ascii().to_vec())?;
    m.encode(dialect, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmission_time_is_utc_mmddhhmmss() {
        let at = std::time::Instant::now();
        // 2026-11-25 22:15:30 UTC.
        let clock = WallClock { at, unix_secs: 1_795_644_930 };
        assert_eq!(&clock.transmission_time(at), b"1125221530");
        assert_eq!(&clock.transmission_time(at + std::time::Duration::from_secs(3600 * 2)), b"1126001530");
        // 2024-02-29 is a leap day.
        let leap = WallClock { at, unix_secs: 1_709_164_800 };
        assert_eq!(&leap.transmission_time(at), b"0229000000");
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
        assert_eq!(days_from_civil(2026, 12, 1), Some(20_788));
        assert_eq!(days_from_civil(2026, 2, 29), None, "no such date");
        assert_eq!(days_from_civil(2026, 13, 1), None);
        assert_eq!(utc_text(1_796_146_979_465), "2026-12-01T17:42:59.465Z");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}

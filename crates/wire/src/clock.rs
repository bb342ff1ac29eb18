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
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (_, month, day) = civil_from_days(days);
        let mut out = [b'0'; 10];
        for (i, v) in [month, day, rem / 3600, rem / 60 % 60, rem % 60].into_iter().enumerate() {
            // Each part is below 100.
            out[i * 2] = b'0' + (v / 10) as u8;
            out[i * 2 + 1] = b'0' + (v % 10) as u8;
        }
        out
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
#[must_use]
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[must_use]
pub fn utc_text(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, ms % 1000)
}

/// Year, month, day of a count of days since 1970-01-01 (the proleptic Gregorian calendar).
#[must_use]
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year; 400-year eras.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        for days in [0u64, 59, 60, 11_016, 11_017, 20_788, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y as i64, m as u32, d as u32), days as i64);
        }
        assert_eq!(utc_text(1_796_146_979_465), "2026-12-01T17:42:59.465Z");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}

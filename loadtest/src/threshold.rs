//! SLO thresholds on the corrected latency, e.g. `p99<2ms`, `p50<=500us`, `max<1s`: a run
//! that breaks one exits non-zero, so CI and scripts can gate on it.

use std::{fmt, str::FromStr, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Which figure a threshold reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A quantile (0.5 for p50).
    Quantile(f64),
    /// The largest latency.
    Max,
    /// The mean.
    Mean,
}

/// One threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    text: String,
    metric: Metric,
    inclusive: bool,
    limit: Duration,
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let bad = || format!("threshold `{s}`: expected METRIC<VALUE or METRIC<=VALUE, e.g. p99<2ms");
        let (name, inclusive, value) = if let Some((n, v)) = text.split_once("<=") {
            (n, true, v)
        } else if let Some((n, v)) = text.split_once('<') {
            (n, false, v)
        } else {
            return Err(bad());
        };
        let metric = match name {
            "max" => Metric::Max,
            "mean" => Metric::Mean,
            _ => {
                let p: f64 = name
                    .strip_prefix('p')
                    .and_then(|p| p.parse().ok())
                    .filter(|p| (0.0..100.0).contains(p))
                    .ok_or_else(|| {
                        format!("threshold `{s}`: metric must be p50, p99, p99.9, …, max or mean")
                    })?;
                Metric::Quantile(p / 100.0)
            }
        };
        let limit = parse_duration(value)
            .ok_or_else(|| format!("threshold `{s}`: `{value}` is not a duration like 2ms, 500us or 1s"))?;
        Ok(Self { text, metric, inclusive, limit })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A duration written with its unit: `ns`, `us` (or `µs`), `ms` or `s`; fractions allowed.
#[must_use]
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .into_iter()
        .find_map(|(u, k)| s.strip_suffix(u).map(|n| (n, k)))?;
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0 && v * scale < 1e9).then(|| Duration::from_secs_f64(v * scale))
}

/// How a threshold fared.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The threshold as written.
    pub threshold: String,
    /// The measured value, µs.
    pub measured_us: f64,
    /// Whether it held.
    pub passed: bool,
}

impl Threshold {
    /// Checks the threshold against `h` (nanoseconds). An empty histogram fails every
    /// threshold: nothing was measured.
    #[must_use]
    pub fn check(&self, h: &Histogram<u64>) -> Verdict {
        let ns = match self.metric {
            _ if h.is_empty() => f64::INFINITY,
            Metric::Quantile(q) => h.value_at_quantile(q) as f64,
            Metric::Max => h.max() as f64,
            Metric::Mean => h.mean(),
        };
        let limit = self.limit.as_nanos() as f64;
        let passed = if self.inclusive { ns <= limit } else { ns < limit };
        Verdict { threshold: self.text.clone(), measured_us: ns / 1000.0, passed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::histogram;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2ms"), Some(Duration::from_millis(2)));
        assert_eq!(parse_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration("1.5µs"), Some(Duration::from_nanos(1500)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("40ns"), Some(Duration::from_nanos(40)));
        for bad in ["2", "ms", "-1ms", "2 hours", "NaNms", "1e300s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn thresholds_pass_and_fail_on_the_histogram() {
        let mut h = histogram(3);
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap(); // 1 µs .. 1 ms
        }
        let check = |t: &str| t.parse::<Threshold>().unwrap().check(&h).passed;
        assert!(check("p50<600us"));
        assert!(!check("p50<400us"));
        assert!(check("p99<=1ms"));
        assert!(!check("p99<980us"));
        assert!(check("p99.9 < 2ms"));
        assert!(!check("max<1ms"), "max is 1 ms, not below it");
        assert!(check("max<=1ms") || h.max() > 1_000_000);
        assert!(check("mean<600us"));
        assert!(
            !"p99<1ms".parse::<Threshold>().unwrap().check(&histogram(3)).passed,
            "nothing measured fails"
        );
        let v = "p99<1ms".parse::<Threshold>().unwrap().check(&h);
        assert!((v.measured_us - 990.0).abs() < 2.0, "{}", v.measured_us);
    }

    #[test]
    fn malformed_thresholds_say_what_was_expected() {
        assert!("p99>1ms".parse::<Threshold>().unwrap_err().contains("expected METRIC<VALUE"));
        assert!("q99<1ms".parse::<Threshold>().unwrap_err().contains("metric must be"));
        assert!("p100<1ms".parse::<Threshold>().is_err());
        assert!("p99<fast".parse::<Threshold>().unwrap_err().contains("not a duration"));
    }
}

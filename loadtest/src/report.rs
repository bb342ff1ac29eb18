//! A run's results for people and tools: the summary table, JSON, the `.hgrm` percentile
//! spectrum (HdrHistogram's text format, which its plotter reads), a per-second CSV and a
//! self-contained HTML report with the spectrum and latency over time drawn as SVG charts.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    limits::LAG_SHARE_MAX,
    recorder::{Counts, Recorder, Row},
    threshold::Verdict,
};

/// Latency percentiles, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// 99.9th.
    pub p999_us: f64,
    /// 99.99th.
    pub p9999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// The percentiles of `h` (nanoseconds).
    #[must_use]
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: h.max() as f64 / 1000.0,
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// How a run was set up, as the report states it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunInfo {
    /// Where the load went.
    pub target: String,
    /// Framing/dialect.
    pub wire: String,
    /// `open` (fixed schedule) or `closed` (connections × in flight, capacity mode).
    pub mode: String,
    /// Connections.
    pub connections: usize,
    /// Closed loop: requests in flight per connection; open loop: the per-connection bound.
    pub inflight: usize,
    /// Open loop: `constant` or `poisson`.
    pub arrivals: Option<String>,
    /// Open loop: how the pacing thread waited.
    pub pacing: Option<String>,
    /// Open loop: the target rate, requests per second.
    pub rate_target: Option<f64>,
    /// The traffic mix.
    pub mix: String,
    /// Warm-up excluded from the results, seconds.
    pub warmup_s: f64,
    /// The measured window, seconds (from the end of the warm-up to the last send).
    pub measured_s: f64,
    /// CPUs the generator was pinned to, if any.
    pub cpus: Option<String>,
}

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The setup.
    pub run: RunInfo,
    /// Outcomes of the measured requests.
    pub counts: Counts,
    /// Measured sends per second.
    pub rate_achieved: f64,
    /// Responses per second (round trips per second in closed loop).
    pub answered_per_s: f64,
    /// Latency from the intended send time (closed loop: capacity-mode figures, not
    /// service latency).
    pub latency: Percentiles,
    /// Latency from the actual send time.
    pub naive_latency: Percentiles,
    /// Open loop: how late sends left after their intended time.
    pub schedule_lag: Option<Percentiles>,
    /// False when the generator, not the target, was measured.
    pub valid: bool,
    /// Why the run is invalid.
    pub invalid_reason: Option<String>,
    /// SLO thresholds and how they fared.
    pub thresholds: Vec<Verdict>,
    /// Per second.
    pub timeline: Vec<Row>,
}

impl Summary {
    /// The summary of a finished run.
    #[must_use]
    pub fn new(run: RunInfo, r: &Recorder, timeline: Vec<Row>, thresholds: Vec<Verdict>) -> Self {
        let window = run.measured_s.max(1e-9);
        let latency = Percentiles::of(&r.corrected);
        let open = run.mode == "open";
        let schedule_lag = open.then(|| Percentiles::of(&r.lag));
        let mut invalid_reason = None;
        if let Some(lag) = &schedule_lag {
            if lag.count > 0 && lag.p99_us > LAG_SHARE_MAX * latency.p99_us {
                invalid_reason = Some(format!(
                    "schedule lag p99 {} is more than {:.0}% of the latency p99 {}: the generator could not \
                     keep its schedule, so it measured itself",
                    us(lag.p99_us),
                    LAG_SHARE_MAX * 100.0,
                    us(latency.p99_us)
                ));
            }
        }
        if r.counts.answered == 0 {
            invalid_reason.get_or_insert_with(|| "no request was answered".to_owned());
        }
        Self {
            counts: r.counts.clone(),
            rate_achieved: r.counts.sent as f64 / window,
            answered_per_s: r.counts.answered as f64 / window,
            latency,
            naive_latency: Percentiles::of(&r.naive),
            schedule_lag,
            valid: invalid_reason.is_none(),
            invalid_reason,
            thresholds,
            timeline,
            run,
        }
    }

    /// Whether every threshold held.
    #[must_use]
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|v| v.passed)
    }

    /// The summary table people read at the end of a run.
    #[must_use]
    pub fn table(&self) -> String {
        let r = &self.run;
        let c = &self.counts;
        let mut s = String::new();
        let how = match (&r.rate_target, &r.arrivals) {
            (Some(rate), Some(a)) => format!("open loop, {} at {rate:.0}/s", a),
            _ => format!("closed loop, {} × {} in flight (capacity mode)", r.connections, r.inflight),
        };
        let _ = writeln!(s, "target     {} ({}), {how}, {} connections", r.target, r.wire, r.connections);
        let _ = writeln!(
            s,
            "window     {:.1} s measured after {:.1} s warm-up; mix {}{}",
            r.measured_s,
            r.warmup_s,
            r.mix,
            r.cpus.as_ref().map(|c| format!("; generator on CPUs {c}")).unwrap_or_default()
        );
        let codes: Vec<String> = c.codes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            s,
            "requests   sent {}  answered {} ({})  timeouts {}  unanswered {}  errors {}{}",
            c.sent,
            c.answered,
            if codes.is_empty() { "none".into() } else { codes.join(", ") },
            c.timeouts,
            c.unanswered,
            c.errors,
            if c.skipped > 0 { format!("  skipped at in-flight max {}", c.skipped) } else { String::new() }
        );
        if c.failovers > 0 {
            let _ = writeln!(
                s,
                "failover   {} connection(s) re-made to another node, {} request(s) repeated there",
                c.failovers, c.repeats
            );
        }
        if c.reversals > 0 {
            let _ = writeln!(
                s,
                "reversals  {} sent for requests that got no answer, {} repeated (0421), {} acknowledged, {} unacknowledged",
                c.reversals, c.reversal_repeats, c.reversals_acknowledged, c.reversals_unacknowledged
            );
        }
        match r.rate_target {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "rate       target {t:.0}/s  achieved {:.0}/s  answered {:.0}/s",
                    self.rate_achieved, self.answered_per_s
                );
            }
            None => {
                let _ = writeln!(s, "throughput {:.0} round trips/s", self.answered_per_s);
            }
        }
        let _ = writeln!(
            s,
            "\n{:<22}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        let mut row = |name: &str, p: &Percentiles| {
            let _ = writeln!(
                s,
                "{name:<22}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                us(p.p50_us),
                us(p.p90_us),
                us(p.p99_us),
                us(p.p999_us),
                us(p.p9999_us),
                us(p.max_us)
            );
        };
        if r.mode == "open" {
            row("corrected (service)", &self.latency);
            row("naive (from send)", &self.naive_latency);
            if let Some(lag) = &self.schedule_lag {
                row("schedule lag", lag);
            }
        } else {
            row("round trip (capacity)", &self.latency);
        }
        if r.mode == "open" {
            let _ = writeln!(s, "\n{} sends left more than 50 µs behind schedule", c.behind_schedule);
        }
        for v in &self.thresholds {
            let _ = writeln!(
                s,
                "threshold  {:<14} {:>10}  {}",
                v.threshold,
                us(v.measured_us),
                if v.passed { "pass" } else { "FAIL" }
            );
        }
        match &self.invalid_reason {
            None => {
                let _ = writeln!(s, "verdict    valid");
            }
            Some(why) => {
                let _ = writeln!(s, "verdict    INVALID: {why}");
            }
        }
        s
    }

    /// One line per second: `second,sent,answered,timeouts,errors,p50_us,p99_us,max_us`.
    #[must_use]
    pub fn csv(&self) -> String {
        let mut s = String::from("second,sent,answered,timeouts,errors,p50_us,p99_us,max_us\n");
        for r in &self.timeline {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{:.3},{:.3},{:.3}",
                r.second,
                r.sent,
                r.answered,
                r.timeouts,
                r.errors,
                r.p50_ns as f64 / 1000.0,
                r.p99_ns as f64 / 1000.0,
                r.max_ns as f64 / 1000.0
            );
        }
        s
    }

    /// A self-contained HTML page: the setup, the table, the percentile spectrum of `r`'s
    /// histograms and latency over time, drawn as inline SVG (no script, nothing fetched).
    #[must_use]
    pub fn html(&self, r: &Recorder) -> String {
        let mut series = vec![Series::spectrum("corrected", "#1f5fbf", false, &r.corrected)];
        if self.run.mode == "open" {
            series.push(Series::spectrum("naive", "#999999", true, &r.naive));
        }
        let spectrum = chart(
            "Latency by percentile",
            "percentile",
            "latency (µs)",
            &series,
            &SPECTRUM_TICKS.iter().map(|(x, l)| (*x, (*l).to_owned())).collect::<Vec<_>>(),
            false,
        );
        let pick = |f: fn(&Row) -> u64| -> Vec<(f64, f64)> {
            self.timeline
                .iter()
                .filter(|r| r.answered > 0)
                .map(|r| (r.second as f64, f(r) as f64 / 1000.0))
                .collect()
        };
        let last = self.timeline.len().max(1) as f64;
        let step = (last / 10.0).ceil().max(1.0);
        let ticks: Vec<(f64, String)> = (0..)
            .map(|i| i as f64 * step)
            .take_while(|x| *x <= last)
            .map(|x| (x, format!("{x:.0}")))
            .collect();
        let over_time = chart(
            "Latency over time (corrected, per second)",
            "seconds after warm-up",
            "latency (µs, log scale)",
            &[
                Series { name: "p50".into(), color: "#1f5fbf", dashed: false, points: pick(|r| r.p50_ns) },
                Series { name: "p99".into(), color: "#d9822b", dashed: false, points: pick(|r| r.p99_ns) },
                Series { name: "max".into(), color: "#c23030", dashed: true, points: pick(|r| r.max_ns) },
            ],
            &ticks,
            true,
        );
        let json = serde_json::to_string_pretty(&self.run).unwrap_or_default();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>corridor-load report</title><style>\
             body{{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}}\
             pre{{background:#f5f5f5;padding:1em;overflow-x:auto}}\
             .invalid{{color:#c23030;font-weight:bold}}</style></head><body>\n\
             <h1>corridor-load report</h1>\n<p class=\"{}\">{}</p>\n<h2>Summary</h2>\n<pre>{}</pre>\n\
             {spectrum}\n{over_time}\n<h2>Setup</h2>\n<pre>{}</pre>\n</body></html>\n",
            if self.valid { "valid" } else { "invalid" },
            escape(&match &self.invalid_reason {
                None => "Valid run.".to_owned(),
                Some(w) => format!("Invalid run: {w}"),
            }),
            escape(&self.table()),
            escape(&json),
        )
    }
}

/// Writes `h` (nanoseconds) as HdrHistogram's percentile distribution text, values in
/// milliseconds — the format of Java's `outputPercentileDistribution` that the HdrHistogram
/// plotter reads.
#[must_use]
pub fn hgrm(h: &Histogram<u64>) -> String {
    const SCALE: f64 = 1_000_000.0; // ns → ms
    let mut s = String::new();
    let _ =
        write!(s, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            // The iterator sums its quantile steps in f64 (0.9 comes out as
            // 0.9000000000000002, one rank past p90): each row is the value at the
            // percentile as printed, as HdrHistogram's own output is, and the count up to it.
            let q = (v.quantile_iterated_to() * 1e12).round() / 1e12;
            let at = h.value_at_quantile(q);
            let total = h.count_between(0, at);
            let value = h.highest_equivalent(at) as f64 / SCALE;
            if q < 1.0 {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / SCALE, h.stdev() / SCALE, h.highest_equivalent(h.max()) as f64 / SCALE)
    };
    let sub_buckets = (2.0 * 10f64.powi(i32::from(h.sigfig()))).log2().ceil().exp2() as u64;
    let _ = writeln!(s, "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]");
    let _ = writeln!(s, "#[Max     = {max:12.3}, Total count    = {:12}]", h.len());
    let _ = writeln!(s, "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]", h.buckets());
    s
}

/// Writes `intervals` (second number, corrected latency in ns received in that second) as an
/// HdrHistogram interval log (`.hlog`: one compressed, base64-encoded histogram per line) that
/// HistogramLogAnalyzer and the HdrHistogram libraries read. `start` is the wall-clock time of
/// second 0; the max column is in milliseconds.
#[must_use]
pub fn hlog(intervals: &[(u64, Histogram<u64>)], start: std::time::SystemTime) -> String {
    use hdrhistogram::serialization::{interval_log::IntervalLogWriterBuilder, V2DeflateSerializer};
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let Ok(mut log) = IntervalLogWriterBuilder::new()
        .add_comment("corridor-load: corrected latency per second, values in ns, max column in ms")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1_000_000.0)
        .begin_log_with(&mut out, &mut serializer)
    else {
        return String::new();
    };
    for (second, h) in intervals {
        // A histogram that will not serialize is left out rather than failing the run.
        let _ = log.write_histogram(
            h,
            std::time::Duration::from_secs(*second),
            std::time::Duration::from_secs(1),
            None,
        );
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A latency in µs, in the unit that reads best.
#[must_use]
pub fn us(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 10_000.0 {
        format!("{:.1}ms", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2}ms", v / 1000.0)
    } else {
        format!("{v:.1}µs")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const SPECTRUM_TICKS: [(f64, &str); 7] = [
    (0.0, "0%"),
    (1.0, "90%"),
    (2.0, "99%"),
    (3.0, "99.9%"),
    (4.0, "99.99%"),
    (5.0, "99.999%"),
    (6.0, "99.9999%"),
];

struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

impl Series {
    /// The percentile spectrum of `h`: x = log10(1 / (1 - q)), y = µs.
    fn spectrum(name: &str, color: &'static str, dashed: bool, h: &Histogram<u64>) -> Self {
        let mut points = Vec::new();
        if !h.is_empty() {
            for v in h.iter_quantiles(5) {
                let q = v.quantile_iterated_to();
                if q >= 0.999_999 {
                    break;
                }
                points.push((
                    (1.0 / (1.0 - q)).log10(),
                    h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                ));
            }
            points.push((6.0_f64.min(((h.len() as f64).log10()).max(0.0)), h.max() as f64 / 1000.0));
        }
        Self { name: name.into(), color, dashed, points }
    }
}

/// An SVG line chart.
fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    x_ticks: &[(f64, String)],
    y_log: bool,
) -> String {
    const W: f64 = 900.0;
    const H: f64 = 380.0;
    const L: f64 = 70.0;
    const R: f64 = 45.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = x_ticks.iter().map(|t| t.0).chain(all.clone().map(|p| p.0)).fold(1.0_f64, f64::max);
    let y_max_raw = all.map(|p| p.1).fold(1.0_f64, f64::max);
    let tr = |y: f64| if y_log { y.max(1.0).log10() } else { y };
    let y_max = if y_log { tr(y_max_raw).ceil().max(1.0) } else { nice_ceiling(y_max_raw) };
    let px = |x: f64| L + x / x_max * (W - L - R);
    let py = |y: f64| H - B - tr(y) / y_max * (H - T - B);
    let mut s = format!(
        "<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         font-size=\"12\" role=\"img\" aria-label=\"{}\">\n",
        escape(title),
        escape(title)
    );
    let _ = writeln!(
        s,
        "<rect x=\"{L}\" y=\"{T}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ccc\"/>",
        W - L - R,
        H - T - B
    );
    for (x, label) in x_ticks {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{T}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            px(*x),
            H - B,
            H - B + 16.0,
            escape(label)
        );
    }
    let y_ticks: Vec<(f64, String)> = if y_log {
        (0..=y_max as i32).map(|e| (10f64.powi(e), format!("{}", 10u64.pow(e as u32)))).collect()
    } else {
        (0..=5).map(|i| (y_max * f64::from(i) / 5.0, format!("{:.0}", y_max * f64::from(i) / 5.0))).collect()
    };
    for (y, label) in y_ticks {
        let _ = writeln!(
            s,
            "<line x1=\"{L}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#eee\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{label}</text>",
            py(y),
            W - R,
            L - 6.0,
            py(y) + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (L + W - R) / 2.0,
        H - 10.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {0})\">{1}</text>",
        (T + H - B) / 2.0,
        escape(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> =
            se.points.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>",
            se.color,
            if se.dashed { " stroke-dasharray=\"6 4\"" } else { "" },
            pts.join(" ")
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
            L + 10.0 + 110.0 * i as f64,
            T - 10.0,
            se.color,
            escape(&se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The smallest 1, 2 or 5 × 10^k at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let e = 10f64.powf(v.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * e).find(|c| *c >= v).unwrap_or(10.0 * e)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::recorder::{histogram, Seconds};

    fn sample() -> (Summary, Recorder) {
        let mut r = Recorder::new();
        for i in 0..10_000u64 {
            let at = Duration::from_micros(i * 200);
            r.sent(at, Duration::from_micros(i % 7));
            // The last answer comes 1 ms late, in the third second: the run spans seconds 0-2.
            let lat = if i == 9_999 { Duration::from_millis(1) } else { Duration::from_micros(20 + i % 100) };
            r.answered(at + lat, Some(if i % 10 == 0 { *b"05" } else { *b"00" }), lat, lat);
        }
        let mut t = Seconds::default();
        t.absorb(&mut r, 3);
        let info = RunInfo {
            target: "127.0.0.1:9101".into(),
            wire: "native/native".into(),
            mode: "open".into(),
            connections: 1,
            inflight: 1000,
            arrivals: Some("constant".into()),
            pacing: Some("hybrid".into()),
            rate_target: Some(5000.0),
            mix: "0200=1".into(),
            warmup_s: 1.0,
            measured_s: 2.0,
            cpus: None,
        };
        (Summary::new(info, &r, t.into_rows().0, vec![]), r)
    }

    #[test]
    fn hgrm_rows_are_the_value_at_the_printed_percentile() {
        // 7,000 values: the iterator's 0.9 step is 0.9000000000000002 (rank 6301); the row
        // printed 0.900000000000 must be rank 6300, as value_at_quantile(0.9) and the JSON say.
        // (Four significant digits keep the 7,000 values in buckets of their own.)
        let mut h = histogram(4);
        for v in 1..=7_000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h);
        let rows: Vec<(f64, f64, u64)> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect();
        let p90 = rows.iter().find(|r| r.1 == 0.9).expect("a 0.9 row");
        assert_eq!(p90.2, 6300, "TotalCount at p90: {p90:?}");
        assert!((p90.0 - 6.3).abs() < 0.005, "{p90:?}");
        for (value, q, total) in &rows {
            let at = h.value_at_quantile(*q);
            let want = h.highest_equivalent(at) as f64 / 1e6;
            assert!((value - want).abs() < 0.0005, "row {q}: {value} vs {want}");
            assert_eq!(*total, h.count_between(0, at), "row {q}");
        }
    }

    #[test]
    fn hgrm_is_the_hdrhistogram_percentile_format() {
        let mut h = histogram(3);
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap(); // 1 µs .. 10 ms
        }
        let text = hgrm(&h);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]);
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<f64>> = lines
            .clone()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
            .collect();
        assert!(rows.len() > 50);
        // Value, percentile and total count never go down; the last row is the 100th
        // percentile, carries every value and has no 1/(1-p) column.
        for w in rows.windows(2) {
            assert!(w[0][0] <= w[1][0] && w[0][1] <= w[1][1] && w[0][2] <= w[1][2], "{w:?}");
        }
        let last = rows.last().unwrap();
        assert_eq!(last.len(), 3);
        assert_eq!((last[1], last[2]), (1.0, 10_000.0));
        assert!((last[0] - 10.0).abs() < 0.02, "max ≈ 10 ms, got {}", last[0]);
        // The median row reads 5 ms, and its 1/(1-p) column is 2.
        let median = rows.iter().find(|r| r[1] >= 0.5).unwrap();
        assert!((median[0] - 5.0).abs() < 0.01, "{median:?}");
        assert!((median[3] - 2.0).abs() < 0.01);
        let footer: Vec<&str> = text.lines().filter(|l| l.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3);
        assert!(footer[1].contains("Total count    =        10000"), "{}", footer[1]);
        assert!(footer[2].contains("SubBuckets     =         2048"), "{}", footer[2]);
        // An empty histogram still gives a readable file.
        assert!(hgrm(&histogram(3)).contains("Total count    =            0"));
    }

    #[test]
    fn summaries_count_rates_and_flag_generator_lag() {
        let (s, _) = sample();
        assert!(s.valid, "{:?}", s.invalid_reason);
        assert_eq!(s.counts.sent, 10_000);
        assert_eq!(s.rate_achieved, 5000.0);
        assert!((s.latency.p50_us - 70.0).abs() < 1.0, "{}", s.latency.p50_us);
        assert!(s.table().contains("answered 10000 (00: 9000, 05: 1000)"), "{}", s.table());
        assert!(s.table().contains("verdict    valid"));

        // A generator that fell 1 ms behind on every send measured itself.
        let mut r = Recorder::new();
        for _ in 0..100 {
            r.sent(Duration::ZERO, Duration::from_millis(1));
            r.answered(Duration::ZERO, Some(*b"00"), Duration::from_micros(1100), Duration::from_micros(100));
        }
        let bad = Summary::new(sample().0.run, &r, vec![], vec![]);
        assert!(!bad.valid);
        assert!(bad.invalid_reason.unwrap().contains("schedule lag p99"));
        // Nothing answered is never a valid run.
        assert!(!Summary::new(sample().0.run, &Recorder::new(), vec![], vec![]).valid);
    }

    #[test]
    fn csv_has_a_row_a_second() {
        let (s, _) = sample();
        let csv = s.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "second,sent,answered,timeouts,errors,p50_us,p99_us,max_us");
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("0,5000,"), "{}", lines[1]);
        let sent: u64 = lines[1..].iter().map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap()).sum();
        assert_eq!(sent, 10_000);
    }

    #[test]
    fn html_is_self_contained_with_both_charts() {
        let (s, r) = sample();
        let html = s.html(&r);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("</svg>").count(), 2);
        assert!(html.contains("Latency by percentile") && html.contains("Latency over time"));
        assert!(html.contains("<polyline"));
        for external in ["<script", "src=", "href=", "http://", "https://"] {
            let bad = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            assert!(!bad.contains(external), "the page loads nothing: found {external}");
        }
        // Every polyline point is a finite coordinate.
        for pts in html.split("points=\"").skip(1) {
            let pts = &pts[..pts.find('"').unwrap()];
            for p in pts.split_whitespace() {
                let (x, y) = p.split_once(',').unwrap();
                assert!(x.parse::<f64>().unwrap().is_finite() && y.parse::<f64>().unwrap().is_finite());
            }
        }
    }

    #[test]
    fn latencies_read_in_their_unit() {
        assert_eq!(us(12.34), "12.3µs");
        assert_eq!(us(1234.0), "1.23ms");
        assert_eq!(us(12_345.0), "12.3ms");
        assert_eq!(us(f64::INFINITY), "-");
        assert_eq!(nice_ceiling(123.0), 200.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
    }
}

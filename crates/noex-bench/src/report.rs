//! Turning raw timings into the printed `key=value` line.

use std::time::Duration;

/// Latency percentiles and throughput of one side of a case.
pub(crate) struct Figures {
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) per_sec: f64,
}

impl Figures {
    /// From per-operation latencies, with throughput over their sum.
    pub(crate) fn from_latencies(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        let total: Duration = samples.iter().sum();
        Figures { p50_us: at(0.50), p99_us: at(0.99), per_sec: samples.len() as f64 / total.as_secs_f64() }
    }
}

/// `case=<name> <ours> base_<baseline> ratio=<ours/base>` for latency cases (ratio of p50).
pub(crate) fn latency_line(case: &str, n: usize, ours: &Figures, base: &Figures) -> String {
    format!(
        "case={case} n={n} p50_us={:.2} p99_us={:.2} per_sec={:.0} base_p50_us={:.2} base_p99_us={:.2} base_per_sec={:.0} ratio={:.2}",
        ours.p50_us,
        ours.p99_us,
        ours.per_sec,
        base.p50_us,
        base.p99_us,
        base.per_sec,
        ours.p50_us / base.p50_us
    )
}

/// For throughput cases: time per item and items per second, ratio of time per item.
pub(crate) fn throughput_line(case: &str, n: usize, unit: &str, ours: Duration, base: Duration) -> String {
    let per_item_ns = |total: Duration| total.as_secs_f64() * 1e9 / n as f64;
    let per_sec = |total: Duration| n as f64 / total.as_secs_f64();
    format!(
        "case={case} n={n} ns_per_{unit}={:.1} {unit}s_per_sec={:.0} base_ns_per_{unit}={:.1} base_{unit}s_per_sec={:.0} ratio={:.2}",
        per_item_ns(ours),
        per_sec(ours),
        per_item_ns(base),
        per_sec(base),
        ours.as_secs_f64() / base.as_secs_f64()
    )
}

/// The median of a few runs, to damp noise on a shared machine.
pub(crate) fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort_unstable();
    runs[runs.len() / 2]
}

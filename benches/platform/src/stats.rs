//! Latency percentiles (nearest rank) and number formatting for the table.

/// Latency percentiles of one measurement, in milliseconds, by nearest rank over every
/// sample (no interpolation, no sampling).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pct {
    /// Number of samples.
    pub n: usize,
    /// Median (ms).
    pub p50: f64,
    /// 95th percentile (ms).
    pub p95: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// Largest sample (ms).
    pub max: f64,
}

/// Index of the nearest-rank `p`th percentile in a sorted slice of `len` (≥ 1) samples.
fn rank(len: usize, p: f64) -> usize {
    let r = ((p / 100.0) * len as f64).ceil() as usize;
    r.clamp(1, len) - 1
}

impl Pct {
    /// Percentiles of samples in milliseconds; sorts `samples`. Empty: all zero.
    pub fn of_ms(samples: &mut [f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable_by(f64::total_cmp);
        let at = |p| samples[rank(samples.len(), p)];
        Self {
            n: samples.len(),
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
            max: samples[samples.len() - 1],
        }
    }

    /// Percentiles of samples in microseconds (reported in ms); sorts `samples`. Used for
    /// the fan-out, whose millions of samples are kept as `u32` to stay small.
    pub fn of_us(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |p| f64::from(samples[rank(samples.len(), p)]) / 1e3;
        Self {
            n: samples.len(),
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
            max: f64::from(samples[samples.len() - 1]) / 1e3,
        }
    }
}

/// A duration in ms for the table: two decimals below 10, one below 100, none above.
pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// `v` rounded to an integer with `,` between thousands (`51770` → `51,770`).
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Pct::of_ms(&mut v);
        assert_eq!(
            (p.n, p.p50, p.p95, p.p99, p.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        let mut us = vec![3000u32, 1000, 2000];
        let p = Pct::of_us(&mut us);
        assert_eq!((p.p50, p.p99), (2.0, 3.0));
        assert_eq!(Pct::of_ms(&mut []), Pct::default());
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(51770.4), "51,770");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(fmt_ms(0.571), "0.57");
        assert_eq!(fmt_ms(13.54), "13.5");
        assert_eq!(fmt_ms(132.4), "132");
        assert_eq!(mib(10 * 1024 + 512), "10.5");
    }
}

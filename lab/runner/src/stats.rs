//! Nearest-rank statistics of the benchmarks' samples (bench/, plot.rs).

/// Nearest-rank percentile of sorted values (q in 0..=1): the smallest value with at least
/// q of the values at or below it. With 20 values p99 is the largest.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn stats(values: &[f64]) -> Option<Stats> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(Stats {
        n: v.len(),
        p50: percentile(&v, 0.5)?,
        p90: percentile(&v, 0.9)?,
        p99: percentile(&v, 0.99)?,
        max: *v.last()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.9), Some(18.0));
        assert_eq!(percentile(&v, 0.99), Some(20.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
        let s = stats(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.p50, s.max), (3, 2.0, 3.0));
    }
}

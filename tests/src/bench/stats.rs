//! Percentiles and spread of a set of samples.

use std::time::Duration;

use serde_json::{Value, json};

/// A distribution of durations, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p1: f64,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Medians of five consecutive blocks of the samples (in the order taken): the run-to-run
    /// spread of the median. Their lowest and highest.
    pub block_p50_min: f64,
    pub block_p50_max: f64,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn pick(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Summarises `samples`, taken in this order.
pub fn summarize(samples: &[Duration]) -> Summary {
    let raw: Vec<f64> = samples.iter().copied().map(us).collect();
    let blocks: Vec<f64> = if raw.len() >= 10 {
        raw.chunks(raw.len().div_ceil(5)).map(|c| pick(&sorted(c.to_vec()), 0.5)).collect()
    } else {
        vec![pick(&sorted(raw.clone()), 0.5)]
    };
    let s = sorted(raw);
    Summary {
        n: s.len(),
        min: s.first().copied().unwrap_or(f64::NAN),
        p1: pick(&s, 0.01),
        p10: pick(&s, 0.10),
        p25: pick(&s, 0.25),
        p50: pick(&s, 0.5),
        p75: pick(&s, 0.75),
        p90: pick(&s, 0.90),
        p99: pick(&s, 0.99),
        max: s.last().copied().unwrap_or(f64::NAN),
        block_p50_min: blocks.iter().copied().fold(f64::INFINITY, f64::min),
        block_p50_max: blocks.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

impl Summary {
    pub fn json(&self) -> Value {
        json!({"n": self.n, "unit": "us", "min": r(self.min), "p1": r(self.p1), "p10": r(self.p10),
               "p25": r(self.p25), "p50": r(self.p50), "p75": r(self.p75), "p90": r(self.p90),
               "p99": r(self.p99), "max": r(self.max),
               "block_p50_min": r(self.block_p50_min), "block_p50_max": r(self.block_p50_max)})
    }
}

/// Median, lowest and highest of a few repeated measurements (e.g. throughput per run).
#[derive(Debug, Clone, Default)]
pub struct Repeated {
    pub runs: Vec<f64>,
}

impl Repeated {
    pub fn median(&self) -> f64 {
        pick(&sorted(self.runs.clone()), 0.5)
    }
    pub fn min(&self) -> f64 {
        self.runs.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub fn max(&self) -> f64 {
        self.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    pub fn json(&self) -> Value {
        json!({"runs": self.runs.iter().map(|v| r(*v)).collect::<Vec<_>>(), "median": r(self.median()),
               "min": r(self.min()), "max": r(self.max())})
    }
}

/// Rounded to 0.1 for the JSON (NaN becomes null).
pub fn r(v: f64) -> Value {
    if v.is_finite() { json!((v * 10.0).round() / 10.0) } else { Value::Null }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_block_spread() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = summarize(&samples);
        assert_eq!((s.n, s.min, s.max), (100, 1.0, 100.0));
        assert_eq!(s.p50, 51.0);
        assert_eq!(s.p99, 99.0);
        assert_eq!((s.block_p50_min, s.block_p50_max), (11.0, 91.0));
    }
}

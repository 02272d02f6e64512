//! Deterministic key generators shared by tests, benches and the space report (not API).

use crate::key::Key;

/// SplitMix64: tiny, good enough for test data, no dependencies.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    Sequential,
    Uniform,
    Lognormal,
    Timestamps,
    Duplicates,
}

impl Dist {
    pub const ALL: [Dist; 5] = [
        Dist::Sequential,
        Dist::Uniform,
        Dist::Lognormal,
        Dist::Timestamps,
        Dist::Duplicates,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Dist::Sequential => "sequential",
            Dist::Uniform => "uniform",
            Dist::Lognormal => "lognormal",
            Dist::Timestamps => "timestamps",
            Dist::Duplicates => "duplicates",
        }
    }
}

/// `n` i64 keys (as ordered u64), unsorted, from `dist`.
pub fn keys(dist: Dist, n: usize, seed: u64) -> Vec<u64> {
    let mut r = Rng(seed);
    let mut ts = 1_700_000_000_000_000i64; // µs since epoch, 2023
    (0..n)
        .map(|i| {
            let k: i64 = match dist {
                Dist::Sequential => i as i64,
                Dist::Uniform => r.next_u64() as i64,
                Dist::Lognormal => ((r.normal() * 2.0).exp() * 1e9) as i64,
                Dist::Timestamps => {
                    // Events about 1 ms apart in bursts, each stamped with up to 50 ms jitter.
                    ts += if r.below(100) == 0 { 1_000_000 } else { 1_000 };
                    ts + r.below(50_000) as i64
                }
                Dist::Duplicates => r.below((n as u64 / 100).max(1)) as i64,
            };
            k.to_ordered_u64()
        })
        .collect()
}

//! Linear models over the u64 key domain.
//!
//! Keys are first reduced to a residual `key - base` (saturating at 0) so that models of
//! narrow nodes keep full f64 precision even at 2^63 (where i64 0 lives). Prediction is
//! monotone non-decreasing in the key whenever `slope >= 0` (u64->f64, multiply, add and
//! floor are all monotone), which is what lets model nodes route by arithmetic alone and
//! lets us compute each slot's exact lowest key by binary search.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearModel {
    pub base: u64,
    pub slope: f64,
    pub intercept: f64,
}

impl LinearModel {
    pub const ZERO: LinearModel = LinearModel {
        base: 0,
        slope: 0.0,
        intercept: 0.0,
    };

    #[inline]
    pub fn predict(&self, key: u64) -> f64 {
        let x = key.saturating_sub(self.base) as f64;
        self.slope * x + self.intercept
    }

    /// Slot in `[0, n)`. Float->int casts saturate (NaN -> 0), so this never panics even for a
    /// model read from a corrupt page.
    #[inline]
    pub fn slot(&self, key: u64, n: usize) -> usize {
        let p = self.predict(key);
        let s = if p <= 0.0 { 0 } else { p as usize };
        s.min(n.saturating_sub(1))
    }

    /// Least-squares fit of `y_i = i * scale` (rank scaled) against `x_i = key_i - base`.
    /// `keys` must be sorted. A degenerate fit falls back to slope 0 (everything predicts
    /// `intercept`), and the slope is clamped to >= 0 so routing stays monotone.
    pub fn fit_ranks(
        keys: impl ExactSizeIterator<Item = u64> + Clone,
        base: u64,
        scale: f64,
    ) -> LinearModel {
        let n = keys.len();
        if n == 0 {
            return LinearModel {
                base,
                slope: 0.0,
                intercept: 0.0,
            };
        }
        let nf = n as f64;
        let (mut sx, mut sy) = (0.0f64, 0.0f64);
        for (i, k) in keys.clone().enumerate() {
            sx += k.saturating_sub(base) as f64;
            sy += i as f64 * scale;
        }
        let (mx, my) = (sx / nf, sy / nf);
        let (mut sxy, mut sxx) = (0.0f64, 0.0f64);
        for (i, k) in keys.enumerate() {
            let dx = k.saturating_sub(base) as f64 - mx;
            sxy += dx * (i as f64 * scale - my);
            sxx += dx * dx;
        }
        let slope = if sxx > 0.0 && (sxy / sxx).is_finite() {
            (sxy / sxx).max(0.0)
        } else {
            0.0
        };
        let intercept = my - slope * mx;
        let intercept = if intercept.is_finite() {
            intercept
        } else {
            0.0
        };
        LinearModel {
            base,
            slope,
            intercept,
        }
    }

    /// Smallest key in `[lo, hi]` whose slot (out of `n`) is `>= s`, or `None` if even `hi`
    /// maps below `s`.
    pub fn slot_lower_bound(&self, s: usize, n: usize, lo: u64, hi: u64) -> Option<u64> {
        if self.slot(hi, n) < s {
            return None;
        }
        if self.slot(lo, n) >= s {
            return Some(lo);
        }
        let (mut a, mut b) = (lo, hi); // slot(a) < s <= slot(b)
        while b - a > 1 {
            let m = a + (b - a) / 2;
            if self.slot(m, n) >= s {
                b = m;
            } else {
                a = m;
            }
        }
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn lower_bound_is_exact() {
        let m = LinearModel {
            base: 1 << 63,
            slope: 1e-3,
            intercept: 0.3,
        };
        for s in 1..50 {
            let b = m.slot_lower_bound(s, 64, 0, u64::MAX).unwrap();
            assert!(m.slot(b, 64) >= s && m.slot(b - 1, 64) < s);
        }
    }
    #[test]
    fn fit_is_monotone() {
        let keys: Vec<u64> = (0..100u64).map(|i| i * i).collect();
        let m = LinearModel::fit_ranks(keys.iter().copied(), 0, 1.0);
        assert!(m.slope > 0.0);
    }
}

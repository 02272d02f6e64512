//! PostgreSQL `numeric` arithmetic on (unscaled i128, display scale) pairs,
//! with PostgreSQL's result scales: division (and `avg`, which divides)
//! chooses its scale per value (`select_div_scale`), so its results carry
//! their own display scale.

use arrow_buffer::i256;

/// Why a result cannot be computed here (PostgreSQL would compute it).
#[derive(Debug, PartialEq, Eq)]
pub enum NumError {
    DivisionByZero,
    /// The value needs more than 38 digits.
    TooLarge,
}

const NBASE_DIGITS: i32 = 4;
const MIN_SIG_DIGITS: i32 = 16;
const MAX_DISPLAY_SCALE: i32 = 1000;

fn pow10(e: u32) -> Option<i256> {
    i256::from_i128(10).checked_pow(e)
}

/// PostgreSQL's normalized weight (in base-10000 digits) and first
/// base-10000 digit of `u * 10^-s`; (0, 0) for zero.
pub fn weight_and_first_digit(u: i128, s: i32) -> (i32, i128) {
    let mag = u.unsigned_abs();
    if mag == 0 {
        return (0, 0);
    }
    // The value lies in [10^p, 10^(p+1)).
    let p = mag.ilog10() as i32 - s;
    let weight = p.div_euclid(NBASE_DIGITS);
    // First digit: floor(value / 10000^weight) = mag / 10^(s + 4 weight).
    let e = s + NBASE_DIGITS * weight;
    let first = if e >= 0 {
        mag / 10u128.pow(e as u32)
    } else {
        mag * 10u128.pow((-e) as u32)
    };
    (weight, first as i128)
}

/// PostgreSQL's `select_div_scale` for `a / b` with display scales `da`, `db`.
pub fn div_scale(a: i128, sa: i32, da: i32, b: i128, sb: i32, db: i32) -> i32 {
    let (w1, f1) = weight_and_first_digit(a, sa);
    let (w2, f2) = weight_and_first_digit(b, sb);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let r = MIN_SIG_DIGITS - qweight * NBASE_DIGITS;
    r.max(da).max(db).max(0).min(MAX_DISPLAY_SCALE)
}

/// `round(n / d)` half away from zero (d != 0).
fn div_round(n: i256, d: i256) -> Option<i256> {
    let q = n.checked_div(d)?;
    let r = n.checked_rem(d)?;
    let twice = r.wrapping_abs().checked_mul(i256::from_i128(2))?;
    if twice >= d.wrapping_abs() {
        let neg = (n < i256::ZERO) != (d < i256::ZERO);
        return if neg {
            q.checked_add(i256::from_i128(-1))
        } else {
            q.checked_add(i256::ONE)
        };
    }
    Some(q)
}

/// `a / b` as PostgreSQL's numeric_div computes it: (unscaled, scale).
/// `sa`/`sb` are the scales of the unscaled values, `da`/`db` the
/// operands' display scales (the same for values of a numeric column).
pub fn div(a: i128, sa: i32, da: i32, b: i128, sb: i32, db: i32) -> Result<(i128, i32), NumError> {
    if b == 0 {
        return Err(NumError::DivisionByZero);
    }
    let r = div_scale(a, sa, da, b, sb, db);
    // q = a 10^-sa / (b 10^-sb), scaled by 10^r: a 10^(sb + r) / (b 10^sa).
    let big = |v: i128, e: i32| -> Option<i256> {
        if e >= 0 {
            i256::from_i128(v).checked_mul(pow10(e as u32)?)
        } else {
            None
        }
    };
    let (n, d) = if sb + r >= sa {
        (big(a, sb + r - sa), Some(i256::from_i128(b)))
    } else {
        (Some(i256::from_i128(a)), big(b, sa - sb - r))
    };
    let (n, d) = n.zip(d).ok_or(NumError::TooLarge)?;
    let q = div_round(n, d).ok_or(NumError::TooLarge)?;
    let q = q
        .to_i128()
        .filter(|q| q.unsigned_abs() < 10u128.pow(38))
        .ok_or(NumError::TooLarge)?;
    Ok((q, r))
}

/// Bring (u, s) to scale `to` (>= s).
fn rescale(u: i128, s: i32, to: i32) -> Option<i256> {
    i256::from_i128(u).checked_mul(pow10((to - s) as u32)?)
}

/// Compare two numerics exactly.
pub fn cmp(a: i128, sa: i32, b: i128, sb: i32) -> std::cmp::Ordering {
    let to = sa.max(sb);
    match (rescale(a, sa, to), rescale(b, sb, to)) {
        (Some(x), Some(y)) => x.cmp(&y),
        // Beyond 76 digits: compare by sign, then magnitude order.
        _ => (a.signum(), a.unsigned_abs().ilog10() as i32 - sa)
            .cmp(&(b.signum(), b.unsigned_abs().ilog10() as i32 - sb)),
    }
}

/// `a + b` (or `a - b`): exact, at the larger scale.
pub fn add(a: i128, sa: i32, b: i128, sb: i32, negate_b: bool) -> Result<(i128, i32), NumError> {
    let to = sa.max(sb);
    let x = rescale(a, sa, to).ok_or(NumError::TooLarge)?;
    let mut y = rescale(b, sb, to).ok_or(NumError::TooLarge)?;
    if negate_b {
        y = y.checked_neg().ok_or(NumError::TooLarge)?;
    }
    let v = x
        .checked_add(y)
        .and_then(|v| v.to_i128())
        .ok_or(NumError::TooLarge)?;
    Ok((v, to))
}

/// `a * b`: exact, at the sum of the scales.
pub fn mul(a: i128, sa: i32, b: i128, sb: i32) -> Result<(i128, i32), NumError> {
    let v = i256::from_i128(a)
        .checked_mul(i256::from_i128(b))
        .and_then(|v| v.to_i128())
        .ok_or(NumError::TooLarge)?;
    Ok((v, sa + sb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_base_10000_digits() {
        assert_eq!(weight_and_first_digit(5658655440073, 2), (2, 565));
        assert_eq!(weight_and_first_digit(1478493, 0), (1, 147));
        assert_eq!(weight_and_first_digit(5, 2), (-1, 500)); // 0.05
        assert_eq!(weight_and_first_digit(1, 0), (0, 1));
        assert_eq!(weight_and_first_digit(10000, 0), (1, 1));
        assert_eq!(weight_and_first_digit(0, 3), (0, 0));
    }

    #[test]
    fn division_scales_like_postgres() {
        // SELECT 56586554400.73 / 1478493  -> 38273.129734621672 (12 places)
        assert_eq!(
            div(5658655440073, 2, 2, 1478493, 0, 0),
            Ok((38273129734621672, 12))
        );
        // SELECT 1::numeric / 3 -> 0.33333333333333333333 (20 places)
        assert_eq!(div(1, 0, 0, 3, 0, 0), Ok((33333333333333333333, 20)));
        // SELECT 2::numeric / 3 -> 0.66666666666666666667 (rounded)
        assert_eq!(div(2, 0, 0, 3, 0, 0), Ok((66666666666666666667, 20)));
        // SELECT -7.5 / 2 -> -3.7500000000000000
        assert_eq!(div(-75, 1, 1, 2, 0, 0), Ok((-37500000000000000, 16)));
        // SELECT 10::numeric / 4 -> 2.5000000000000000
        assert_eq!(div(10, 0, 0, 4, 0, 0), Ok((25000000000000000, 16)));
        assert_eq!(div(1, 0, 0, 0, 0, 0), Err(NumError::DivisionByZero));
    }

    #[test]
    fn comparisons_and_sums_are_exact() {
        assert_eq!(cmp(150, 2, 15, 1), std::cmp::Ordering::Equal);
        assert_eq!(cmp(-1, 0, 1, 30), std::cmp::Ordering::Less);
        assert_eq!(add(150, 2, 5, 1, true), Ok((100, 2)));
        assert_eq!(mul(15, 1, 2, 1), Ok((30, 2)));
    }
}

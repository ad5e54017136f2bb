//! A certified operating point: a threshold on P(correct) whose selective risk (error rate
//! among accepted predictions) is at most `r` with probability at least 1 − δ over the draw of
//! the calibration rows.
//!
//! * [`binomial_cdf`] and [`clopper_pearson_upper`]: exact binomial tail and the one-sided
//!   Clopper–Pearson upper bound (Clopper & Pearson, Biometrika 1934).
//! * [`learn_then_test`]: Learn-then-Test with fixed-sequence testing over a grid of
//!   thresholds fixed before seeing data (Angelopoulos, Bates, Candès, Jordan & Lei, "Learn
//!   then Test: Calibrating Predictive Algorithms to Achieve Risk Control", 2021). The classic
//!   selective-classification analogue is SGR (Geifman & El-Yaniv, NeurIPS 2017).
//! * [`bound_at`]: the Clopper–Pearson bound at any threshold (for display; not certified).
//!
//! Numerics: no external crate. Binomial probabilities use Loader's saddle-point form
//! (C. Loader, "Fast and accurate computation of binomial probabilities", 2000; the method of
//! R's `dbinom`), which keeps full relative accuracy far into the tails, and the CDF sums the
//! pmf outward from `k` towards the nearer tail until the geometric remainder bound is below
//! 1e-17 of the sum. The Clopper–Pearson bound inverts the CDF by bisection (closed form for
//! k = 0). Everything is `f64`.
//!
//! Rows are accepted when `p ≥ t` (plain float comparison: a NaN probability is never
//! accepted, and a NaN threshold accepts nothing).

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Binomial distribution
// ---------------------------------------------------------------------------------------------

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Stirling's error ln n! − [(n + ½)·ln n − n + ln √(2π)] for an integer n ≥ 1.
fn stirlerr(n: u64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    let x = n as f64;
    if n <= 15 {
        // n! ≤ 15! is exact in f64; the cancellation costs about 1e-14 absolute.
        let fact: f64 = (2..=n).map(|i| i as f64).product();
        return fact.ln() - (x + 0.5) * x.ln() + x - LN_SQRT_2PI;
    }
    let xx = x * x;
    if n > 500 {
        (S0 - S1 / xx) / x
    } else if n > 80 {
        (S0 - (S1 - S2 / xx) / xx) / x
    } else if n > 35 {
        (S0 - (S1 - (S2 - S3 / xx) / xx) / xx) / x
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / xx) / xx) / xx) / xx) / x
    }
}

/// Deviance term x·ln(x/m) + m − x, computed without cancellation when x ≈ m.
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let v2 = v * v;
        let mut s = (x - m) * v;
        let mut ej = 2.0 * x * v;
        for j in 1..10_000 {
            ej *= v2;
            let s1 = s + ej / (2 * j + 1) as f64;
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        s
    } else {
        x * (x / m).ln() + m - x
    }
}

/// ln P(Bin(n, p) = k) for 0 < p < 1, k ≤ n (Loader's saddle-point form).
fn ln_binomial_pmf(k: u64, n: u64, p: f64) -> f64 {
    let q = 1.0 - p;
    let (kf, nf) = (k as f64, n as f64);
    if k == 0 {
        return if p < 0.1 {
            -bd0(nf, nf * q) - nf * p
        } else {
            nf * (-p).ln_1p()
        };
    }
    if k == n {
        return if q < 0.1 {
            -bd0(nf, nf * p) - nf * q
        } else {
            nf * p.ln()
        };
    }
    let lc = stirlerr(n) - stirlerr(k) - stirlerr(n - k) - bd0(kf, nf * p) - bd0(nf - kf, nf * q);
    // ln(2π·k·(n−k)/n)
    let lf = 2.0 * LN_SQRT_2PI + kf.ln() + (-kf / nf).ln_1p();
    lc - 0.5 * lf
}

/// P(Bin(n, p) ≤ k), accurate to about 1e-13 relative in both tails.
///
/// `k ≥ n` gives 1; `p ≤ 0` gives 1; `p ≥ 1` gives 0 for `k < n`; a NaN `p` gives NaN.
pub fn binomial_cdf(k: usize, n: usize, p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (k, n) = (k as u64, n as u64);
    let q = 1.0 - p;
    // The pmf rises while i ≤ (n+1)p and falls after. Sum outward from k towards the nearer
    // tail: the ratios between consecutive terms shrink monotonically away from the mode, so
    // after a term t with next ratio ρ < 1 the rest is at most t·ρ/(1 − ρ).
    if (k as f64) <= (n + 1) as f64 * p {
        // Lower tail Σ_{i ≤ k}, relative to pmf(k).
        let (mut sum, mut term) = (1.0f64, 1.0f64);
        let mut i = k;
        while i > 0 {
            let ratio = i as f64 * q / ((n - i + 1) as f64 * p);
            term *= ratio;
            sum += term;
            i -= 1;
            let next = i as f64 * q / ((n - i + 1) as f64 * p);
            if next < 1.0 && term * next / (1.0 - next) <= sum * 1e-17 {
                break;
            }
        }
        (ln_binomial_pmf(k, n, p) + sum.ln()).exp()
    } else {
        // Upper tail Σ_{i > k}, relative to pmf(k + 1); here k + 1 > (n+1)p.
        let (mut sum, mut term) = (1.0f64, 1.0f64);
        let mut i = k + 1;
        while i < n {
            let ratio = (n - i) as f64 * p / ((i + 1) as f64 * q);
            term *= ratio;
            sum += term;
            i += 1;
            let next = (n - i) as f64 * p / ((i + 1) as f64 * q);
            if term * next / (1.0 - next) <= sum * 1e-17 {
                break;
            }
        }
        let upper = (ln_binomial_pmf(k + 1, n, p) + sum.ln()).exp();
        (1.0 - upper).clamp(0.0, 1.0)
    }
}

/// One-sided Clopper–Pearson upper bound on an error rate: the (1 − δ) quantile of
/// Beta(k + 1, n − k), i.e. the `u` with P(Bin(n, u) ≤ k) = δ. With probability ≥ 1 − δ the
/// true rate is ≤ this bound.
///
/// `n = 0` or `k = n` gives 1; `δ ≤ 0` (or NaN) gives 1; `δ ≥ 1` gives 0. For k = 0 the closed
/// form 1 − δ^(1/n); otherwise bisection to adjacent floats, returning the upper end (the
/// bound is never understated).
///
/// # Panics
/// If `errors > n`.
pub fn clopper_pearson_upper(errors: usize, n: usize, delta: f64) -> f64 {
    assert!(errors <= n, "certify: {errors} errors among {n} rows");
    if n == 0 || errors == n || delta.is_nan() || delta <= 0.0 {
        return 1.0;
    }
    if delta >= 1.0 {
        return 0.0;
    }
    if errors == 0 {
        return -(delta.ln() / n as f64).exp_m1();
    }
    // binomial_cdf(k, n, ·) falls from 1 at 0 to 0 at 1.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if binomial_cdf(errors, n, mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

// ---------------------------------------------------------------------------------------------
// Learn-then-Test
// ---------------------------------------------------------------------------------------------

/// The fixed grid of P(correct) thresholds, strict to permissive: sigmoid(ℓ) for logits ℓ from
/// 14 down to −6 in steps of 0.05, rounded to `f32` (consecutive values that round to the same
/// `f32` near 1 are kept once). Dense near 1, where useful thresholds for low risk live; chosen
/// without looking at any data, as fixed-sequence testing requires.
pub fn threshold_grid() -> Vec<f32> {
    let mut grid: Vec<f32> = Vec::with_capacity(401);
    for i in 0..=400u32 {
        let logit = (280.0 - i as f64) / 20.0;
        let t = (1.0 / (1.0 + (-logit).exp())) as f32;
        if grid.last() != Some(&t) {
            grid.push(t);
        }
    }
    grid
}

/// Result of [`learn_then_test`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// Accept a prediction when P(correct) ≥ threshold. `f32::INFINITY` (reject everything)
    /// when infeasible; serialised as `null` (or omitted) then, since JSON has no infinity.
    #[serde(with = "threshold_repr", default = "reject_all")]
    pub threshold: f32,
    /// Whether some threshold of the grid was certified.
    pub feasible: bool,
    /// The risk level r.
    pub target_risk: f64,
    /// The error probability δ of the guarantee.
    pub delta: f64,
    /// Calibration rows accepted at the threshold (0 when infeasible).
    pub accepted: usize,
    /// Wrong predictions among them.
    pub errors: usize,
    /// All calibration rows.
    pub calibration_rows: usize,
    /// Clopper–Pearson (1 − δ) upper bound of the selective risk at the threshold (≤ r when
    /// feasible; 1 when infeasible).
    pub upper_bound: f64,
}

fn reject_all() -> f32 {
    f32::INFINITY
}

/// `threshold` as an optional number: `None`/`null`/missing means +∞ (reject everything).
pub mod threshold_repr {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &f32, s: S) -> Result<S::Ok, S::Error> {
        if t.is_finite() {
            s.serialize_some(t)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::INFINITY))
    }
}

/// Percentage with up to three decimals and no trailing zeros: 0.005 → "0.5", 0.95 → "95".
fn percent(x: f64) -> String {
    let s = format!("{:.3}", x * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 1203 → "1,203".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Certificate {
    /// One sentence for reports and the dashboard. The threshold is printed exactly (the
    /// shortest decimal that reads back as the same `f32`): a rounded threshold would accept a
    /// different set of rows than the certified one.
    pub fn statement(&self) -> String {
        let risk = percent(self.target_risk);
        let confidence = percent(1.0 - self.delta);
        if self.feasible {
            let noun = if self.errors == 1 { "error" } else { "errors" };
            format!(
                "accept if P(correct) ≥ {}: selective risk ≤ {risk} % with probability ≥ \
                 {confidence} % (n = {} accepted, k = {} {noun} on calibration rows; valid for \
                 data like the calibration data)",
                self.threshold,
                thousands(self.accepted),
                thousands(self.errors),
            )
        } else {
            format!(
                "no threshold certifies selective risk ≤ {risk} % with probability ≥ \
                 {confidence} % on {} calibration rows: reject everything",
                thousands(self.calibration_rows),
            )
        }
    }
}

/// Learn-then-Test on the fixed [`threshold_grid`], by fixed-sequence testing.
///
/// Scanning the grid from strict to permissive, at each threshold t_j with n_j accepted
/// calibration rows (p ≥ t_j) of which k_j are wrong, the null hypothesis "selective risk at
/// t_j > r" has the binomial p-value P(Bin(n_j, r) ≤ k_j) (valid conditionally on n_j for
/// exchangeable rows). The scan rejects while the p-value is ≤ δ and stops at the first
/// non-rejection; the certified threshold is the last one rejected. Then the selective risk at
/// the returned threshold is ≤ r with probability ≥ 1 − δ for data exchangeable with the
/// calibration rows. Equivalently, every threshold passed has Clopper–Pearson bound ≤ r.
///
/// Where the grid starts: a threshold accepting so few rows that even zero errors could not
/// reject (P(Bin(n_j, r) ≤ 0) = (1 − r)^n_j > δ, e.g. n_j < 59 for r = δ = 5 %) carries no
/// evidence either way, and testing it would end every scan at the strict end of the grid. The
/// scan therefore starts at the first threshold where a rejection is possible. That start
/// depends on the probabilities (not on the labels) through one order statistic; strictly,
/// fixed-sequence testing assumes a start chosen without data. The authors' own
/// selective-classification example makes the same restriction (only thresholds with ≥ 30
/// accepted rows). The seeded simulations in the tests measure the realised error rate,
/// including a case built to break this.
///
/// Infeasible (nothing certified, including no rows or nothing ever accepted): threshold
/// +∞, meaning reject everything, never a fallback value. `target_risk` and `delta` are meant
/// to lie in (0, 1); NaN for either gives an infeasible certificate.
///
/// # Panics
/// If `p_correct.len() != correct.len()`.
pub fn learn_then_test(
    p_correct: &[f32],
    correct: &[bool],
    target_risk: f64,
    delta: f64,
) -> Certificate {
    assert_eq!(
        p_correct.len(),
        correct.len(),
        "certify: {} probabilities but {} correctness labels",
        p_correct.len(),
        correct.len()
    );
    // Acceptable rows (NaN never is), most confident first.
    let mut rows: Vec<(f32, bool)> = p_correct
        .iter()
        .zip(correct)
        .filter(|(p, _)| !p.is_nan())
        .map(|(&p, &c)| (p, c))
        .collect();
    rows.sort_unstable_by(|x, y| y.0.total_cmp(&x.0));

    let mut certified: Option<(f32, usize, usize)> = None;
    let (mut accepted, mut errors) = (0usize, 0usize);
    let mut started = false;
    for t in threshold_grid() {
        while accepted < rows.len() && rows[accepted].0 >= t {
            errors += usize::from(!rows[accepted].1);
            accepted += 1;
        }
        // Too few rows for even zero errors to reject: no evidence either way, not tested.
        if !started {
            if binomial_cdf(0, accepted, target_risk) > delta {
                continue;
            }
            started = true;
        }
        if binomial_cdf(errors, accepted, target_risk) <= delta {
            certified = Some((t, accepted, errors));
        } else {
            break;
        }
    }

    match certified {
        Some((threshold, accepted, errors)) => Certificate {
            threshold,
            feasible: true,
            target_risk,
            delta,
            accepted,
            errors,
            calibration_rows: correct.len(),
            upper_bound: clopper_pearson_upper(errors, accepted, delta),
        },
        None => Certificate {
            threshold: f32::INFINITY,
            feasible: false,
            target_risk,
            delta,
            accepted: 0,
            errors: 0,
            calibration_rows: correct.len(),
            upper_bound: 1.0,
        },
    }
}

/// (accepted, errors, Clopper–Pearson (1 − δ) upper bound of the selective risk) at any
/// threshold, accepting p ≥ threshold.
///
/// For display (e.g. at the dashboard's slider position). A bound at a threshold chosen by
/// looking at these same rows is **not** certified: picking the threshold where the bound
/// looks best is a selection the bound does not account for. Only the threshold returned by
/// [`learn_then_test`] carries the guarantee.
///
/// # Panics
/// If `p_correct.len() != correct.len()`.
pub fn bound_at(
    p_correct: &[f32],
    correct: &[bool],
    threshold: f32,
    delta: f64,
) -> (usize, usize, f64) {
    assert_eq!(
        p_correct.len(),
        correct.len(),
        "certify: {} probabilities but {} correctness labels",
        p_correct.len(),
        correct.len()
    );
    let (mut accepted, mut errors) = (0usize, 0usize);
    for (&p, &c) in p_correct.iter().zip(correct) {
        if p >= threshold {
            accepted += 1;
            errors += usize::from(!c);
        }
    }
    (
        accepted,
        errors,
        clopper_pearson_upper(errors, accepted, delta),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn rel_close(got: f64, want: f64, tol: f64) -> bool {
        (got - want).abs() <= tol * want.abs().max(f64::MIN_POSITIVE)
    }

    /// Exact binomial coefficients for n ≤ 50 (Pascal's triangle in u64: C(50, 25) < 2^53, so
    /// every value is exact in f64 too).
    fn pascal(n_max: usize) -> Vec<Vec<u64>> {
        let mut rows = vec![vec![1u64]];
        for n in 1..=n_max {
            let prev = &rows[n - 1];
            let mut row = vec![1u64; n + 1];
            for k in 1..n {
                row[k] = prev[k - 1] + prev[k];
            }
            rows.push(row);
        }
        rows
    }

    #[test]
    fn binomial_cdf_matches_exact_sum() {
        let c = pascal(50);
        let ps: [f64; 9] = [1e-6, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.77, 0.95, 0.999];
        for (n, row) in c.iter().enumerate() {
            for &p in &ps {
                let mut cdf = 0.0f64;
                for (k, &coef) in row.iter().enumerate() {
                    cdf += coef as f64 * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32);
                    let got = binomial_cdf(k, n, p);
                    // Relative accuracy in the lower tail (values down to ~1e-150 here);
                    // near 1 the reference sum itself is only good to ~1e-16 absolute.
                    let ok = if cdf <= 0.5 {
                        rel_close(got, cdf, 1e-11)
                    } else {
                        (got - cdf).abs() <= 1e-13
                    };
                    assert!(ok, "n={n} k={k} p={p}: {got} vs {cdf}");
                }
            }
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // digits as printed by mpmath
    fn binomial_cdf_large_n_reference_values() {
        // 50-digit values from mpmath (direct sums of exact terms).
        let cases: [(usize, usize, f64, f64); 10] = [
            (5, 10_000, 0.002, 7.108_788_159_873_36e-5),
            (0, 1_000, 0.01, 4.317_124_741_065_824e-5),
            (3, 2_000, 0.01, 2.976_879_896_688_401_4e-6),
            (30, 1_000, 0.05, 1.277_067_917_479_835_8e-3),
            (60, 1_000, 0.05, 0.932_937_481_366_692_03),
            (400, 1_000, 0.5, 1.364_232_078_033_009_2e-10),
            (480, 1_000, 0.5, 0.108_724_146_602_070_47),
            (520, 1_000, 0.5, 0.902_616_835_769_117_26),
            (2, 1_203, 0.005, 0.060_859_466_258_375_347),
            (10, 100_000, 0.0005, 6.398_436_968_331_955e-12),
        ];
        for (k, n, p, want) in cases {
            let got = binomial_cdf(k, n, p);
            assert!(
                rel_close(got, want, 1e-11),
                "k={k} n={n} p={p}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn binomial_cdf_edges_and_symmetry() {
        assert_eq!(binomial_cdf(0, 0, 0.3), 1.0);
        assert_eq!(binomial_cdf(5, 5, 0.3), 1.0);
        assert_eq!(binomial_cdf(7, 5, 0.3), 1.0);
        assert_eq!(binomial_cdf(0, 5, 0.0), 1.0);
        assert_eq!(binomial_cdf(4, 5, 1.0), 0.0);
        assert!(binomial_cdf(1, 5, f64::NAN).is_nan());
        // P(X ≤ k) + P(Y ≤ n−k−1) = 1 for Y = n − X ~ Bin(n, 1−p), across both branches.
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..2000 {
            let n = rng.random_range(1..200_000usize);
            let k = rng.random_range(0..n);
            let p: f64 = rng.random_range(0.0001..0.9999);
            let s = binomial_cdf(k, n, p) + binomial_cdf(n - k - 1, n, 1.0 - p);
            assert!((s - 1.0).abs() < 1e-10, "n={n} k={k} p={p}: {s}");
        }
        // Monotone in p and in k.
        let mut last = 1.0;
        for i in 1..1000 {
            let v = binomial_cdf(12, 800, i as f64 / 1000.0);
            assert!(v <= last + 1e-15);
            last = v;
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // digits as printed by mpmath
    fn clopper_pearson_reference_values() {
        // k = 0 closed form: 1 − 0.05^(1/100).
        let u = clopper_pearson_upper(0, 100, 0.05);
        assert!(rel_close(u, 0.029_513_049_607_039_934, 1e-14), "{u}");
        // (1−δ) quantiles of Beta(k+1, n−k) from mpmath; (1, 10, 0.05) → 0.3942 is the
        // textbook one-sided 95 % bound for 1 error in 10.
        let cases = [
            (1, 10, 0.05, 0.394_163_302_436_504_78),
            (2, 1_203, 0.05, 0.005_224_074_996_724_610_6),
            (50, 1_000, 0.01, 0.068_404_893_695_631_022),
            (9, 10, 0.05, 0.994_883_803_108_176_3),
            (5, 20, 0.1, 0.414_890_388_323_330_05),
        ];
        for (k, n, d, want) in cases {
            let got = clopper_pearson_upper(k, n, d);
            assert!(
                rel_close(got, want, 1e-10),
                "k={k} n={n} δ={d}: {got} vs {want}"
            );
        }
        assert_eq!(clopper_pearson_upper(0, 0, 0.05), 1.0);
        assert_eq!(clopper_pearson_upper(7, 7, 0.05), 1.0);
        assert_eq!(clopper_pearson_upper(3, 7, 0.0), 1.0);
    }

    #[test]
    fn clopper_pearson_inverts_the_cdf() {
        // Independent inversion by plain bisection on binomial_cdf in the test itself.
        for (k, n, d) in [
            (3, 50, 0.05),
            (17, 4_000, 0.1),
            (0, 12, 0.2),
            (120, 130, 0.01),
        ] {
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            for _ in 0..100 {
                let mid = 0.5 * (lo + hi);
                if binomial_cdf(k, n, mid) > d {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let got = clopper_pearson_upper(k, n, d);
            assert!(rel_close(got, hi, 1e-12), "k={k} n={n}: {got} vs {hi}");
            // Never understated: the CDF at the bound is ≤ δ.
            assert!(binomial_cdf(k, n, got) <= d * (1.0 + 1e-12));
        }
    }

    #[test]
    #[should_panic(expected = "errors among")]
    fn clopper_pearson_rejects_impossible_counts() {
        clopper_pearson_upper(4, 3, 0.05);
    }

    #[test]
    fn grid_is_fixed_strict_to_permissive() {
        let g = threshold_grid();
        assert!(g.windows(2).all(|w| w[0] > w[1]));
        assert!((g[0] as f64 - 1.0 / (1.0 + (-14.0f64).exp())).abs() < 1e-7);
        assert!((*g.last().unwrap() as f64 - 1.0 / (1.0 + 6.0f64.exp())).abs() < 1e-7);
        assert!(g.len() > 380 && g.len() <= 401, "{}", g.len());
        assert!(g.iter().all(|&t| t > 0.0 && t < 1.0));
        assert_eq!(g, threshold_grid());
    }

    /// Synthetic calibration rows with P(correct | p) = p. `skewed`: p = 1 − U³/2 (most mass
    /// near 1, like a good classifier), where the selective risk at t ≥ 0.5 is exactly
    /// (1 − t)/4; otherwise p = U, where it is (1 − t)/2.
    fn rows(n: usize, skewed: bool, rng: &mut StdRng) -> (Vec<f32>, Vec<bool>) {
        (0..n)
            .map(|_| {
                let u: f64 = rng.random();
                let p = if skewed { 1.0 - 0.5 * u * u * u } else { u };
                (p as f32, rng.random_bool(p))
            })
            .unzip()
    }

    fn true_risk(t: f32, skewed: bool) -> f64 {
        let t = t as f64;
        if skewed {
            (1.0 - t) / 4.0
        } else {
            (1.0 - t) / 2.0
        }
    }

    /// Reference Learn-then-Test: counts recomputed from scratch at every grid point.
    fn brute_force_ltt(p: &[f32], c: &[bool], r: f64, delta: f64) -> Option<(f32, usize, usize)> {
        let mut last = None;
        for t in threshold_grid() {
            let n = p.iter().filter(|&&x| x >= t).count();
            let k = p.iter().zip(c).filter(|(&x, &y)| x >= t && !y).count();
            if last.is_none() && (1.0 - r).powi(n as i32) > delta {
                continue;
            }
            if binomial_cdf(k, n, r) <= delta {
                last = Some((t, n, k));
            } else {
                break;
            }
        }
        last
    }

    #[test]
    fn ltt_certifies_and_agrees_with_a_rescan() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut feasible = 0;
        for (n, r, delta, skewed) in [
            (3000, 0.02, 0.05, true),
            (800, 0.05, 0.1, true),
            (10_000, 0.005, 0.01, true),
            (3000, 0.05, 0.05, false),
            (1000, 0.1, 0.1, false),
            (2000, 0.1, 0.1, false),
        ] {
            let (p, c) = rows(n, skewed, &mut rng);
            let cert = learn_then_test(&p, &c, r, delta);
            assert_eq!(cert.calibration_rows, n);
            let Some((t, acc, err)) = brute_force_ltt(&p, &c, r, delta) else {
                assert!(!cert.feasible);
                continue;
            };
            feasible += 1;
            assert!(cert.feasible);
            assert_eq!((cert.threshold, cert.accepted, cert.errors), (t, acc, err));
            assert!(binomial_cdf(cert.errors, cert.accepted, r) <= delta);
            assert!(cert.upper_bound <= r, "{} > {r}", cert.upper_bound);
            // The next grid threshold was not rejected.
            let grid = threshold_grid();
            let j = grid.iter().position(|&x| x == cert.threshold).unwrap();
            if let Some(&next) = grid.get(j + 1) {
                let (na, ne, _) = bound_at(&p, &c, next, delta);
                assert!(binomial_cdf(ne, na, r) > delta);
            }
            assert_eq!(
                bound_at(&p, &c, cert.threshold, delta),
                (cert.accepted, cert.errors, cert.upper_bound)
            );
        }
        assert!(feasible >= 4, "{feasible}");
    }

    #[test]
    fn ltt_infeasible_cases_reject_everything() {
        let infeasible = |cert: &Certificate| {
            assert!(!cert.feasible);
            assert_eq!(cert.threshold, f32::INFINITY);
            assert_eq!((cert.accepted, cert.errors, cert.upper_bound), (0, 0, 1.0));
        };
        infeasible(&learn_then_test(&[], &[], 0.05, 0.05));
        // All wrong.
        infeasible(&learn_then_test(&[0.99; 500], &[false; 500], 0.05, 0.05));
        // Too few rows: 10 correct rows cannot show risk ≤ 5 % at δ = 5 % (0.95^10 > 0.05).
        infeasible(&learn_then_test(&[0.99; 10], &[true; 10], 0.05, 0.05));
        // NaN probabilities are never accepted.
        infeasible(&learn_then_test(&[f32::NAN; 200], &[true; 200], 0.05, 0.05));
        infeasible(&learn_then_test(&[0.99; 500], &[true; 500], 0.0, 0.05));
        infeasible(&learn_then_test(&[0.99; 500], &[true; 500], f64::NAN, 0.05));
        // 59 correct rows: 0.95^59 = 0.0485 ≤ 0.05, certified at the first grid value ≤ 0.99.
        let cert = learn_then_test(&[0.99; 59], &[true; 59], 0.05, 0.05);
        assert!(cert.feasible && cert.threshold <= 0.99 && cert.accepted == 59);
        // Below every grid threshold (sigmoid(−6) ≈ 0.0025): nothing is ever accepted.
        infeasible(&learn_then_test(&[0.001; 500], &[true; 500], 0.05, 0.05));
    }

    #[test]
    fn ltt_risk_exceeds_target_in_about_delta_of_repetitions() {
        // The true selective risk at the certified threshold is known exactly; an infeasible
        // certificate accepts nothing and cannot violate. Bound: δ·reps plus two binomial
        // standard deviations. (Measured with these seeds: 6/400 violations at δ = 5 % and
        // 15/400 at δ = 10 %; the procedure is conservative.)
        for (n, r, delta, skewed, min_feasible) in
            [(2000, 0.02, 0.05, true, 0.9), (1000, 0.1, 0.1, false, 0.5)]
        {
            let reps = 400;
            let mut rng = StdRng::seed_from_u64(2024);
            let (mut feasible, mut violations) = (0, 0);
            for _ in 0..reps {
                let (p, c) = rows(n, skewed, &mut rng);
                let cert = learn_then_test(&p, &c, r, delta);
                if cert.feasible {
                    feasible += 1;
                    violations += usize::from(true_risk(cert.threshold, skewed) > r);
                }
            }
            let reps_f = reps as f64;
            let limit = delta * reps_f + 2.0 * (reps_f * delta * (1.0 - delta)).sqrt();
            assert!((violations as f64) <= limit, "{violations} of {reps}");
            assert!(
                feasible as f64 >= min_feasible * reps_f,
                "{feasible} of {reps}"
            );
        }
    }

    #[test]
    fn ltt_start_survives_a_hostile_top_region() {
        // All rows above 0.999 are wrong (0.1 % of the mass), below P(correct | p) = p. The
        // risk exceeds r just under the top and for low thresholds, so the data-dependent
        // start (the first threshold with enough rows to reject) can err when no calibration
        // row falls in the top region. Measured with this seed: 16/400 violations at δ = 10 %.
        let (r, delta, reps, n) = (0.05, 0.1, 400, 1000);
        let risk = |t: f64| {
            if t >= 0.999 {
                return 1.0;
            }
            ((0.999 - t) * (1.0 - (t + 0.999) / 2.0) + 0.001) / (1.0 - t)
        };
        let mut rng = StdRng::seed_from_u64(99);
        let mut violations = 0;
        for _ in 0..reps {
            let (p, c): (Vec<f32>, Vec<bool>) = (0..n)
                .map(|_| {
                    let p: f64 = rng.random();
                    (p as f32, p < 0.999 && rng.random_bool(p))
                })
                .unzip();
            let cert = learn_then_test(&p, &c, r, delta);
            if cert.feasible {
                violations += usize::from(risk(cert.threshold as f64) > r);
            }
        }
        assert!(violations <= 52, "{violations} of {reps}");
    }

    #[test]
    fn certificate_serialises_infinity_as_null() {
        let mut rng = StdRng::seed_from_u64(3);
        let (p, c) = rows(2000, true, &mut rng);
        let cert = learn_then_test(&p, &c, 0.02, 0.05);
        assert!(cert.feasible);
        let json = serde_json::to_string(&cert).unwrap();
        assert_eq!(serde_json::from_str::<Certificate>(&json).unwrap(), cert);
        let toml_text = toml::to_string(&cert).unwrap();
        assert_eq!(toml::from_str::<Certificate>(&toml_text).unwrap(), cert);

        let none = learn_then_test(&[], &[], 0.05, 0.05);
        let json = serde_json::to_string(&none).unwrap();
        assert!(json.contains("\"threshold\":null"), "{json}");
        assert_eq!(serde_json::from_str::<Certificate>(&json).unwrap(), none);
        let toml_text = toml::to_string(&none).unwrap();
        assert_eq!(toml::from_str::<Certificate>(&toml_text).unwrap(), none);
        let missing = json.replace("\"threshold\":null,", "");
        assert_eq!(serde_json::from_str::<Certificate>(&missing).unwrap(), none);
    }

    #[test]
    fn statement_reads_well() {
        let cert = Certificate {
            threshold: 0.9712,
            feasible: true,
            target_risk: 0.005,
            delta: 0.05,
            accepted: 1203,
            errors: 2,
            calibration_rows: 5000,
            upper_bound: 0.0052,
        };
        assert_eq!(
            cert.statement(),
            "accept if P(correct) ≥ 0.9712: selective risk ≤ 0.5 % with probability ≥ 95 % \
             (n = 1,203 accepted, k = 2 errors on calibration rows; valid for data like the \
             calibration data)"
        );
        let one = Certificate {
            errors: 1,
            ..cert.clone()
        };
        assert!(one.statement().contains("k = 1 error on"));
        let none = learn_then_test(&[0.5; 1234], &[false; 1234], 0.01, 0.001);
        assert_eq!(
            none.statement(),
            "no threshold certifies selective risk ≤ 1 % with probability ≥ 99.9 % on 1,234 \
             calibration rows: reject everything"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn bound_at_matches_counts() {
        let p = [0.9, 0.8, 0.8, f32::NAN, 0.3];
        let c = [true, false, true, false, false];
        assert_eq!(bound_at(&p, &c, 0.8, 0.05).0, 3);
        assert_eq!(bound_at(&p, &c, 0.8, 0.05).1, 1);
        assert_eq!(
            bound_at(&p, &c, 0.8, 0.05).2,
            clopper_pearson_upper(1, 3, 0.05)
        );
        assert_eq!(bound_at(&p, &c, f32::NEG_INFINITY, 0.05).0, 4);
        assert_eq!(bound_at(&p, &c, 0.95, 0.05), (0, 0, 1.0));
    }
}

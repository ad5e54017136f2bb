//! Risk–coverage: the error rate among the predictions a threshold accepts, over all thresholds.

use super::groups::*;

/// AURC: mean over k = 1..N of the selective risk (errors among the top k) / k, rows sorted by
/// descending `s`.
///
/// Tie convention: inside a tie group the accepted-error count is **linearly interpolated**
/// between its values at the group's ends, i.e. risk(k) is the *expected* risk when the rows of
/// a tie group are taken in uniformly random order. At the end of every group this is the exact
/// risk of the threshold `{s ≥ group score}`. (A constant score therefore gives AURC = ε.)
/// `None` if N = 0.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn aurc(scores: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(scores, correct).aurc()
}

/// AURC of the oracle ordering of the same rows (every correct row ranked above every wrong
/// row), on these N rows exactly: with P correct and W wrong rows,
/// AURC_oracle = (1/N)·Σ_{k=P+1..N} (k − P)/k. It is the smallest AURC any score can reach
/// on these rows (Geifman, Uziel & El-Yaniv, "Bias-reduced uncertainty estimation for deep
/// neural classifiers", ICLR 2019). `None` if N = 0.
pub fn aurc_oracle(correct: &[bool]) -> Option<f64> {
    let pos = correct.iter().filter(|&&c| c).count() as u64;
    let oracle = Groups {
        groups: Vec::new(),
        pos,
        neg: correct.len() as u64 - pos,
    };
    oracle.oracle().aurc()
}

/// ε + (1 − ε)·ln(1 − ε): the **large-N limit** of [`aurc_oracle`] at error rate ε (the
/// continuous form used by Geifman et al., ICLR 2019). ε is clamped to [0, 1];
/// the value is 0 at ε = 0 and 1 at ε = 1 (0·ln 0 = 0).
///
/// On N finite rows the exact oracle AURC is ε − (1−ε)·(H_N − H_{N(1−ε)}) ≈ this + ε/(2N);
/// [`eaurc`] subtracts the exact value, not this limit.
pub fn aurc_optimal(error_rate: f64) -> f64 {
    let eps = error_rate.clamp(0.0, 1.0);
    if eps >= 1.0 {
        1.0
    } else {
        eps + (1.0 - eps) * (-eps).ln_1p()
    }
}

/// E-AURC = AURC − [`aurc_oracle`]: the excess over the best ordering of the same rows,
/// exact on these N rows (0 exactly for a perfect ranking; never the asymptotic
/// [`aurc_optimal`], whose O(1/N) gap would otherwise be reported as excess). `None` if N = 0.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn eaurc(scores: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(scores, correct).eaurc()
}

/// Selective risk when the top k = ⌈coverage·N⌉ rows by score are accepted: (expected errors
/// among them) / k. Same tie convention as [`aurc`]: when k cuts through a tie group, the
/// errors of that group are counted pro rata (the expectation under a uniformly random order
/// inside the group, i.e. linear interpolation). `None` if N = 0 or `coverage` is not in
/// (0, 1] (NaN included). A product coverage·N within 1e-9 of an integer counts as that
/// integer, so floating-point noise in e.g. 0.9·10 cannot add a row.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn risk_at_coverage(scores: &[f32], correct: &[bool], coverage: f64) -> Option<f64> {
    Groups::new(scores, correct).risk_at_coverage(coverage)
}

/// AUGRC: mean over k = 1..N of (accepted errors among the top k) / N, the area under the
/// generalized risk over coverage. Same tie convention as [`aurc`] (expected value under
/// random order within tie groups, which makes it consistent with AUROC's ½-per-tie).
/// `None` if N = 0.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn augrc(scores: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(scores, correct).augrc()
}

/// Risk–coverage points `(coverage, selective risk)`: one point per tie group in descending
/// score order, at the group's end (coverage = accepted/N, risk = wrong accepted / accepted).
/// Empty if N = 0.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn risk_coverage_curve(scores: &[f32], correct: &[bool]) -> Vec<(f64, f64)> {
    Groups::new(scores, correct).risk_coverage_curve()
}

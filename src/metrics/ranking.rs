//! Ranking metrics: how well a score separates correct from wrong predictions.

use super::groups::*;

/// AUROC = P(s_correct > s_wrong) + ½·P(s_correct = s_wrong), correct = positive class.
/// Computed exactly from tie-group counts (the rank statistic with average ranks), O(N log N).
/// `None` without both a correct and a wrong row.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn auroc(scores: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(scores, correct).auroc()
}

/// AUPR-success: average precision with correct rows positive, ranked by descending `s`.
/// Thresholds step once per tie group:
/// AP = Σ_g (R_g − R_{g−1})·P_g, with precision P_g and recall R_g after accepting the whole
/// group g. Chance level = accuracy. `None` without both classes.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn aupr_success(scores: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(scores, correct).average_precision(false)
}

/// AUPR-error: average precision with the wrong rows positive, ranked by `-s` (same tie-group
/// rule as [`aupr_success`]). Chance level = ε. `None` without both classes.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn aupr_error(scores: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(scores, correct).average_precision(true)
}

/// FPR@95TPR: the share of wrong rows accepted when 95 % of the correct rows are accepted.
///
/// Exact convention: accept whole tie groups in descending score order and stop at the first
/// prefix whose TPR = (#correct accepted)/(#correct) is ≥ 0.95 (tested in exact integers:
/// `20·tp ≥ 19·P`); the result is (#wrong accepted)/(#wrong) for that prefix. Equivalently: the
/// threshold is the largest `t` with TPR({s ≥ t}) ≥ 0.95, and FPR is taken at `{s ≥ t}`, so a
/// tie group straddling the 95 % point is accepted entirely. `None` without both classes.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn fpr_at_95tpr(scores: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(scores, correct).fpr_at_95tpr()
}

/// ROC points `(fpr, tpr)`: `(0, 0)` then one point after each tie group in descending score
/// order (the last is `(1, 1)`). `None` without both classes.
///
/// # Panics
/// If `scores.len() != correct.len()`.
pub fn roc_curve(scores: &[f32], correct: &[bool]) -> Option<Vec<(f64, f64)>> {
    Groups::new(scores, correct).roc_curve()
}

/// One score's rows grouped and sorted once, for several metrics of the same rows: each metric
/// function above sorts on its own, which at a million rows costs tens of milliseconds a call.
#[derive(Debug, Clone)]
pub struct Ranked(Groups);

impl Ranked {
    /// # Panics
    /// If `scores.len() != correct.len()`.
    pub fn new(scores: &[f32], correct: &[bool]) -> Self {
        Ranked(Groups::new(scores, correct))
    }

    /// As [`auroc`].
    pub fn auroc(&self) -> Option<f64> {
        self.0.auroc()
    }

    /// As [`aurc`](super::aurc).
    pub fn aurc(&self) -> Option<f64> {
        self.0.aurc()
    }

    /// As [`risk_coverage_curve`](super::risk_coverage_curve).
    pub fn risk_coverage_curve(&self) -> Vec<(f64, f64)> {
        self.0.risk_coverage_curve()
    }
}

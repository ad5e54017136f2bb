//! Metrics for "is this prediction correct?" scores (pure functions of scores and outcomes:
//! training selects with them, reports print them), the reliability diagram,
//! the paired bootstrap, and the dashboard's live threshold table.
//!
//! # Conventions (binding for every function here)
//!
//! * `s` is a score, **higher = more likely correct**; `correct[i]` is the positive class.
//!   `N` is the number of rows, `ε` the error rate.
//! * **Ties.** Rows with equal scores form one *tie group*. Every metric is a function of the
//!   sequence of tie groups (score, #correct, #wrong) taken in descending score order, and
//!   every floating-point sum runs over that sequence, so results are **bit-for-bit
//!   independent of row order**. `-0.0` and `+0.0` are the same score.
//! * **NaN scores are not rejected: they are treated as the lowest possible score**, below
//!   `-∞`, and all NaN rows form one tie group at the bottom (for AUPR-error, which ranks by
//!   `-s`, they are therefore ranked first). For ECE / Brier a NaN probability counts as 0.
//!   Callers that prefer to refuse NaN can call [`validate_scores`] first.
//! * **Undefined values are `None`**, never NaN and never a panic: AUROC, both APs, FPR@95TPR
//!   and the ROC curve need at least one correct *and* one wrong row; AURC, E-AURC, AUGRC,
//!   ECE and Brier need `N > 0`.
//! * Length mismatch between `scores` and `correct` is a programming error and **panics**.
//! * All accumulation is in `f64`; pair and rank counts are exact integers.
//!
//! One file per family: `groups` (the tie groups every metric is computed from), `ranking`,
//! `risk_coverage`, `calibration`, `bootstrap`, `threshold_table`.

mod bootstrap;
mod calibration;
mod groups;
mod ranking;
mod risk_coverage;
#[cfg(test)]
mod tests;
mod threshold_table;

pub use bootstrap::*;
pub use calibration::*;
pub use ranking::*;
pub use risk_coverage::*;
pub use threshold_table::*;

use serde::{Deserialize, Serialize};

use groups::Groups;

/// Number of equal-width bins of the ECE and the reliability diagram.
pub const ECE_BINS: usize = 15;

/// Default number of bootstrap resamples (at least this many give stable 95 % intervals).
pub const DEFAULT_BOOTSTRAP_RESAMPLES: usize = 1000;

/// Input problems that the metric functions themselves tolerate (see the module docs) but that
/// a caller may want to refuse up front.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// `scores` and `correct` have different lengths.
    #[error("{scores} scores but {labels} correctness labels")]
    LengthMismatch { scores: usize, labels: usize },
    /// A score is NaN (the metrics would rank it below every other score).
    #[error("score at row {index} is NaN")]
    NanScore { index: usize },
}

/// Strict check of inputs: equal lengths and no NaN score. The metric functions do not need
/// this (they panic on a length mismatch and rank NaN lowest); use it to surface bad scores.
pub fn validate_scores(scores: &[f32], labels: usize) -> Result<(), MetricsError> {
    if scores.len() != labels {
        return Err(MetricsError::LengthMismatch {
            scores: scores.len(),
            labels,
        });
    }
    match scores.iter().position(|s| s.is_nan()) {
        Some(index) => Err(MetricsError::NanScore { index }),
        None => Ok(()),
    }
}

/// All metrics of one score on one set of rows (one table row of a report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Number of rows.
    pub n: usize,
    pub auroc: Option<f64>,
    pub aupr_success: Option<f64>,
    /// Chance level of AUPR-success: the accuracy (`None` if N = 0).
    pub aupr_success_chance: Option<f64>,
    pub aupr_error: Option<f64>,
    /// Chance level of AUPR-error: the error rate ε (`None` if N = 0).
    pub aupr_error_chance: Option<f64>,
    pub fpr_at_95tpr: Option<f64>,
    pub aurc: Option<f64>,
    /// AURC − AURC of the oracle order of the same rows (see [`eaurc`]).
    pub eaurc: Option<f64>,
    pub augrc: Option<f64>,
    /// Selective risk of the top 80 % of rows (see [`risk_at_coverage`]).
    #[serde(default)]
    pub risk_at_80: Option<f64>,
    /// Selective risk of the top 90 % of rows.
    #[serde(default)]
    pub risk_at_90: Option<f64>,
    /// Selective risk of the top 95 % of rows.
    #[serde(default)]
    pub risk_at_95: Option<f64>,
    /// Only when the score is a probability of being correct.
    pub ece: Option<f64>,
    /// Only when the score is a probability of being correct.
    pub brier: Option<f64>,
}

impl MetricRow {
    /// Computes every metric from one sort. `is_probability` enables ECE and Brier (the score
    /// must then be P(correct)); otherwise they are `None`.
    ///
    /// # Panics
    /// If `scores.len() != correct.len()`.
    pub fn compute(scores: &[f32], correct: &[bool], is_probability: bool) -> MetricRow {
        let g = Groups::new(scores, correct);
        MetricRow {
            n: scores.len(),
            auroc: g.auroc(),
            aupr_success: g.average_precision(false),
            aupr_success_chance: g.accuracy(),
            aupr_error: g.average_precision(true),
            aupr_error_chance: g.error_rate(),
            fpr_at_95tpr: g.fpr_at_95tpr(),
            aurc: g.aurc(),
            eaurc: g.eaurc(),
            augrc: g.augrc(),
            risk_at_80: g.risk_at_coverage(0.80),
            risk_at_90: g.risk_at_coverage(0.90),
            risk_at_95: g.risk_at_coverage(0.95),
            ece: if is_probability { g.ece() } else { None },
            brier: if is_probability { g.brier() } else { None },
        }
    }
}

//! Calibration of a probability of being correct: ECE, Brier and the reliability diagram.

use serde::{Deserialize, Serialize};

use super::groups::*;
use super::*;

/// One bin of the reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge, `index/15`.
    pub lower: f64,
    /// Upper edge, `(index+1)/15` (excluded, except for the last bin which includes 1).
    pub upper: f64,
    /// Rows in the bin.
    pub count: usize,
    /// Mean predicted P(correct) in the bin; `None` if empty.
    pub mean_confidence: Option<f64>,
    /// Share of correct rows in the bin; `None` if empty.
    pub accuracy: Option<f64>,
}

/// Expected calibration error of P(correct) with 15 equal-width bins on [0, 1]:
/// bin = `min(floor(15·p), 14)` (bin i covers [i/15, (i+1)/15), the last bin is closed),
/// ECE = Σ_b (n_b/N)·|accuracy_b − mean confidence_b|. Probabilities are clamped to [0, 1] and a
/// NaN counts as 0. `None` if N = 0.
///
/// # Panics
/// If `probabilities.len() != correct.len()`.
pub fn ece(probabilities: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(probabilities, correct).ece()
}

/// Brier score of P(correct): mean of (p − c)², c = 1 for correct rows. Same clamping as
/// [`ece`]. `None` if N = 0.
///
/// # Panics
/// If `probabilities.len() != correct.len()`.
pub fn brier(probabilities: &[f32], correct: &[bool]) -> Option<f64> {
    Groups::new(probabilities, correct).brier()
}

/// The 15 reliability-diagram bins used by [`ece`] (always 15 entries, empty ones included).
///
/// # Panics
/// If `probabilities.len() != correct.len()`.
pub fn reliability_diagram(probabilities: &[f32], correct: &[bool]) -> Vec<ReliabilityBin> {
    let bins = Groups::new(probabilities, correct).calibration_bins();
    bins.iter()
        .enumerate()
        .map(|(i, &(count, conf, pos))| ReliabilityBin {
            lower: i as f64 / ECE_BINS as f64,
            upper: (i + 1) as f64 / ECE_BINS as f64,
            count: count as usize,
            mean_confidence: (count > 0).then(|| conf / count as f64),
            accuracy: (count > 0).then(|| pos as f64 / count as f64),
        })
        .collect()
}

//! Metrics for "is this prediction correct?" scores, the reliability diagram,
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

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::support::hash::splitmix64;
use crate::support::order::score_key;

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

// ---------------------------------------------------------------------------------------------
// Ordering and tie groups
// ---------------------------------------------------------------------------------------------

/// Inverse of [`score_key`] (canonical: NaN for key 0, `+0.0` for zero).
fn key_score(key: u32) -> f32 {
    if key == 0 {
        f32::NAN
    } else if key & 0x8000_0000 != 0 {
        f32::from_bits(key & 0x7FFF_FFFF)
    } else {
        f32::from_bits(!key)
    }
}

fn assert_same_len(scores: usize, labels: usize) {
    assert_eq!(
        scores, labels,
        "metrics: {scores} scores but {labels} correctness labels"
    );
}

/// One tie group: all rows with the same score.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Group {
    score: f32,
    pos: u64,
    neg: u64,
}

impl Group {
    fn n(&self) -> u64 {
        self.pos + self.neg
    }
}

/// Tie groups in descending score order, with class totals. Never contains an empty group.
#[derive(Debug, Clone, Default)]
struct Groups {
    groups: Vec<Group>,
    pos: u64,
    neg: u64,
}

impl Groups {
    fn new(scores: &[f32], correct: &[bool]) -> Self {
        assert_same_len(scores.len(), correct.len());
        let mut rows: Vec<(u32, bool)> = scores
            .iter()
            .zip(correct)
            .map(|(&s, &c)| (score_key(s), c))
            .collect();
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let mut out = Groups::default();
        let mut i = 0;
        while i < rows.len() {
            let key = rows[i].0;
            let mut g = Group {
                score: key_score(key),
                pos: 0,
                neg: 0,
            };
            while i < rows.len() && rows[i].0 == key {
                if rows[i].1 {
                    g.pos += 1;
                } else {
                    g.neg += 1;
                }
                i += 1;
            }
            out.push(g);
        }
        out
    }

    fn push(&mut self, g: Group) {
        if g.n() > 0 {
            self.pos += g.pos;
            self.neg += g.neg;
            self.groups.push(g);
        }
    }

    fn n(&self) -> u64 {
        self.pos + self.neg
    }

    fn both_classes(&self) -> bool {
        self.pos > 0 && self.neg > 0
    }

    fn auroc(&self) -> Option<f64> {
        if !self.both_classes() {
            return None;
        }
        // 2·(#pairs correct above wrong) + (#pairs tied), exactly.
        let mut neg_below = self.neg as u128;
        let mut twice = 0u128;
        for g in &self.groups {
            neg_below -= g.neg as u128;
            twice += 2 * g.pos as u128 * neg_below + g.pos as u128 * g.neg as u128;
        }
        Some(twice as f64 / (2.0 * self.pos as f64 * self.neg as f64))
    }

    /// Average precision over tie groups. `errors_positive` ranks by `-s` (ascending `s`) with
    /// the wrong rows as positives.
    fn average_precision(&self, errors_positive: bool) -> Option<f64> {
        if !self.both_classes() {
            return None;
        }
        let (mut tp, mut fp, mut sum) = (0u64, 0u64, 0.0f64);
        let mut step = |pos: u64, neg: u64| {
            tp += pos;
            fp += neg;
            if pos > 0 {
                sum += pos as f64 * (tp as f64 / (tp + fp) as f64);
            }
        };
        let total_pos = if errors_positive {
            self.groups.iter().rev().for_each(|g| step(g.neg, g.pos));
            self.neg
        } else {
            self.groups.iter().for_each(|g| step(g.pos, g.neg));
            self.pos
        };
        Some(sum / total_pos as f64)
    }

    fn fpr_at_95tpr(&self) -> Option<f64> {
        if !self.both_classes() {
            return None;
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        for g in &self.groups {
            tp += g.pos;
            fp += g.neg;
            // TPR ≥ 0.95  ⇔  20·tp ≥ 19·P, in exact integers.
            if 20 * tp as u128 >= 19 * self.pos as u128 {
                return Some(fp as f64 / self.neg as f64);
            }
        }
        unreachable!("tp reaches the number of positives after the last group")
    }

    fn roc_curve(&self) -> Option<Vec<(f64, f64)>> {
        if !self.both_classes() {
            return None;
        }
        let mut pts = Vec::with_capacity(self.groups.len() + 1);
        pts.push((0.0, 0.0));
        let (mut tp, mut fp) = (0u64, 0u64);
        for g in &self.groups {
            tp += g.pos;
            fp += g.neg;
            pts.push((fp as f64 / self.neg as f64, tp as f64 / self.pos as f64));
        }
        Some(pts)
    }

    fn error_rate(&self) -> Option<f64> {
        (self.n() > 0).then(|| self.neg as f64 / self.n() as f64)
    }

    fn accuracy(&self) -> Option<f64> {
        (self.n() > 0).then(|| self.pos as f64 / self.n() as f64)
    }

    /// Mean over k = 1..N of the expected selective risk, errors interpolated within groups.
    fn aurc(&self) -> Option<f64> {
        let n_total = self.n();
        if n_total == 0 {
            return None;
        }
        let (mut k0, mut e0, mut sum) = (0u64, 0u64, 0.0f64);
        for g in &self.groups {
            let n = g.n();
            for j in 1..=n {
                // (e0 + j·neg/n) / (k0 + j), as one quotient of integers.
                let num = (e0 as u128 * n as u128 + j as u128 * g.neg as u128) as f64;
                let den = (n as u128 * (k0 + j) as u128) as f64;
                sum += num / den;
            }
            k0 += n;
            e0 += g.neg;
        }
        Some(sum / n_total as f64)
    }

    fn augrc(&self) -> Option<f64> {
        let n_total = self.n();
        if n_total == 0 {
            return None;
        }
        // Σ_k E(k) with E interpolated inside each group = Σ_g [n_g·e0 + neg_g·(n_g+1)/2].
        let mut e0 = 0u128;
        let mut twice = 0u128;
        for g in &self.groups {
            twice += 2 * g.n() as u128 * e0 + g.neg as u128 * (g.n() as u128 + 1);
            e0 += g.neg as u128;
        }
        let n = n_total as f64;
        Some(twice as f64 / (2.0 * n * n))
    }

    /// The same rows in the oracle order: every correct row above every wrong row.
    fn oracle(&self) -> Groups {
        let mut out = Groups::default();
        out.push(Group {
            score: 1.0,
            pos: self.pos,
            neg: 0,
        });
        out.push(Group {
            score: 0.0,
            pos: 0,
            neg: self.neg,
        });
        out
    }

    /// AURC − AURC of the oracle order of the same rows. Both sums run over k = 1..N with each
    /// term the same integer quotient, so a perfect ranking gives exactly 0.
    fn eaurc(&self) -> Option<f64> {
        Some(self.aurc()? - self.oracle().aurc()?)
    }

    /// Expected selective risk of the top k = ⌈coverage·N⌉ rows (errors interpolated inside
    /// the tie group that straddles k, as in [`Groups::aurc`]).
    fn risk_at_coverage(&self, coverage: f64) -> Option<f64> {
        let k = accepted_at_coverage(coverage, self.n())?;
        let (mut k0, mut e0) = (0u64, 0u64);
        for g in &self.groups {
            let n = g.n();
            if k <= k0 + n {
                let j = k - k0;
                let num = (e0 as u128 * n as u128 + j as u128 * g.neg as u128) as f64;
                let den = (n as u128 * k as u128) as f64;
                return Some(num / den);
            }
            k0 += n;
            e0 += g.neg;
        }
        unreachable!("k ≤ N lies inside some group")
    }

    fn risk_coverage_curve(&self) -> Vec<(f64, f64)> {
        let n = self.n() as f64;
        let (mut k, mut e) = (0u64, 0u64);
        self.groups
            .iter()
            .map(|g| {
                k += g.n();
                e += g.neg;
                (k as f64 / n, e as f64 / k as f64)
            })
            .collect()
    }

    /// Per-bin (count, Σ confidence, #correct), groups visited in descending order.
    fn calibration_bins(&self) -> [(u64, f64, u64); ECE_BINS] {
        let mut bins = [(0u64, 0.0f64, 0u64); ECE_BINS];
        for g in &self.groups {
            let p = clamp_probability(g.score);
            let b = &mut bins[probability_bin(p)];
            b.0 += g.n();
            b.1 += g.n() as f64 * p;
            b.2 += g.pos;
        }
        bins
    }

    fn ece(&self) -> Option<f64> {
        if self.n() == 0 {
            return None;
        }
        // Σ_b (n_b/N)·|acc_b − conf_b| = Σ_b |#correct_b − Σconf_b| / N.
        let sum: f64 = self
            .calibration_bins()
            .iter()
            .map(|&(_, conf, pos)| (pos as f64 - conf).abs())
            .sum();
        Some(sum / self.n() as f64)
    }

    fn brier(&self) -> Option<f64> {
        if self.n() == 0 {
            return None;
        }
        let sum: f64 = self
            .groups
            .iter()
            .map(|g| {
                let p = clamp_probability(g.score);
                g.pos as f64 * (1.0 - p) * (1.0 - p) + g.neg as f64 * p * p
            })
            .sum();
        Some(sum / self.n() as f64)
    }
}

/// Probability used by ECE / Brier: clamped to [0, 1], NaN counts as 0.
fn clamp_probability(p: f32) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        (p as f64).clamp(0.0, 1.0)
    }
}

/// Bin of a clamped probability: `min(floor(15·p), 14)`.
fn probability_bin(p: f64) -> usize {
    ((p * ECE_BINS as f64).floor() as usize).min(ECE_BINS - 1)
}

/// k = ⌈coverage·N⌉ for coverage in (0, 1]; `None` outside that range, for NaN or N = 0.
/// A product within 1e-9 of an integer counts as that integer, so that e.g. 0.9·10, which
/// rounds to a hair above 9 in some floating-point products, still gives k = 9.
fn accepted_at_coverage(coverage: f64, n: u64) -> Option<u64> {
    if n == 0 || !(coverage > 0.0 && coverage <= 1.0) {
        return None;
    }
    let x = coverage * n as f64;
    let nearest = x.round();
    let k = if (x - nearest).abs() <= 1e-9 * nearest.max(1.0) {
        nearest
    } else {
        x.ceil()
    };
    Some((k as u64).clamp(1, n))
}

// ---------------------------------------------------------------------------------------------
// Ranking metrics
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Risk–coverage
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Calibration
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The bundle
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Paired bootstrap
// ---------------------------------------------------------------------------------------------

/// Bootstrap of one difference metric(a) − metric(b).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// metric(a) − metric(b) on the original rows (`None` if undefined there).
    pub estimate: Option<f64>,
    /// 2.5 % and 97.5 % percentiles of the resampled differences (linear interpolation between
    /// order statistics at position q·(B_used − 1)); `None` if no resample was usable.
    pub interval: Option<(f64, f64)>,
    /// Resamples that entered the interval.
    pub resamples_used: usize,
    /// Resamples skipped because the metric was undefined on them.
    pub resamples_skipped: usize,
}

/// Paired bootstrap of two scores on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    pub resamples: usize,
    pub seed: u64,
    /// What was resampled: `None` = rows (every row independent); `Some(G)` = G clusters of
    /// rows (e.g. source images), each drawn with all its rows.
    #[serde(default)]
    pub groups: Option<usize>,
    /// AUROC(a) − AUROC(b): positive means `a` ranks better. Resamples with only one class
    /// are skipped.
    pub auroc: PairedDifference,
    /// AURC(a) − AURC(b): negative means `a` is better. Every resample is usable (N > 0).
    pub aurc: PairedDifference,
}

/// Scores pre-sorted once for the bootstrap: row order, and where each tie group starts.
struct Presorted {
    order: Vec<u32>,
    /// Start of each group in `order`, plus `order.len()` at the end.
    bounds: Vec<usize>,
    scores: Vec<f32>,
}

impl Presorted {
    fn new(scores: &[f32]) -> Self {
        let mut rows: Vec<(u32, u32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (score_key(s), i as u32))
            .collect();
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let mut bounds = Vec::new();
        let mut group_scores = Vec::new();
        for (pos, &(key, _)) in rows.iter().enumerate() {
            if pos == 0 || rows[pos - 1].0 != key {
                bounds.push(pos);
                group_scores.push(key_score(key));
            }
        }
        bounds.push(rows.len());
        Presorted {
            order: rows.into_iter().map(|(_, i)| i).collect(),
            bounds,
            scores: group_scores,
        }
    }

    /// Tie groups of the rows repeated `weights[i]` times.
    fn groups(&self, correct: &[bool], weights: &[u32]) -> Groups {
        let mut out = Groups::default();
        for (w, &score) in self.bounds.windows(2).zip(&self.scores) {
            let mut g = Group {
                score,
                pos: 0,
                neg: 0,
            };
            for &i in &self.order[w[0]..w[1]] {
                let i = i as usize;
                if correct[i] {
                    g.pos += weights[i] as u64;
                } else {
                    g.neg += weights[i] as u64;
                }
            }
            out.push(g);
        }
        out
    }
}

/// Percentile by linear interpolation between order statistics (position q·(n−1)).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn summarize(estimate: Option<f64>, diffs: impl Iterator<Item = Option<f64>>) -> PairedDifference {
    let mut used = Vec::new();
    let mut skipped = 0;
    for d in diffs {
        match d {
            Some(d) => used.push(d),
            None => skipped += 1,
        }
    }
    used.sort_unstable_by(f64::total_cmp);
    PairedDifference {
        estimate,
        interval: (!used.is_empty()).then(|| (percentile(&used, 0.025), percentile(&used, 0.975))),
        resamples_used: used.len(),
        resamples_skipped: skipped,
    }
}

/// Paired bootstrap of AUROC(a) − AUROC(b) and AURC(a) − AURC(b) over rows (`b` is usually
/// MSP): [`paired_bootstrap_grouped`] with every row its own group.
///
/// # Panics
/// If the three slices differ in length.
pub fn paired_bootstrap(
    a: &[f32],
    b: &[f32],
    correct: &[bool],
    resamples: usize,
    seed: u64,
) -> PairedBootstrap {
    paired_bootstrap_grouped(a, b, correct, None, resamples, seed)
}

/// (order key of score a, order key of score b, correct).
type CanonRow = (u32, u32, bool);

/// Rows in a canonical order with the canonical index of each row's group.
struct Canonical {
    a: Vec<f32>,
    b: Vec<f32>,
    correct: Vec<bool>,
    /// Canonical group of each canonical row; groups are numbered 0..groups.
    group_of: Vec<u32>,
    groups: usize,
}

impl Canonical {
    /// Rows sorted by (score a, score b, correctness); without `groups`, each row is its own
    /// group, numbered in that order. With `groups`, clusters are ordered by their content
    /// (the sorted list of their rows), so neither the row order nor the group labels change
    /// the result; clusters with identical content are interchangeable.
    fn new(a: &[f32], b: &[f32], correct: &[bool], groups: Option<&[u32]>) -> Self {
        let n = correct.len();
        let row = |i: usize| (score_key(a[i]), score_key(b[i]), correct[i]);
        match groups {
            None => {
                let mut rows: Vec<CanonRow> = (0..n).map(row).collect();
                rows.sort_unstable();
                Canonical::from_rows(&rows, (0..n as u32).collect(), n)
            }
            Some(ids) => {
                // Rows gathered by label with each cluster's rows sorted, then clusters
                // ordered by content.
                let mut labelled: Vec<(u32, CanonRow)> = (0..n).map(|i| (ids[i], row(i))).collect();
                labelled.sort_unstable();
                let mut clusters: Vec<&[(u32, CanonRow)]> =
                    labelled.chunk_by(|x, y| x.0 == y.0).collect();
                clusters.sort_unstable_by(|x, y| x.iter().map(|r| r.1).cmp(y.iter().map(|r| r.1)));
                let mut rows = Vec::with_capacity(n);
                let mut group_of = Vec::with_capacity(n);
                for (g, cluster) in clusters.iter().enumerate() {
                    for r in cluster.iter() {
                        rows.push(r.1);
                        group_of.push(g as u32);
                    }
                }
                Canonical::from_rows(&rows, group_of, clusters.len())
            }
        }
    }

    fn from_rows(rows: &[CanonRow], group_of: Vec<u32>, groups: usize) -> Self {
        Canonical {
            a: rows.iter().map(|r| key_score(r.0)).collect(),
            b: rows.iter().map(|r| key_score(r.1)).collect(),
            correct: rows.iter().map(|r| r.2).collect(),
            group_of,
            groups,
        }
    }
}

/// Paired bootstrap of AUROC(a) − AUROC(b) and AURC(a) − AURC(b) (`b` is usually MSP), with
/// an optional cluster structure.
///
/// * `groups = None`: each resample draws N rows with replacement (row bootstrap).
/// * `groups = Some(ids)`: `ids[i]` names the cluster of row i (e.g. the source image when a
///   source appears several times under repeated corruption draws). Each resample draws G
///   clusters with replacement out of the G distinct ids, and every row of a drawn cluster
///   enters with the cluster's multiplicity (cluster bootstrap; Davison & Hinkley, *Bootstrap
///   Methods and their Application*, 1997, §3.8). Rows of one source are correlated, so
///   resampling them independently would give intervals that are too narrow.
///
/// Each resample uses its own `StdRng::seed_from_u64(mix(seed, resample index))`, so the result
/// does not depend on the number of threads (resamples run in parallel with rayon). Rows and
/// clusters are first put in a canonical order (rows by score a, score b, correctness;
/// clusters by their sorted rows), so the result depends neither on row order nor on the
/// values of the cluster labels. Resampled rows keep their ties (a duplicated row ties with
/// itself). With one row per cluster the result equals the row bootstrap bit for bit
/// (apart from the `groups` field).
///
/// # Panics
/// If the slices (including `groups`) differ in length.
pub fn paired_bootstrap_grouped(
    a: &[f32],
    b: &[f32],
    correct: &[bool],
    groups: Option<&[u32]>,
    resamples: usize,
    seed: u64,
) -> PairedBootstrap {
    assert_same_len(a.len(), correct.len());
    assert_same_len(b.len(), correct.len());
    if let Some(ids) = groups {
        assert_eq!(
            ids.len(),
            correct.len(),
            "metrics: {} group ids but {} rows",
            ids.len(),
            correct.len()
        );
    }
    let n = correct.len();
    let canon = Canonical::new(a, b, correct, groups);
    let n_groups = canon.groups;

    let sorted_a = Presorted::new(&canon.a);
    let sorted_b = Presorted::new(&canon.b);
    let ones = vec![1u32; n];
    let c_c = &canon.correct;
    let (ga, gb) = (sorted_a.groups(c_c, &ones), sorted_b.groups(c_c, &ones));
    let diff = |x: Option<f64>, y: Option<f64>| Some(x? - y?);
    let auroc_estimate = diff(ga.auroc(), gb.auroc());
    let aurc_estimate = diff(ga.aurc(), gb.aurc());

    let draws: Vec<(Option<f64>, Option<f64>)> = if n == 0 {
        vec![(None, None); resamples]
    } else {
        (0..resamples)
            .into_par_iter()
            .map(|r| {
                let mut rng = StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(r as u64)));
                let mut drawn = vec![0u32; n_groups];
                for _ in 0..n_groups {
                    drawn[rng.random_range(0..n_groups)] += 1;
                }
                let weights: Vec<u32> = canon.group_of.iter().map(|&g| drawn[g as usize]).collect();
                let ga = sorted_a.groups(c_c, &weights);
                let gb = sorted_b.groups(c_c, &weights);
                (diff(ga.auroc(), gb.auroc()), diff(ga.aurc(), gb.aurc()))
            })
            .collect()
    };

    PairedBootstrap {
        resamples,
        seed,
        groups: groups.map(|_| n_groups),
        auroc: summarize(auroc_estimate, draws.iter().map(|d| d.0)),
        aurc: summarize(aurc_estimate, draws.iter().map(|d| d.1)),
    }
}

// ---------------------------------------------------------------------------------------------
// Live threshold table
// ---------------------------------------------------------------------------------------------

/// Counts of rows accepted by one threshold `t` (accepted = `{s ≥ t}`).
///
/// Unlabelled rows (`correct = None`) count in `accepted`, `rejected` and `coverage`, but in
/// none of the correctness counts or the trusted accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdStats {
    pub threshold: f32,
    /// All rows, labelled or not.
    pub total: usize,
    /// Rows with `s ≥ t` (labelled or not).
    pub accepted: usize,
    /// `total − accepted`.
    pub rejected: usize,
    /// accepted / total; `None` if the table is empty.
    pub coverage: Option<f64>,
    /// Accepted rows whose prediction is correct.
    pub accepted_right: usize,
    /// Accepted rows whose prediction is wrong.
    pub accepted_wrong: usize,
    /// Accepted rows without a label.
    pub accepted_unlabelled: usize,
    /// Rejected rows whose prediction is correct.
    pub rejected_right: usize,
    /// Rejected rows whose prediction is wrong.
    pub rejected_wrong: usize,
    /// accepted_right / (accepted_right + accepted_wrong); `None` if no labelled row is accepted.
    pub trusted_accuracy: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    rows: usize,
    right: usize,
    wrong: usize,
}

/// Sorted scores with prefix counts, so each threshold query is one binary search.
///
/// Scores follow the module's ordering (NaN below −∞, ±0 equal); a threshold `t` is compared
/// with the same ordering, so `at(f32::NEG_INFINITY)` accepts every non-NaN row and
/// `at(f32::NAN)` accepts every row.
#[derive(Debug, Clone, Default)]
pub struct ThresholdTable {
    /// Distinct score keys, descending.
    keys: Vec<u32>,
    /// Distinct scores, descending.
    scores: Vec<f32>,
    /// `cum[g]` = counts of the rows in groups `0..g`; `cum.len() == keys.len() + 1`.
    cum: Vec<Counts>,
}

impl ThresholdTable {
    /// Builds the table (one sort, O(N log N)).
    ///
    /// # Panics
    /// If `scores.len() != correct.len()`.
    pub fn new(scores: &[f32], correct: &[Option<bool>]) -> Self {
        assert_same_len(scores.len(), correct.len());
        scores
            .iter()
            .copied()
            .zip(correct.iter().copied())
            .collect()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.total().rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct scores in descending order (the places where the statistics change).
    pub fn distinct_scores(&self) -> &[f32] {
        &self.scores
    }

    fn total(&self) -> Counts {
        self.cum.last().copied().unwrap_or_default()
    }

    /// Statistics of accepted = `{s ≥ t}`, in O(log N).
    pub fn at(&self, t: f32) -> ThresholdStats {
        let key = score_key(t);
        let g = self.keys.partition_point(|&k| k >= key);
        let acc = self.cum.get(g).copied().unwrap_or_default();
        let all = self.total();
        let labelled = acc.right + acc.wrong;
        ThresholdStats {
            threshold: t,
            total: all.rows,
            accepted: acc.rows,
            rejected: all.rows - acc.rows,
            coverage: (all.rows > 0).then(|| acc.rows as f64 / all.rows as f64),
            accepted_right: acc.right,
            accepted_wrong: acc.wrong,
            accepted_unlabelled: acc.rows - labelled,
            rejected_right: all.right - acc.right,
            rejected_wrong: all.wrong - acc.wrong,
            trusted_accuracy: (labelled > 0).then(|| acc.right as f64 / labelled as f64),
        }
    }

    /// `(coverage, selective risk)` at the end of every tie group, descending score:
    /// coverage counts all rows, risk = accepted wrong / accepted labelled. Groups before the
    /// first accepted labelled row (risk undefined) give no point.
    pub fn coverage_curve(&self) -> Vec<(f64, f64)> {
        let n = self.len() as f64;
        self.cum
            .iter()
            .skip(1)
            .filter(|c| c.right + c.wrong > 0)
            .map(|c| {
                (
                    c.rows as f64 / n,
                    c.wrong as f64 / (c.right + c.wrong) as f64,
                )
            })
            .collect()
    }
}

impl FromIterator<(f32, Option<bool>)> for ThresholdTable {
    fn from_iter<I: IntoIterator<Item = (f32, Option<bool>)>>(rows: I) -> Self {
        let mut rows: Vec<(u32, Option<bool>)> =
            rows.into_iter().map(|(s, c)| (score_key(s), c)).collect();
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let mut table = ThresholdTable {
            cum: vec![Counts::default()],
            ..Default::default()
        };
        let mut run = Counts::default();
        for (i, &(key, c)) in rows.iter().enumerate() {
            run.rows += 1;
            match c {
                Some(true) => run.right += 1,
                Some(false) => run.wrong += 1,
                None => {}
            }
            if rows.get(i + 1).is_none_or(|next| next.0 != key) {
                table.keys.push(key);
                table.scores.push(key_score(key));
                table.cum.push(run);
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn assert_close(got: Option<f64>, want: f64) {
        let got = got.expect("metric should be defined");
        assert!(close(got, want, 1e-12), "got {got}, want {want}");
    }

    fn bools(v: &[u8]) -> Vec<bool> {
        v.iter().map(|&x| x == 1).collect()
    }

    #[test]
    fn auroc_with_ties() {
        // Correct {0.9, 0.8}, wrong {0.8, 0.1}: pairs (0.9,0.8) win, (0.9,0.1) win,
        // (0.8,0.8) tie = ½, (0.8,0.1) win → 3.5 / 4 = 0.875.
        let s = [0.9, 0.8, 0.8, 0.1];
        let c = bools(&[1, 1, 0, 0]);
        assert_close(auroc(&s, &c), 0.875);
    }

    // Five-row example used below. Groups in descending order:
    //   g1 s=0.9: 1 correct;  g2 s=0.7: 2 correct + 1 wrong;  g3 s=0.2: 1 wrong.
    // N = 5, P = 3 correct, 2 wrong, ε = 0.4.
    const S5: [f32; 5] = [0.7, 0.9, 0.2, 0.7, 0.7];
    const C5: [u8; 5] = [1, 1, 0, 0, 1];

    #[test]
    fn five_row_ranking_metrics() {
        let c = bools(&C5);
        // AUROC: g1's correct beats 2 wrong (2); g2's 2 correct beat g3's wrong (2);
        // g2 ties 2·1 pairs → 1. (2 + 2 + 1) / (3·2) = 5/6.
        assert_close(auroc(&S5, &c), 5.0 / 6.0);
        // AP-success: after g1 P=1, ΔR=1/3; after g2 tp=3, fp=1, P=3/4, ΔR=2/3.
        // AP = 1/3 + 2/3·3/4 = 1/3 + 1/2 = 5/6.
        assert_close(aupr_success(&S5, &c), 5.0 / 6.0);
        // AP-error (ascending s, wrong positive): g3: tp=1, fp=0, P=1, ΔR=1/2;
        // g2: tp=2, fp=2, P=1/2, ΔR=1/2; g1 adds no positive. AP = 1/2 + 1/4 = 3/4.
        assert_close(aupr_error(&S5, &c), 0.75);
        // FPR@95TPR: need tp ≥ 0.95·3 = 2.85 → 3 → after g2, fp = 1 of 2 → 0.5.
        assert_close(fpr_at_95tpr(&S5, &c), 0.5);
        // ROC: (0,0), after g1 (0,1/3), after g2 (1/2,1), after g3 (1,1).
        assert_eq!(
            roc_curve(&S5, &c).unwrap(),
            vec![(0.0, 0.0), (0.0, 1.0 / 3.0), (0.5, 1.0), (1.0, 1.0)]
        );
    }

    #[test]
    fn five_row_risk_coverage() {
        let c = bools(&C5);
        // Expected errors E(k), interpolated inside g2 (1 wrong in 3 rows, 1/3 per row):
        //   k=1: 0; k=2: 1/3; k=3: 2/3; k=4: 1; k=5: 2.
        // risk(k) = E(k)/k: 0, 1/6, 2/9, 1/4, 2/5; sum = (0+30+40+45+72)/180 = 187/180.
        // AURC = 187/900.
        assert_close(aurc(&S5, &c), 187.0 / 900.0);
        // Oracle order of the same rows (3 correct, then 2 wrong): risks 0, 0, 0, 1/4, 2/5 →
        // AURC_oracle = 0.65/5 = 117/900, E-AURC = (187 − 117)/900 = 7/90.
        assert_close(aurc_oracle(&c), 0.13);
        assert_close(eaurc(&S5, &c), 7.0 / 90.0);
        // The large-N limit: AURC*(0.4) = 0.4 + 0.6·ln 0.6 = 0.0935046257 (ln 0.6 =
        // −0.5108256238).
        assert!(close(aurc_optimal(0.4), 0.0935046257, 1e-9));
        // AUGRC = Σ E(k) / N² = (0 + 1/3 + 2/3 + 1 + 2) / 25 = 4/25.
        assert_close(augrc(&S5, &c), 0.16);
        // Curve at group ends: k=1 (0.2, 0), k=4 (0.8, 1/4), k=5 (1, 2/5).
        assert_eq!(
            risk_coverage_curve(&S5, &c),
            vec![(0.2, 0.0), (0.8, 0.25), (1.0, 0.4)]
        );
    }

    #[test]
    fn constant_score_is_chance() {
        // All tied: AUROC ½; E(k) = k·ε → AURC = ε; AUGRC = ε·(N+1)/(2N); AP = chance
        // (one group: precision = accuracy at recall 1). 4 rows, 1 wrong: ε = 1/4.
        let s = [0.3f32; 4];
        let c = bools(&[1, 0, 1, 1]);
        assert_close(auroc(&s, &c), 0.5);
        assert_close(aurc(&s, &c), 0.25);
        assert_close(augrc(&s, &c), 0.25 * 5.0 / 8.0);
        assert_close(aupr_success(&s, &c), 0.75);
        assert_close(aupr_error(&s, &c), 0.25);
        // The only prefix is everything: FPR = 1.
        assert_close(fpr_at_95tpr(&s, &c), 1.0);
    }

    #[test]
    fn fpr_at_95tpr_boundary_and_ties() {
        // 20 correct rows at 0.01..0.20; wrong rows at 0.50, 0.02 (tied with the 19th correct),
        // 0.015 and 0.005. TPR reaches 19/20 = 0.95 exactly in the 0.02 group, where the
        // accepted wrong rows are 0.50 and 0.02: FPR = 2/4.
        let mut s: Vec<f32> = (1..=20).map(|k| k as f32 / 100.0).collect();
        let mut c = vec![true; 20];
        s.extend([0.50, 0.02, 0.015, 0.005]);
        c.extend([false; 4]);
        assert_close(fpr_at_95tpr(&s, &c), 0.5);
        // With the wrong row at 0.02 moved to 0.019 (below the 19th correct, above the 20th),
        // only 0.50 is accepted at TPR 0.95: FPR = 1/4.
        s[21] = 0.019;
        assert_close(fpr_at_95tpr(&s, &c), 0.25);
    }

    #[test]
    fn perfect_and_inverted() {
        // 3 correct above 2 wrong.
        let s = [0.9, 0.8, 0.7, 0.2, 0.1];
        let c = bools(&[1, 1, 1, 0, 0]);
        assert_close(auroc(&s, &c), 1.0);
        assert_close(aupr_success(&s, &c), 1.0);
        assert_close(aupr_error(&s, &c), 1.0);
        assert_close(fpr_at_95tpr(&s, &c), 0.0);
        // risks 0, 0, 0, 1/4, 2/5 → AURC = 0.65/5 = 0.13.
        assert_close(aurc(&s, &c), 0.13);
        // Inverted: AUROC 0; every wrong row is accepted before the correct ones → FPR 1.
        let inv: Vec<f32> = s.iter().map(|x| -x).collect();
        assert_close(auroc(&inv, &c), 0.0);
        assert_close(fpr_at_95tpr(&inv, &c), 1.0);
        // Inverted AURC: risks 1, 1, 2/3, 2/4, 2/5 → (1+1+2/3+1/2+2/5)/5 = (107/30)/5 = 107/150.
        assert_close(aurc(&inv, &c), 107.0 / 150.0);
    }

    #[test]
    fn perfect_ranking_eaurc_is_exactly_zero() {
        // N = 100 000, ε = 0.2, perfect ranking: E-AURC is exactly 0. The exact oracle AURC
        // ε − (1−ε)(H_N − H_{N(1−ε)}) = AURC*(ε) + ε/(2N) + O(1/N²) sits ε/(2N) above the
        // large-N limit.
        let n = 100_000;
        let n_wrong = 20_000;
        let s: Vec<f32> = (0..n).map(|i| -(i as f32)).collect();
        let c: Vec<bool> = (0..n).map(|i| i < n - n_wrong).collect();
        assert_eq!(eaurc(&s, &c), Some(0.0));
        let gap = aurc_oracle(&c).unwrap() - aurc_optimal(0.2);
        assert!(close(gap, 0.2 / (2.0 * n as f64), 1e-8), "{gap}");
        // Also with ties inside each class, in shuffled row order.
        let mut rng = StdRng::seed_from_u64(4);
        let mut rows: Vec<(f32, bool)> = (0..997)
            .map(|i| {
                let right = i % 7 != 0;
                let s = if right {
                    1.0
                } else {
                    rng.random_range(0..5) as f32 / 10.0
                };
                (s, right)
            })
            .collect();
        rows.shuffle(&mut rng);
        let (s, c): (Vec<f32>, Vec<bool>) = rows.into_iter().unzip();
        assert_eq!(eaurc(&s, &c), Some(0.0));
        assert_eq!(aurc(&s, &c), aurc_oracle(&c));
    }

    #[test]
    fn aurc_oracle_matches_brute_force() {
        for (pos, neg) in [
            (0, 0),
            (0, 1),
            (1, 0),
            (5, 0),
            (0, 7),
            (3, 2),
            (1, 1),
            (40, 13),
        ] {
            let mut c = vec![false; neg];
            c.extend(vec![true; pos]);
            c.rotate_left(neg / 2); // order must not matter
            let n = pos + neg;
            let got = aurc_oracle(&c);
            if n == 0 {
                assert_eq!(got, None);
                continue;
            }
            let mut sum = 0.0;
            for k in 1..=n {
                sum += k.saturating_sub(pos) as f64 / k as f64;
            }
            assert_close(got, sum / n as f64);
        }
        // Any score is at least as bad as the oracle.
        let (a, b, c) = random_rows(2000, 21);
        assert!(eaurc(&a, &c).unwrap() > 0.0);
        assert!(eaurc(&b, &c).unwrap() > eaurc(&a, &c).unwrap());
    }

    #[test]
    fn risk_at_coverage_hand_example() {
        let c = bools(&C5);
        // E(k) = 0, 1/3, 2/3, 1, 2 (see five_row_risk_coverage).
        assert_close(risk_at_coverage(&S5, &c, 0.2), 0.0);
        // ⌈0.5·5⌉ = 3: (2/3)/3 = 2/9.
        assert_close(risk_at_coverage(&S5, &c, 0.5), 2.0 / 9.0);
        assert_close(risk_at_coverage(&S5, &c, 0.8), 0.25);
        // ⌈0.61·5⌉ = ⌈3.05⌉ = 4.
        assert_close(risk_at_coverage(&S5, &c, 0.61), 0.25);
        assert_close(risk_at_coverage(&S5, &c, 1.0), 0.4);
        assert_close(risk_at_coverage(&S5, &c, 1e-9), 0.0);
        for bad in [0.0, -0.1, 1.0001, f64::NAN, f64::INFINITY] {
            assert_eq!(risk_at_coverage(&S5, &c, bad), None, "{bad}");
        }
        assert_eq!(risk_at_coverage(&[], &[], 0.9), None);
        // 0.55·100 evaluates to 55.00000000000001 in f64; it still means k = 55, not 56.
        // 55 correct rows then 45 wrong: risk at k = 55 is 0, at 56 it would be 1/56.
        let s: Vec<f32> = (0..100).map(|i| -(i as f32)).collect();
        let c: Vec<bool> = (0..100).map(|i| i < 55).collect();
        assert!(std::hint::black_box(0.55f64) * 100.0 > 55.0);
        assert_eq!(risk_at_coverage(&s, &c, 0.55), Some(0.0));
        assert_close(risk_at_coverage(&s, &c, 0.56), 1.0 / 56.0);
    }

    /// Calls `f` with every permutation of `items` (Heap's algorithm).
    fn for_each_permutation<T: Clone>(items: &mut [T], k: usize, f: &mut impl FnMut(&[T])) {
        if k <= 1 {
            f(items);
            return;
        }
        for i in 0..k {
            for_each_permutation(items, k - 1, f);
            let j = if k % 2 == 0 { i } else { 0 };
            items.swap(j, k - 1);
        }
    }

    #[test]
    fn risk_at_coverage_is_the_mean_over_tie_orders() {
        // Average over every row order consistent with descending scores (each order of every
        // tie group equally often) of errors(top k)/k, against the interpolated value.
        let mut rng = StdRng::seed_from_u64(8);
        for _ in 0..40 {
            let n = rng.random_range(1..=7);
            let s: Vec<f32> = (0..n).map(|_| rng.random_range(0..3) as f32).collect();
            let c: Vec<bool> = (0..n).map(|_| rng.random_bool(0.6)).collect();
            let mut idx: Vec<usize> = (0..n).collect();
            for k in 1..=n {
                let (mut sum, mut count) = (0.0, 0usize);
                for_each_permutation(&mut idx, n, &mut |p: &[usize]| {
                    if p.windows(2).all(|w| s[w[0]] >= s[w[1]]) {
                        sum += p[..k].iter().filter(|&&i| !c[i]).count() as f64 / k as f64;
                        count += 1;
                    }
                });
                let coverage = k as f64 / n as f64;
                let got = risk_at_coverage(&s, &c, coverage).unwrap();
                assert!(close(got, sum / count as f64, 1e-12), "{s:?} {c:?} k={k}");
            }
        }
    }

    #[test]
    fn ece_and_brier_hand_example() {
        // p = [0.95, 0.95, 0.5, 0.1], correct = [1, 0, 1, 0].
        // Bins: 0.95·15 = 14.25 → 14; 0.5·15 = 7.5 → 7; 0.1·15 = 1.5 → 1.
        // bin 14: n=2, conf 0.95, acc 0.5 → 2/4·0.45 = 0.225; bin 7: 1/4·|1 − 0.5| = 0.125;
        // bin 1: 1/4·|0 − 0.1| = 0.025. ECE = 0.375.
        // Brier: (0.05² + 0.95² + 0.5² + 0.1²)/4 = (0.0025 + 0.9025 + 0.25 + 0.01)/4 = 0.29125.
        let p = [0.95, 0.95, 0.5, 0.1];
        let c = bools(&[1, 0, 1, 0]);
        assert!(close(ece(&p, &c).unwrap(), 0.375, 1e-6));
        assert!(close(brier(&p, &c).unwrap(), 0.29125, 1e-6));
        let bins = reliability_diagram(&p, &c);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins[14].count, 2);
        assert!(close(bins[14].mean_confidence.unwrap(), 0.95, 1e-6));
        assert_eq!(bins[14].accuracy, Some(0.5));
        assert_eq!(bins[7].count, 1);
        assert_eq!(bins[7].accuracy, Some(1.0));
        assert_eq!(bins[1].accuracy, Some(0.0));
        assert_eq!(bins[0].count, 0);
        assert_eq!(bins[0].mean_confidence, None);
        assert_eq!(bins[0].accuracy, None);
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 4);
        assert!(close(bins[3].lower, 0.2, 1e-15) && close(bins[3].upper, 4.0 / 15.0, 1e-15));
    }

    #[test]
    fn ece_edges() {
        // p = 1 goes to the closed last bin, p = 0 to bin 0; 1.5 clamps to 1; NaN counts as 0.
        // All four correct: |4 − (1 + 0 + 1 + 0)| / 4 = 0.5; Brier = (0 + 1 + 0 + 1)/4 = 0.5.
        let p = [1.0, 0.0, 1.5, f32::NAN];
        let c = vec![true; 4];
        assert_close(ece(&p, &c), 0.5);
        assert_close(brier(&p, &c), 0.5);
        let bins = reliability_diagram(&p, &c);
        assert_eq!((bins[0].count, bins[14].count), (2, 2));
    }

    #[test]
    fn undefined_cases_are_none() {
        let s = [0.5, 0.2, 0.9];
        let all_right = vec![true; 3];
        let all_wrong = vec![false; 3];
        for c in [&all_right, &all_wrong] {
            assert_eq!(auroc(&s, c), None);
            assert_eq!(aupr_success(&s, c), None);
            assert_eq!(aupr_error(&s, c), None);
            assert_eq!(fpr_at_95tpr(&s, c), None);
            assert_eq!(roc_curve(&s, c), None);
        }
        // Defined without both classes: ε = 0 → AURC = 0 = AURC*(0); ε = 1 → AURC = 1 = AURC*(1).
        assert_eq!(aurc(&s, &all_right), Some(0.0));
        assert_eq!(eaurc(&s, &all_right), Some(0.0));
        assert_eq!(augrc(&s, &all_right), Some(0.0));
        assert_eq!(aurc(&s, &all_wrong), Some(1.0));
        assert_eq!(eaurc(&s, &all_wrong), Some(0.0));
        // AUGRC all wrong: Σ_k k / N² = 6/9.
        assert_close(augrc(&s, &all_wrong), 6.0 / 9.0);

        let row = MetricRow::compute(&[], &[], true);
        assert_eq!(
            row,
            MetricRow {
                n: 0,
                auroc: None,
                aupr_success: None,
                aupr_success_chance: None,
                aupr_error: None,
                aupr_error_chance: None,
                fpr_at_95tpr: None,
                aurc: None,
                eaurc: None,
                augrc: None,
                risk_at_80: None,
                risk_at_90: None,
                risk_at_95: None,
                ece: None,
                brier: None,
            }
        );
        assert!(risk_coverage_curve(&[], &[]).is_empty());
        let t = ThresholdTable::new(&[], &[]);
        let st = t.at(0.5);
        assert_eq!(
            (st.accepted, st.coverage, st.trusted_accuracy),
            (0, None, None)
        );
        assert!(t.coverage_curve().is_empty());
    }

    #[test]
    fn nan_is_lowest() {
        // NaN ranks below −∞: correct at −∞ beats wrong at NaN → AUROC 1.
        assert_eq!(
            auroc(&[f32::NEG_INFINITY, f32::NAN], &[true, false]),
            Some(1.0)
        );
        assert_eq!(auroc(&[f32::NAN, 0.5], &[false, true]), Some(1.0));
        // Two NaNs tie.
        assert_eq!(auroc(&[f32::NAN, f32::NAN], &[false, true]), Some(0.5));
        // ±0 are one score.
        assert_eq!(auroc(&[-0.0, 0.0], &[true, false]), Some(0.5));
        assert_eq!(
            validate_scores(&[0.1, f32::NAN], 2),
            Err(MetricsError::NanScore { index: 1 })
        );
        assert_eq!(
            validate_scores(&[0.1], 2),
            Err(MetricsError::LengthMismatch {
                scores: 1,
                labels: 2
            })
        );
        assert_eq!(validate_scores(&[0.1, 0.2], 2), Ok(()));
    }

    #[test]
    fn metric_row_bundles_everything() {
        let c = bools(&C5);
        let row = MetricRow::compute(&S5, &c, false);
        assert_eq!(row.n, 5);
        assert_eq!(row.auroc, auroc(&S5, &c));
        assert_eq!(row.aupr_success_chance, Some(0.6));
        assert_eq!(row.aupr_error_chance, Some(0.4));
        assert_eq!(row.aurc, aurc(&S5, &c));
        assert_eq!(row.eaurc, eaurc(&S5, &c));
        assert_eq!(row.augrc, augrc(&S5, &c));
        assert_eq!(row.risk_at_80, risk_at_coverage(&S5, &c, 0.8));
        assert_eq!(row.risk_at_90, risk_at_coverage(&S5, &c, 0.9));
        assert_eq!(row.risk_at_95, risk_at_coverage(&S5, &c, 0.95));
        assert_eq!(row.risk_at_80, Some(0.25));
        assert_eq!((row.ece, row.brier), (None, None));
        let row = MetricRow::compute(&S5, &c, true);
        assert_eq!(row.ece, ece(&S5, &c));
        assert_eq!(row.brier, brier(&S5, &c));
    }

    /// Random rows with many ties (scores on a coarse grid), NaN and ±0 included.
    fn random_rows(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        let mut c = Vec::with_capacity(n);
        for _ in 0..n {
            let right = rng.random_bool(0.7);
            let base: f32 = if right { 0.6 } else { 0.4 };
            let noise = (rng.random_range(-20..=20) as f32) / 40.0;
            a.push((base + noise).clamp(0.0, 1.0));
            b.push((rng.random_range(0..30) as f32) / 29.0);
            c.push(right);
        }
        a[0] = f32::NAN;
        a[1] = -0.0;
        a[2] = 0.0;
        (a, b, c)
    }

    #[test]
    fn permutation_invariance() {
        let (a, b, c) = random_rows(3000, 7);
        let row = MetricRow::compute(&a, &c, true);
        let roc = roc_curve(&a, &c);
        let rc = risk_coverage_curve(&a, &c);
        let rel = reliability_diagram(&a, &c);
        let boot = paired_bootstrap(&a, &b, &c, 200, 3);
        let labels: Vec<Option<bool>> = c.iter().map(|&x| Some(x)).collect();
        let table_curve = ThresholdTable::new(&a, &labels).coverage_curve();

        let mut idx: Vec<usize> = (0..a.len()).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(99));
        let a2: Vec<f32> = idx.iter().map(|&i| a[i]).collect();
        let b2: Vec<f32> = idx.iter().map(|&i| b[i]).collect();
        let c2: Vec<bool> = idx.iter().map(|&i| c[i]).collect();
        let labels2: Vec<Option<bool>> = c2.iter().map(|&x| Some(x)).collect();

        // Bit-for-bit equal, not merely close.
        assert_eq!(MetricRow::compute(&a2, &c2, true), row);
        assert_eq!(roc_curve(&a2, &c2), roc);
        assert_eq!(risk_coverage_curve(&a2, &c2), rc);
        assert_eq!(reliability_diagram(&a2, &c2), rel);
        assert_eq!(paired_bootstrap(&a2, &b2, &c2, 200, 3), boot);
        assert_eq!(
            ThresholdTable::new(&a2, &labels2).coverage_curve(),
            table_curve
        );
        assert_eq!(table_curve, rc);
    }

    #[test]
    fn auroc_matches_pair_count() {
        let (a, _, c) = random_rows(400, 11);
        let key = |s: f32| score_key(s);
        let (mut twice, mut pairs) = (0u64, 0u64);
        for i in 0..a.len() {
            for j in 0..a.len() {
                if c[i] && !c[j] {
                    pairs += 1;
                    twice += match key(a[i]).cmp(&key(a[j])) {
                        std::cmp::Ordering::Greater => 2,
                        std::cmp::Ordering::Equal => 1,
                        std::cmp::Ordering::Less => 0,
                    };
                }
            }
        }
        assert_close(auroc(&a, &c), twice as f64 / (2 * pairs) as f64);
    }

    #[test]
    fn bootstrap_self_difference_is_zero() {
        let (a, _, c) = random_rows(500, 5);
        let boot = paired_bootstrap(&a, &a, &c, DEFAULT_BOOTSTRAP_RESAMPLES, 1);
        assert_eq!(boot.resamples, 1000);
        for d in [&boot.auroc, &boot.aurc] {
            assert_eq!(d.estimate, Some(0.0));
            assert_eq!(d.interval, Some((0.0, 0.0)));
            assert_eq!(d.resamples_used + d.resamples_skipped, 1000);
        }
        assert_eq!(boot.aurc.resamples_used, 1000);
    }

    #[test]
    fn bootstrap_better_score_excludes_zero() {
        let (a, b, c) = random_rows(600, 9); // a is informative, b is noise
        let boot = paired_bootstrap(&a, &b, &c, 1000, 42);
        let (lo, hi) = boot.auroc.interval.unwrap();
        assert!(lo > 0.0 && lo <= hi, "{lo} {hi}");
        assert!(boot.auroc.estimate.unwrap() > 0.0);
        let (lo, hi) = boot.aurc.interval.unwrap();
        assert!(hi < 0.0 && lo <= hi, "{lo} {hi}");
        // Deterministic for a seed.
        assert_eq!(paired_bootstrap(&a, &b, &c, 1000, 42), boot);
    }

    #[test]
    fn bootstrap_skips_single_class_resamples() {
        // One wrong row among 3: a resample misses it with probability (2/3)³ = 8/27 ≈ 30 %.
        let a = [0.9, 0.8, 0.1];
        let b = [0.1, 0.8, 0.9];
        let c = bools(&[1, 1, 0]);
        let boot = paired_bootstrap(&a, &b, &c, 1000, 0);
        assert!(boot.auroc.resamples_skipped > 200 && boot.auroc.resamples_skipped < 400);
        assert_eq!(
            boot.auroc.resamples_used + boot.auroc.resamples_skipped,
            1000
        );
        assert_eq!(boot.aurc.resamples_used, 1000);
        // AUROC(a) = 1, AUROC(b) = 0.
        assert_eq!(boot.auroc.estimate, Some(1.0));
    }

    #[test]
    fn grouped_bootstrap_with_singleton_groups_is_the_row_bootstrap() {
        let (a, b, c) = random_rows(500, 13);
        let row = paired_bootstrap(&a, &b, &c, 300, 17);
        assert_eq!(row.groups, None);
        // Arbitrary distinct labels.
        let ids: Vec<u32> = (0..a.len() as u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let grouped = paired_bootstrap_grouped(&a, &b, &c, Some(&ids), 300, 17);
        assert_eq!(grouped.groups, Some(500));
        assert_eq!(
            PairedBootstrap {
                groups: None,
                ..grouped
            },
            row
        );
    }

    #[test]
    fn grouped_bootstrap_moves_copies_together() {
        let (a, b, c) = random_rows(400, 31);
        let single = paired_bootstrap(&a, &b, &c, 1000, 5);
        // Every row three times, the copies in one group.
        let triple = |v: &[f32]| v.iter().flat_map(|&x| [x; 3]).collect::<Vec<f32>>();
        let (a3, b3) = (triple(&a), triple(&b));
        let c3: Vec<bool> = c.iter().flat_map(|&x| [x; 3]).collect();
        let ids: Vec<u32> = (0..a.len() as u32).flat_map(|i| [i; 3]).collect();
        let grouped = paired_bootstrap_grouped(&a3, &b3, &c3, Some(&ids), 1000, 5);
        assert_eq!(grouped.groups, Some(400));
        // AUROC is unchanged by tripling every count: the same draws give the same numbers.
        assert_eq!(grouped.auroc, single.auroc);
        // AURC averages over 3N prefixes instead of N: equal up to the O(1/N) discretisation.
        let (lo1, hi1) = single.aurc.interval.unwrap();
        let (lo3, hi3) = grouped.aurc.interval.unwrap();
        let width = hi1 - lo1;
        assert!((lo3 - lo1).abs() < 0.05 * width && (hi3 - hi1).abs() < 0.05 * width);
        // The naive row bootstrap treats the copies as independent: about 1/√3 as wide.
        let naive = paired_bootstrap(&a3, &b3, &c3, 1000, 5);
        for (g, nv) in [(&grouped.auroc, &naive.auroc), (&grouped.aurc, &naive.aurc)] {
            let (glo, ghi) = g.interval.unwrap();
            let (nlo, nhi) = nv.interval.unwrap();
            let ratio = (nhi - nlo) / (ghi - glo);
            assert!(ratio > 0.45 && ratio < 0.7, "{ratio}");
        }
    }

    #[test]
    fn grouped_bootstrap_ignores_row_order_and_labels() {
        let (a, b, c) = random_rows(600, 41);
        let mut rng = StdRng::seed_from_u64(3);
        // Clusters of 1 to 4 rows.
        let ids: Vec<u32> = (0..a.len())
            .map(|i| (i / rng.random_range(1..=4)) as u32)
            .collect();
        let boot = paired_bootstrap_grouped(&a, &b, &c, Some(&ids), 200, 9);
        let mut idx: Vec<usize> = (0..a.len()).collect();
        idx.shuffle(&mut rng);
        let pick = |v: &[f32]| idx.iter().map(|&i| v[i]).collect::<Vec<f32>>();
        let c2: Vec<bool> = idx.iter().map(|&i| c[i]).collect();
        // New labels: a bijection of the old ones.
        let ids2: Vec<u32> = idx.iter().map(|&i| 1_000_000 - 7 * ids[i]).collect();
        let boot2 = paired_bootstrap_grouped(&pick(&a), &pick(&b), &c2, Some(&ids2), 200, 9);
        assert_eq!(boot2, boot);
        let distinct: std::collections::BTreeSet<u32> = ids.iter().copied().collect();
        assert_eq!(boot.groups, Some(distinct.len()));
    }

    #[test]
    #[should_panic(expected = "group ids")]
    fn grouped_bootstrap_checks_group_length() {
        paired_bootstrap_grouped(&[0.1, 0.2], &[0.1, 0.2], &[true, false], Some(&[0]), 10, 0);
    }

    #[test]
    fn percentile_interpolates() {
        // Position 0.025·4 = 0.1 → 0 + 0.1·(1 − 0) = 0.1; 0.975·4 = 3.9 → 3 + 0.9·1 = 3.9.
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert!(close(percentile(&v, 0.025), 0.1, 1e-12));
        assert!(close(percentile(&v, 0.975), 3.9, 1e-12));
        assert_eq!(percentile(&[2.5], 0.5), 2.5);
    }

    #[test]
    fn threshold_table_hand_example() {
        // Rows: 0.9 right, 0.7 wrong, 0.7 unlabelled, 0.7 right, 0.2 wrong, 0.1 unlabelled.
        let s = [0.9, 0.7, 0.7, 0.7, 0.2, 0.1];
        let c = [Some(true), Some(false), None, Some(true), Some(false), None];
        let t = ThresholdTable::new(&s, &c);
        assert_eq!(t.len(), 6);
        assert_eq!(t.distinct_scores(), &[0.9, 0.7, 0.2, 0.1]);
        // t = 0.7 accepts 0.9 and the three 0.7 rows: 4 accepted (1 unlabelled), 2 right,
        // 1 wrong → trusted accuracy 2/3; rejected 0.2 (wrong) and 0.1 (unlabelled).
        let st = t.at(0.7);
        assert_eq!(
            st,
            ThresholdStats {
                threshold: 0.7,
                total: 6,
                accepted: 4,
                rejected: 2,
                coverage: Some(4.0 / 6.0),
                accepted_right: 2,
                accepted_wrong: 1,
                accepted_unlabelled: 1,
                rejected_right: 0,
                rejected_wrong: 1,
                trusted_accuracy: Some(2.0 / 3.0),
            }
        );
        assert_eq!(t.at(0.95).accepted, 0);
        assert_eq!(t.at(0.95).trusted_accuracy, None);
        assert_eq!(t.at(0.95).rejected_right, 2);
        assert_eq!(t.at(f32::NEG_INFINITY).accepted, 6);
        // Curve at group ends: (1/6, 0/1), (4/6, 1/3), (5/6, 2/4), (6/6, 2/4).
        assert_eq!(
            t.coverage_curve(),
            vec![
                (1.0 / 6.0, 0.0),
                (4.0 / 6.0, 1.0 / 3.0),
                (5.0 / 6.0, 0.5),
                (1.0, 0.5)
            ]
        );
    }

    #[test]
    fn threshold_table_matches_brute_force() {
        let mut rng = StdRng::seed_from_u64(2024);
        let n = 2000;
        let mut s = Vec::with_capacity(n);
        let mut c = Vec::with_capacity(n);
        for i in 0..n {
            // Half the rows on a coarse grid (ties, ±0), half continuous.
            let x = if i % 2 == 0 {
                (rng.random_range(-10..=10) as f32) / 10.0
            } else {
                rng.random::<f32>() * 2.0 - 1.0
            };
            s.push(if x == 0.0 && rng.random_bool(0.5) {
                -0.0
            } else {
                x
            });
            c.push(match rng.random_range(0..3) {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            });
        }
        let table = ThresholdTable::new(&s, &c);
        let mut thresholds: Vec<f32> = (0..3000).map(|_| rng.random::<f32>() * 2.4 - 1.2).collect();
        thresholds.extend(s.iter().take(300));
        thresholds.extend([f32::NEG_INFINITY, f32::INFINITY, 0.0, -0.0, 1.0, -1.0]);
        for &t in &thresholds {
            let st = table.at(t);
            let mut want = (0, 0, 0, 0, 0);
            for (&x, &y) in s.iter().zip(&c) {
                let acc = x >= t;
                match (acc, y) {
                    (true, Some(true)) => want.1 += 1,
                    (true, Some(false)) => want.2 += 1,
                    (false, Some(true)) => want.3 += 1,
                    (false, Some(false)) => want.4 += 1,
                    _ => {}
                }
                want.0 += acc as usize;
            }
            let got = (
                st.accepted,
                st.accepted_right,
                st.accepted_wrong,
                st.rejected_right,
                st.rejected_wrong,
            );
            assert_eq!(got, want, "threshold {t}");
            assert_eq!(st.coverage, Some(want.0 as f64 / n as f64));
            let labelled = want.1 + want.2;
            assert_eq!(
                st.trusted_accuracy,
                (labelled > 0).then(|| want.1 as f64 / labelled as f64)
            );
        }
    }
}

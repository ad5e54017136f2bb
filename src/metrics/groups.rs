//! Tie groups: every metric is computed from the rows grouped by equal score, in descending
//! score order (see the conventions in `mod.rs`).

use crate::support::order::score_key;

use super::*;

/// Inverse of [`score_key`] (canonical: NaN for key 0, `+0.0` for zero).
pub(super) fn key_score(key: u32) -> f32 {
    if key == 0 {
        f32::NAN
    } else if key & 0x8000_0000 != 0 {
        f32::from_bits(key & 0x7FFF_FFFF)
    } else {
        f32::from_bits(!key)
    }
}

pub(super) fn assert_same_len(scores: usize, labels: usize) {
    assert_eq!(
        scores, labels,
        "metrics: {scores} scores but {labels} correctness labels"
    );
}

/// One tie group: all rows with the same score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Group {
    pub(super) score: f32,
    pub(super) pos: u64,
    pub(super) neg: u64,
}

impl Group {
    pub(super) fn n(&self) -> u64 {
        self.pos + self.neg
    }
}

/// Tie groups in descending score order, with class totals. Never contains an empty group.
#[derive(Debug, Clone, Default)]
pub(super) struct Groups {
    pub(super) groups: Vec<Group>,
    pub(super) pos: u64,
    pub(super) neg: u64,
}

impl Groups {
    pub(super) fn new(scores: &[f32], correct: &[bool]) -> Self {
        assert_same_len(scores.len(), correct.len());
        let mut rows: Vec<(u32, bool)> = scores
            .iter()
            .zip(correct)
            .map(|(&s, &c)| (score_key(s), c))
            .collect();
        // Descending score; radix sort is O(n), and a million rows are common here.
        radsort::sort_by_key(&mut rows, |r| !r.0);
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

    pub(super) fn push(&mut self, g: Group) {
        if g.n() > 0 {
            self.pos += g.pos;
            self.neg += g.neg;
            self.groups.push(g);
        }
    }

    pub(super) fn n(&self) -> u64 {
        self.pos + self.neg
    }

    pub(super) fn both_classes(&self) -> bool {
        self.pos > 0 && self.neg > 0
    }

    pub(super) fn auroc(&self) -> Option<f64> {
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
    pub(super) fn average_precision(&self, errors_positive: bool) -> Option<f64> {
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

    pub(super) fn fpr_at_95tpr(&self) -> Option<f64> {
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

    pub(super) fn roc_curve(&self) -> Option<Vec<(f64, f64)>> {
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

    pub(super) fn error_rate(&self) -> Option<f64> {
        (self.n() > 0).then(|| self.neg as f64 / self.n() as f64)
    }

    pub(super) fn accuracy(&self) -> Option<f64> {
        (self.n() > 0).then(|| self.pos as f64 / self.n() as f64)
    }

    /// Mean over k = 1..N of the expected selective risk, errors interpolated within groups.
    pub(super) fn aurc(&self) -> Option<f64> {
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

    pub(super) fn augrc(&self) -> Option<f64> {
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
    pub(super) fn oracle(&self) -> Groups {
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
    pub(super) fn eaurc(&self) -> Option<f64> {
        Some(self.aurc()? - self.oracle().aurc()?)
    }

    /// Expected selective risk of the top k = ⌈coverage·N⌉ rows (errors interpolated inside
    /// the tie group that straddles k, as in [`Groups::aurc`]).
    pub(super) fn risk_at_coverage(&self, coverage: f64) -> Option<f64> {
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

    pub(super) fn risk_coverage_curve(&self) -> Vec<(f64, f64)> {
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
    pub(super) fn calibration_bins(&self) -> [(u64, f64, u64); ECE_BINS] {
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

    pub(super) fn ece(&self) -> Option<f64> {
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

    pub(super) fn brier(&self) -> Option<f64> {
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
pub(super) fn clamp_probability(p: f32) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        (p as f64).clamp(0.0, 1.0)
    }
}

/// Bin of a clamped probability: `min(floor(15·p), 14)`.
pub(super) fn probability_bin(p: f64) -> usize {
    ((p * ECE_BINS as f64).floor() as usize).min(ECE_BINS - 1)
}

/// k = ⌈coverage·N⌉ for coverage in (0, 1]; `None` outside that range, for NaN or N = 0.
/// A product within 1e-9 of an integer counts as that integer, so that e.g. 0.9·10, which
/// rounds to a hair above 9 in some floating-point products, still gives k = 9.
pub(super) fn accepted_at_coverage(coverage: f64, n: u64) -> Option<u64> {
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

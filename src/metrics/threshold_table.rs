//! The dashboard's live threshold table: accuracy and coverage at any threshold in O(log n).

use crate::support::order::score_key;

use super::groups::*;
use super::*;

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
pub(super) struct Counts {
    pub(super) rows: usize,
    pub(super) right: usize,
    pub(super) wrong: usize,
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

    pub(super) fn total(&self) -> Counts {
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
        // Descending score; radix sort is O(n), and a million rows are common here.
        radsort::sort_by_key(&mut rows, |r| !r.0);
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

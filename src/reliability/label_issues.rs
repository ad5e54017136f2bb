//! Suspected label errors, after confident learning (Northcutt, Jiang & Chuang, JAIR 2021).
//!
//! - The **score** of a labelled sample is `1 − p(given label)`: one minus the *self-confidence*,
//!   cleanlab's default label-quality score (also the best simple score in Kuan & Mueller,
//!   2022). It is a pure function of the model's probabilities and the label, chosen from the
//!   literature before any known flip was looked at. Higher = more suspicious.
//! - A sample is **suspected** when confident learning's rule puts it off the diagonal of the
//!   confident joint: with `t_j` the mean probability of class `j` over the samples labelled
//!   `j`, its *confident class* is the most probable class `j` with `p_j ≥ t_j`, and that
//!   class is not its label.
//! - The **suggested label** is the model's prediction (the most probable class).
//!
//! The probabilities must come from a model that did not fit the sample (`reason train`'s
//! out-of-fold heads): a model's own training labels are what it agrees with most.

use std::path::Path;

use crate::error::{Error, Result};
use crate::reliability::records::RecordSet;
use crate::support::files::write_bytes_atomically;
use crate::support::math::argmax;
use crate::support::text::csv_field;

/// The file `reason train` writes beside the artifacts: every training image ranked.
pub const FILE_NAME: &str = "label_issues.csv";

/// The out-of-fold records of the training images, beside the artifacts (a [`RecordSet`]).
pub const RECORDS_FILE_NAME: &str = "train_records.json";

/// Writes the out-of-fold records (atomically).
pub fn write_records(path: &Path, set: &RecordSet) -> Result<()> {
    let json = serde_json::to_vec(set).map_err(|e| Error::Weights(format!("records: {e}")))?;
    write_bytes_atomically(path, &json).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads what [`write_records`] wrote.
pub fn read_records(path: &Path) -> Result<RecordSet> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Dataset {
        path: path.to_path_buf(),
        reason: format!("not a REASON record set: {e}"),
    })
}

/// The model's probability of the given label; `None` when the label is not one of its classes.
pub fn self_confidence(probs: &[f32], label: u16) -> Option<f32> {
    probs.get(label as usize).copied()
}

/// `1 − p(label)`: higher = more likely a label error. `None` when unlabelled or unknown.
pub fn issue_score(probs: &[f32], label: Option<u16>) -> Option<f32> {
    label
        .and_then(|l| self_confidence(probs, l))
        .map(|p| 1.0 - p)
}

/// Confident learning's per-class thresholds: `t_j` is the mean `p_j` over the samples labelled
/// `j` (`+∞` for a class no sample has: nothing is confidently of it).
pub fn class_thresholds<'a>(
    rows: impl IntoIterator<Item = (&'a [f32], u16)>,
    classes: usize,
) -> Vec<f32> {
    let mut sum = vec![0f64; classes];
    let mut count = vec![0usize; classes];
    for (probs, label) in rows {
        let l = label as usize;
        if let Some(&p) = probs.get(l) {
            sum[l] += p as f64;
            count[l] += 1;
        }
    }
    (0..classes)
        .map(|j| match count[j] {
            0 => f32::INFINITY,
            n => (sum[j] / n as f64) as f32,
        })
        .collect()
}

/// The most probable class whose probability reaches its threshold, if any.
pub fn confident_class(probs: &[f32], thresholds: &[f32]) -> Option<u16> {
    probs
        .iter()
        .zip(thresholds)
        .enumerate()
        .filter(|(_, (p, t))| *p >= *t)
        .max_by(|a, b| a.1 .0.total_cmp(b.1 .0).then(b.0.cmp(&a.0)))
        .map(|(j, _)| j as u16)
}

/// Whether confident learning flags the sample: its confident class exists and is not its label.
pub fn is_suspected(probs: &[f32], label: Option<u16>, thresholds: &[f32]) -> bool {
    match label {
        Some(l) => confident_class(probs, thresholds).is_some_and(|j| j != l),
        None => false,
    }
}

/// One ranked sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelIssue {
    /// 1 = the most suspicious.
    pub rank: usize,
    pub path: String,
    pub given: u16,
    /// The model's prediction.
    pub suggested: u16,
    pub p_given: f32,
    pub p_suggested: f32,
    /// `1 − p_given`.
    pub score: f32,
    pub suspected: bool,
}

/// Every labelled sample ranked by score, most suspicious first (ties: path order). `rows` are
/// (path, probabilities, label); the thresholds are computed from the same rows.
pub fn rank(rows: &[(String, Vec<f32>, u16)], classes: usize) -> Vec<LabelIssue> {
    let thresholds = class_thresholds(rows.iter().map(|(_, p, l)| (p.as_slice(), *l)), classes);
    let mut issues: Vec<LabelIssue> = rows
        .iter()
        .map(|(path, probs, label)| {
            let suggested = argmax(probs) as u16;
            let p_given = self_confidence(probs, *label).unwrap_or(0.0);
            LabelIssue {
                rank: 0,
                path: path.clone(),
                given: *label,
                suggested,
                p_given,
                p_suggested: probs[suggested as usize],
                score: 1.0 - p_given,
                suspected: is_suspected(probs, Some(*label), &thresholds),
            }
        })
        .collect();
    issues.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.path.cmp(&b.path)));
    for (i, issue) in issues.iter_mut().enumerate() {
        issue.rank = i + 1;
    }
    issues
}

/// The share of the first `k` entries of a ranking that are true (`None` when `k` is 0 or
/// longer than the ranking).
pub fn precision_at_k(ranked_is_flip: &[bool], k: usize) -> Option<f64> {
    if k == 0 || k > ranked_is_flip.len() {
        return None;
    }
    Some(ranked_is_flip[..k].iter().filter(|&&f| f).count() as f64 / k as f64)
}

/// The CSV header of [`FILE_NAME`].
pub const CSV_HEADER: &str =
    "rank,path,given_label,suggested_label,p_given,p_suggested,score,suspected";

/// Writes the ranking as CSV (atomically), classes by identifier.
pub fn write_csv(path: &Path, issues: &[LabelIssue], classes: &[String]) -> Result<()> {
    let class = |i: u16| classes.get(i as usize).cloned().unwrap_or(i.to_string());
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for i in issues {
        let fields = [
            i.rank.to_string(),
            csv_field(&i.path),
            csv_field(&class(i.given)),
            csv_field(&class(i.suggested)),
            format!("{}", i.p_given),
            format!("{}", i.p_suggested),
            format!("{}", i.score),
            i.suspected.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    write_bytes_atomically(path, out.as_bytes()).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_one_minus_the_probability_of_the_label() {
        let p = [0.7, 0.2, 0.1];
        assert_eq!(issue_score(&p, Some(0)), Some(1.0 - 0.7));
        assert_eq!(issue_score(&p, Some(2)), Some(1.0 - 0.1));
        assert_eq!(issue_score(&p, None), None);
        assert_eq!(issue_score(&p, Some(3)), None);
    }

    #[test]
    fn confident_learning_flags_confident_disagreement_only() {
        // Class 0's samples average p0 = 0.8, class 1's average p1 = 0.6.
        let rows: Vec<(Vec<f32>, u16)> = vec![
            (vec![0.9, 0.1], 0),
            (vec![0.7, 0.3], 0),
            (vec![0.2, 0.8], 1),
            (vec![0.6, 0.4], 1),
        ];
        let t = class_thresholds(rows.iter().map(|(p, l)| (p.as_slice(), *l)), 3);
        assert!((t[0] - 0.8).abs() < 1e-6 && (t[1] - 0.6).abs() < 1e-6);
        assert_eq!(t[2], f32::INFINITY);
        // Labelled 1 but p0 = 0.6 < t0 = 0.8: not confidently class 0.
        assert!(!is_suspected(&[0.6, 0.4, 0.0], Some(1), &t));
        // Labelled 1 and p0 = 0.85 ≥ t0: off the diagonal.
        assert!(is_suspected(&[0.85, 0.15, 0.0], Some(1), &t));
        // Both above their thresholds: the more probable one counts.
        assert_eq!(confident_class(&[0.81, 0.65, 0.0], &t), Some(0));
        assert!(!is_suspected(&[0.85, 0.15, 0.0], None, &t));
    }

    #[test]
    fn ranking_puts_the_least_self_confident_first_and_numbers_ranks() {
        let rows = vec![
            ("b".to_string(), vec![0.9f32, 0.1], 0u16),
            ("a".to_string(), vec![0.95, 0.05], 1),
            ("c".to_string(), vec![0.5, 0.5], 1),
        ];
        let r = rank(&rows, 2);
        let order: Vec<&str> = r.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(order, ["a", "c", "b"]);
        assert_eq!(r.iter().map(|i| i.rank).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(r[0].suggested, 0);
        assert!(r[0].suspected);
        assert!(!r[2].suspected);
        assert_eq!(precision_at_k(&[true, false, true], 2), Some(0.5));
        assert_eq!(precision_at_k(&[true], 2), None);
    }
}

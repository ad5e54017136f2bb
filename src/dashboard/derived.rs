//! What the dashboard computes once per change of the records (never per frame): the compact
//! per-row facts the filters read, the threshold table, the summary metrics, the risk–coverage
//! curves, the P(correct) histogram, the confusion matrix and the suspected label errors.

use crate::metrics::{aurc_oracle, Ranked, ThresholdTable};
use crate::reliability::label_issues;
use crate::reliability::records::SampleRecord;

/// Bins of the P(correct) histogram over [0, 1].
pub const HISTOGRAM_BINS: usize = 10;

/// Most points a risk–coverage curve keeps for drawing.
const CURVE_POINTS: usize = 400;

/// Correctness metrics of P(correct) and of the MSP baseline on the labelled rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub labelled: usize,
    pub accuracy: f64,
    pub auroc_p_correct: Option<f64>,
    pub auroc_msp: Option<f64>,
    pub aurc_p_correct: Option<f64>,
    pub aurc_msp: Option<f64>,
    /// AURC of the oracle ranking of the same rows.
    pub aurc_optimal: f64,
}

/// What the filters need of a record, 12 bytes a row, so re-filtering a million rows on a
/// slider move stays within a few milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFacts {
    pub p_correct: f32,
    pub correct: Option<bool>,
    /// The label, or the prediction when unlabelled (what the class filter matches).
    pub class: u16,
    pub pred: u16,
    /// Confident learning flags it as a suspected label error.
    pub suspect: bool,
}

/// Everything computed once per data change.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// One entry per record, in record order.
    pub rows: Vec<RowFacts>,
    pub table: ThresholdTable,
    /// Rows with a label.
    pub labelled: usize,
    /// `None` without labelled rows.
    pub summary: Option<Summary>,
    /// Risk–coverage of P(correct) and of MSP on the labelled rows (thinned for drawing).
    pub risk_p_correct: Vec<(f64, f64)>,
    pub risk_msp: Vec<(f64, f64)>,
    /// P(correct) of labelled rows in [`HISTOGRAM_BINS`] bins, for correct and wrong rows.
    pub histogram_correct: [usize; HISTOGRAM_BINS],
    pub histogram_wrong: [usize; HISTOGRAM_BINS],
    /// Label × prediction counts of the labelled rows.
    pub confusion: Confusion,
    /// Rows flagged as suspected label errors.
    pub suspects: usize,
}

impl Derived {
    pub fn compute(records: &[SampleRecord]) -> Derived {
        // Four independent passes over the records, run side by side: at a million rows each
        // takes tens to hundreds of milliseconds, and the first frame waits for all of them.
        let ((table, confusion), ((rows, suspects), metrics)) = rayon::join(
            || {
                rayon::join(
                    || threshold_table(records),
                    || Confusion::compute(records, class_count(records)),
                )
            },
            || rayon::join(|| row_facts(records), || LabelledMetrics::compute(records)),
        );
        Derived {
            rows,
            table,
            labelled: metrics.labelled,
            summary: metrics.summary,
            risk_p_correct: metrics.risk_p_correct,
            risk_msp: metrics.risk_msp,
            histogram_correct: metrics.histogram_correct,
            histogram_wrong: metrics.histogram_wrong,
            confusion,
            suspects,
        }
    }
}

fn threshold_table(records: &[SampleRecord]) -> ThresholdTable {
    let p_correct: Vec<f32> = records.iter().map(|r| r.p_correct).collect();
    let correct: Vec<Option<bool>> = records.iter().map(SampleRecord::correct).collect();
    ThresholdTable::new(&p_correct, &correct)
}

/// Classes of the widest probability vector.
fn class_count(records: &[SampleRecord]) -> usize {
    records.iter().map(|r| r.probs.len()).max().unwrap_or(0)
}

/// Each record's [`RowFacts`], and how many are suspected label errors.
fn row_facts(records: &[SampleRecord]) -> (Vec<RowFacts>, usize) {
    let thresholds = label_issues::class_thresholds(
        records
            .iter()
            .filter_map(|r| Some((r.probs.as_slice(), r.label?))),
        class_count(records),
    );
    let rows: Vec<RowFacts> = records
        .iter()
        .map(|r| RowFacts {
            p_correct: r.p_correct,
            correct: r.correct(),
            class: r.label.unwrap_or(r.pred),
            pred: r.pred,
            suspect: label_issues::is_suspected(&r.probs, r.label, &thresholds),
        })
        .collect();
    let suspects = rows.iter().filter(|r| r.suspect).count();
    (rows, suspects)
}

/// What is computed over the labelled rows only.
struct LabelledMetrics {
    labelled: usize,
    summary: Option<Summary>,
    risk_p_correct: Vec<(f64, f64)>,
    risk_msp: Vec<(f64, f64)>,
    histogram_correct: [usize; HISTOGRAM_BINS],
    histogram_wrong: [usize; HISTOGRAM_BINS],
}

impl LabelledMetrics {
    fn compute(records: &[SampleRecord]) -> LabelledMetrics {
        let labelled: Vec<&SampleRecord> = records.iter().filter(|r| r.label.is_some()).collect();
        let pc: Vec<f32> = labelled.iter().map(|r| r.p_correct).collect();
        let msp: Vec<f32> = labelled.iter().map(|r| r.diagnostics.msp).collect();
        let ok: Vec<bool> = labelled.iter().map(|r| r.label == Some(r.pred)).collect();

        let mut histogram_correct = [0; HISTOGRAM_BINS];
        let mut histogram_wrong = [0; HISTOGRAM_BINS];
        for (&p, &right) in pc.iter().zip(&ok) {
            let bin = histogram_bin(p);
            if right {
                histogram_correct[bin] += 1;
            } else {
                histogram_wrong[bin] += 1;
            }
        }

        // Each score's rows are sorted once for its AUROC, AURC and curve.
        let (by_p_correct, by_msp) =
            rayon::join(|| Ranked::new(&pc, &ok), || Ranked::new(&msp, &ok));
        let summary = (!labelled.is_empty()).then(|| Summary {
            labelled: labelled.len(),
            accuracy: ok.iter().filter(|&&c| c).count() as f64 / ok.len() as f64,
            auroc_p_correct: by_p_correct.auroc(),
            auroc_msp: by_msp.auroc(),
            aurc_p_correct: by_p_correct.aurc(),
            aurc_msp: by_msp.aurc(),
            aurc_optimal: aurc_oracle(&ok).unwrap_or(0.0),
        });
        let risk_p_correct = thin(by_p_correct.risk_coverage_curve());
        let risk_msp = thin(by_msp.risk_coverage_curve());
        LabelledMetrics {
            labelled: labelled.len(),
            summary,
            risk_p_correct,
            risk_msp,
            histogram_correct,
            histogram_wrong,
        }
    }
}

/// The confusion matrix of the labelled rows (label × prediction), sparse: the cells that hold
/// rows, each with its rows' P(correct) sorted, so the rows a threshold rejects in a cell are
/// one binary search away.
#[derive(Debug, Clone, Default)]
pub struct Confusion {
    pub classes: usize,
    /// Labelled rows counted (label and prediction among the classes).
    pub total: usize,
    /// `label * classes + pred` of each non-empty cell, ascending.
    keys: Vec<u64>,
    /// Where each cell's values start in `p_correct`, and the end.
    starts: Vec<usize>,
    p_correct: Vec<f32>,
    /// Off-diagonal cells by count, most confused first (ties: label, then prediction).
    pub confused: Vec<(u16, u16, usize)>,
}

/// Up to this many classes the matrix is drawn as a grid; above, as its most confused pairs.
pub const GRID_MAX_CLASSES: usize = 12;

impl Confusion {
    /// Whether it is drawn as a grid (else as the list of most confused pairs).
    pub fn is_grid(&self) -> bool {
        self.classes <= GRID_MAX_CLASSES
    }

    pub fn compute(records: &[SampleRecord], classes: usize) -> Confusion {
        let c = classes as u64;
        let mut cells: Vec<(u64, f32)> = records
            .iter()
            .filter_map(|r| {
                let l = r.label?;
                ((l as usize) < classes && (r.pred as usize) < classes)
                    .then(|| (l as u64 * c + r.pred as u64, r.p_correct))
            })
            .collect();
        // By cell, then P(correct) ascending (radsort orders floats as `total_cmp` does).
        radsort::sort_by_key(&mut cells, |&(cell, p)| (cell, p));
        let mut keys = Vec::new();
        let mut starts = Vec::new();
        for (i, &(key, _)) in cells.iter().enumerate() {
            if keys.last() != Some(&key) {
                keys.push(key);
                starts.push(i);
            }
        }
        starts.push(cells.len());
        let mut confused: Vec<(u16, u16, usize)> = keys
            .iter()
            .zip(starts.windows(2))
            .filter(|(&k, _)| k / c != k % c)
            .map(|(&k, w)| ((k / c) as u16, (k % c) as u16, w[1] - w[0]))
            .collect();
        confused.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        Confusion {
            classes,
            total: cells.len(),
            keys,
            starts,
            p_correct: cells.into_iter().map(|(_, p)| p).collect(),
            confused,
        }
    }

    /// The sorted P(correct) of one cell.
    fn cell(&self, label: u16, pred: u16) -> &[f32] {
        let key = label as u64 * self.classes as u64 + pred as u64;
        match self.keys.binary_search(&key) {
            Ok(i) => &self.p_correct[self.starts[i]..self.starts[i + 1]],
            Err(_) => &[],
        }
    }

    /// Labelled rows with this label and this prediction.
    pub fn count(&self, label: u16, pred: u16) -> usize {
        self.cell(label, pred).len()
    }

    /// Of those, the ones with P(correct) below the threshold (rejected).
    pub fn rejected(&self, label: u16, pred: u16, threshold: f32) -> usize {
        self.cell(label, pred).partition_point(|&p| p < threshold)
    }
}

/// Histogram bin of a probability (clamped; NaN in the first bin).
pub fn histogram_bin(p: f32) -> usize {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    ((p * HISTOGRAM_BINS as f32) as usize).min(HISTOGRAM_BINS - 1)
}

/// At most [`CURVE_POINTS`] evenly spaced points of a curve, the last one kept.
fn thin(curve: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if curve.len() <= CURVE_POINTS {
        return curve;
    }
    let last = curve.len() - 1;
    (0..CURVE_POINTS)
        .map(|i| curve[i * last / (CURVE_POINTS - 1)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_thinned_keeping_the_ends() {
        let curve: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 0.0)).collect();
        let t = thin(curve);
        assert_eq!(t.len(), CURVE_POINTS);
        assert_eq!(t[0].0, 0.0);
        assert_eq!(t[CURVE_POINTS - 1].0, 9999.0);
    }
}

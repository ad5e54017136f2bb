//! What the dashboard computes once per change of the records (never per frame): the compact
//! per-row facts the filters read, the threshold table, the summary metrics, the risk–coverage
//! curves and the P(correct) histogram.

use crate::metrics::{aurc, aurc_oracle, auroc, risk_coverage_curve, ThresholdTable};
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

/// What the filters need of a record, 8 bytes a row, so re-filtering a million rows on a
/// slider move stays within a few milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFacts {
    pub p_correct: f32,
    pub correct: Option<bool>,
    /// The label, or the prediction when unlabelled (what the class filter matches).
    pub class: u16,
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
}

impl Derived {
    pub fn compute(records: &[SampleRecord]) -> Derived {
        let p_correct: Vec<f32> = records.iter().map(|r| r.p_correct).collect();
        let correct: Vec<Option<bool>> = records.iter().map(SampleRecord::correct).collect();
        let table = ThresholdTable::new(&p_correct, &correct);
        let rows = records
            .iter()
            .map(|r| RowFacts {
                p_correct: r.p_correct,
                correct: r.correct(),
                class: r.label.unwrap_or(r.pred),
            })
            .collect();

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

        let summary = (!labelled.is_empty()).then(|| {
            let ((auroc_p_correct, aurc_p_correct), (auroc_msp, aurc_msp)) = rayon::join(
                || (auroc(&pc, &ok), aurc(&pc, &ok)),
                || (auroc(&msp, &ok), aurc(&msp, &ok)),
            );
            let accuracy = ok.iter().filter(|&&c| c).count() as f64 / ok.len() as f64;
            Summary {
                labelled: labelled.len(),
                accuracy,
                auroc_p_correct,
                auroc_msp,
                aurc_p_correct,
                aurc_msp,
                aurc_optimal: aurc_oracle(&ok).unwrap_or(0.0),
            }
        });
        let (risk_p_correct, risk_msp) = rayon::join(
            || thin(risk_coverage_curve(&pc, &ok)),
            || thin(risk_coverage_curve(&msp, &ok)),
        );
        Derived {
            rows,
            table,
            labelled: labelled.len(),
            summary,
            risk_p_correct,
            risk_msp,
            histogram_correct,
            histogram_wrong,
        }
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

//! The JSON object of one scored image: what `reason predict --json` prints per line and what
//! `reason serve` answers (one definition, so the two cannot drift apart).

use serde::Serialize;

use crate::model::classify::Prediction;
use crate::reliability::artifacts::Artifacts;
use crate::reliability::records::{Diagnostics, SampleRecord};
use crate::support::math::top_k;

/// One image's ImageNet prediction with its reliability.
#[derive(Serialize)]
pub struct ReliablePrediction<'a> {
    #[serde(flatten)]
    pub imagenet: Prediction,
    pub reliability: Reliability<'a>,
}

#[derive(Serialize)]
pub struct Reliability<'a> {
    /// Top-5 of the trained head over the artifacts' classes.
    pub head_top5: Vec<serde_json::Value>,
    pub pred: &'a str,
    pub p_correct: f32,
    pub verdict: &'static str,
    pub threshold: f32,
    pub diagnostics: &'a Diagnostics,
    /// The meta-vector by name, in layout order.
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl<'a> ReliablePrediction<'a> {
    pub fn new(imagenet: Prediction, record: &'a SampleRecord, artifacts: &'a Artifacts) -> Self {
        let m = &artifacts.manifest;
        let threshold = m.calibration.threshold;
        let head_top5 = top_k(&record.probs, 5)
            .into_iter()
            .map(|c| serde_json::json!({ "class": m.classes[c], "name": m.class_names[c], "prob": record.probs[c] }))
            .collect();
        let meta = record
            .meta
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    m.layout.name(i).unwrap_or("?").to_string(),
                    serde_json::json!(v),
                )
            })
            .collect();
        Self {
            imagenet,
            reliability: Reliability {
                head_top5,
                pred: &m.classes[record.pred as usize],
                p_correct: record.p_correct,
                verdict: verdict(record.p_correct, threshold),
                threshold,
                diagnostics: &record.diagnostics,
                meta,
            },
        }
    }
}

/// "accept" when P(correct) reaches the threshold, else "reject".
pub fn verdict(p_correct: f32, threshold: f32) -> &'static str {
    if p_correct >= threshold {
        "accept"
    } else {
        "reject"
    }
}

//! What REASON computes per sample, in one shape that the dashboard, `eval`, the caches and
//! the exports all read.

use serde::{Deserialize, Serialize};

/// One named block of the meta-vector (a meta-feature family).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBlock {
    /// Family name, e.g. `entropy`, `mc_dropout`, `pca`.
    pub family: String,
    /// One name per dimension, e.g. `mc_dropout.var_p_pred`.
    pub names: Vec<String>,
    /// Offset of the first dimension in the meta-vector.
    pub offset: usize,
}

/// The documented, named layout of the meta-vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureLayout {
    pub blocks: Vec<FeatureBlock>,
}

impl FeatureLayout {
    pub fn dim(&self) -> usize {
        self.blocks.iter().map(|b| b.names.len()).sum()
    }

    /// Name of dimension `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.blocks
            .iter()
            .find(|b| (b.offset..b.offset + b.names.len()).contains(&i))
            .map(|b| b.names[i - b.offset].as_str())
    }

    /// The family that dimension `i` belongs to.
    pub fn family_of(&self, i: usize) -> Option<&str> {
        self.blocks
            .iter()
            .find(|b| (b.offset..b.offset + b.names.len()).contains(&i))
            .map(|b| b.family.as_str())
    }
}

/// The scalar diagnostics shown beside every prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Max softmax probability of the head (the MSP baseline).
    pub msp: f32,
    /// Entropy of the head's softmax (nats).
    pub entropy: f32,
    /// Top-1 minus top-2 logit.
    pub logit_gap: f32,
    /// Variance of p(predicted class) over MC-dropout passes.
    pub mc_variance: f32,
    /// ‖∂ log p_ŷ / ∂x‖₂ with respect to the normalised input.
    pub grad_sensitivity: f32,
    /// Mean distance to the k nearest reference embeddings (PCA space).
    pub knn_distance: f32,
    /// Distance to nearest other class / distance to nearest predicted class.
    pub trust_score: f32,
}

/// Everything computed for one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Path relative to the dataset root: the sample's identity.
    pub id: String,
    /// Index into the class list, `None` when unlabelled.
    pub label: Option<u16>,
    /// Predicted class (argmax of the head).
    pub pred: u16,
    /// Head probabilities over the dataset's classes.
    pub probs: Vec<f32>,
    /// The MetaNet's calibrated P(correct).
    pub p_correct: f32,
    pub diagnostics: Diagnostics,
    /// The meta-vector, in `FeatureLayout` order (raw, before standardisation).
    pub meta: Vec<f32>,
    /// The image file was truncated: it was scored from a picture whose missing part the
    /// decoder filled in (absent, so false, in records written before this was recorded).
    #[serde(default)]
    pub truncated: bool,
}

impl SampleRecord {
    pub fn correct(&self) -> Option<bool> {
        self.label.map(|l| l == self.pred)
    }
}

/// Takes the records of truncated files out of `records`, as `(id, reason)` skips: what
/// `--skip-truncated` does with records that were scored before the choice was made.
pub fn split_truncated(records: &mut Vec<SampleRecord>) -> Vec<(String, String)> {
    let skipped = records
        .iter()
        .filter(|r| r.truncated)
        .map(|r| {
            (
                r.id.clone(),
                crate::data::imageio::TRUNCATED_SKIP_REASON.to_string(),
            )
        })
        .collect();
    records.retain(|r| !r.truncated);
    skipped
}

/// A scored dataset: records plus what is needed to read them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordSet {
    /// Class identifiers (folder names / wnids), indexed by `label` and `pred`.
    pub classes: Vec<String>,
    /// Readable class names, same order.
    pub class_names: Vec<String>,
    pub layout: FeatureLayout,
    /// The operating threshold on P(correct) saved with the artifacts.
    pub threshold: f32,
    pub records: Vec<SampleRecord>,
    /// The calibration rows behind the certified threshold (absent for older caches).
    #[serde(default)]
    pub calibration: Option<Box<CalibrationRows>>,
}

/// What a viewer needs to state the certified threshold and the Clopper–Pearson bound at any
/// other threshold: P(correct) and the outcome of each calibration row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRows {
    pub p_correct: Vec<f32>,
    pub correct: Vec<bool>,
    pub target_risk: f64,
    pub delta: f64,
    /// The certificate in words.
    pub statement: String,
}

/// Progress of a background scoring run, as sent to whoever displays it.
#[derive(Debug, Clone)]
pub enum ScoringEvent {
    /// The run knows its size and the set-up (classes, layout, threshold; no records yet).
    Started {
        total: usize,
        header: RecordSet,
    },
    /// A stage of the work with a progress count, e.g. ("features", 128, 3925).
    Progress {
        stage: String,
        done: usize,
        total: usize,
    },
    /// Newly scored samples, in dataset order.
    Records(Vec<SampleRecord>),
    /// A sample that could not be used.
    Skipped {
        id: String,
        reason: String,
    },
    Finished,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_truncation_was_recorded_read_as_whole_files() {
        let old = r#"{"id":"a/b.jpg","label":1,"pred":1,"probs":[0.1,0.9],"p_correct":0.8,
            "diagnostics":{"msp":0.9,"entropy":0.3,"logit_gap":2.0,"mc_variance":0.0,
            "grad_sensitivity":0.1,"knn_distance":3.0,"trust_score":1.5},"meta":[1.0]}"#;
        let record: SampleRecord = serde_json::from_str(old).unwrap();
        assert!(!record.truncated);
        let mut cut = record.clone();
        cut.id = "a/cut.jpg".into();
        cut.truncated = true;
        let json = serde_json::to_value(&cut).unwrap();
        assert_eq!(json["truncated"], true);

        let mut records = vec![record, cut];
        let skipped = split_truncated(&mut records);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, "a/b.jpg");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, "a/cut.jpg");
        assert!(skipped[0].1.contains("truncated"), "{}", skipped[0].1);
    }
}

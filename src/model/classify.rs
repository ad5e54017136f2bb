//! Running an ImageNet backbone over a dataset: per-image top-5, the prediction restricted to the
//! dataset's own classes, and accuracy over both.

use std::time::Instant;

use serde::Serialize;

use crate::data::dataset::Dataset;
use crate::data::imageio::TRUNCATED_SKIP_REASON;
use crate::data::imagenet;
use crate::error::Result;
use crate::model::backbone::Backbone;
use crate::model::pipeline::for_each_batch;
use crate::support::math::{softmax, top_k};

#[derive(Debug, Clone, Serialize)]
pub struct ClassProb {
    /// ImageNet wnid.
    pub wnid: String,
    pub name: String,
    pub prob: f32,
}

/// One image's prediction, as printed by `reason predict --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// Path relative to the dataset root.
    pub path: String,
    /// The class folder name (wnid for Imagenette), or null when unlabelled.
    pub label: Option<String>,
    pub top5: Vec<ClassProb>,
    /// The dataset class with the highest logit, when the dataset's classes are ImageNet classes.
    pub pred_in_dataset: Option<String>,
    /// The file was truncated: the prediction is for a picture whose missing part the decoder
    /// filled in.
    pub truncated: bool,
    #[serde(skip)]
    pub sample: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassifySummary {
    pub images: usize,
    pub classified: usize,
    /// (path, reason) of every image that could not be used.
    pub skipped: Vec<(String, String)>,
    /// Classified images whose file was truncated.
    pub truncated: usize,
    /// Labelled images whose label is an ImageNet class.
    pub labelled: usize,
    /// Top-1 over all 1000 classes equals the label.
    pub correct_all_classes: usize,
    /// Argmax over the dataset's classes equals the label.
    pub correct_in_dataset: usize,
    pub seconds: f64,
}

impl ClassifySummary {
    pub fn accuracy_all_classes(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct_all_classes as f64 / self.labelled as f64)
    }

    pub fn accuracy_in_dataset(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct_in_dataset as f64 / self.labelled as f64)
    }

    /// Counts one classified image.
    pub fn count(
        &mut self,
        dataset: &Dataset,
        index: usize,
        logits: &[f32],
        prediction: &Prediction,
        in_dataset: Option<&[usize]>,
    ) {
        if let (Some(label), Some(indices)) = (dataset.samples[index].label, in_dataset) {
            self.labelled += 1;
            self.correct_all_classes += usize::from(top_k(logits, 1)[0] == indices[label]);
            self.correct_in_dataset +=
                usize::from(prediction.pred_in_dataset.as_deref() == Some(&dataset.classes[label]));
        }
        self.classified += 1;
        self.truncated += usize::from(prediction.truncated);
    }

    pub fn images_per_second(&self) -> f64 {
        self.classified as f64 / self.seconds.max(1e-9)
    }
}

/// Classifies every image of `dataset` with a 1000-class ImageNet backbone. Truncated files
/// are classified and flagged, or skipped (with the reason) when `skip_truncated`.
pub fn classify_dataset(
    backbone: &Backbone,
    dataset: &Dataset,
    batch_size: usize,
    skip_truncated: bool,
    mut on_prediction: impl FnMut(&Prediction),
    mut on_skip: impl FnMut(&str, &str),
) -> Result<ClassifySummary> {
    let started = Instant::now();
    let in_dataset = dataset.imagenet_indices();
    let preprocess = backbone.kind.preprocess();
    let mut summary = ClassifySummary {
        images: dataset.samples.len(),
        ..Default::default()
    };
    for_each_batch(&dataset.samples, &preprocess, batch_size, |batch| {
        for (i, reason) in &batch.failures {
            let id = &dataset.samples[*i].id;
            on_skip(id, reason);
            summary.skipped.push((id.clone(), reason.clone()));
        }
        let Some(input) = batch.input else {
            return Ok(());
        };
        let logits = backbone
            .forward(&input.to_device(backbone.device())?)?
            .logits
            .to_vec2::<f32>()?;
        for ((&index, &truncated), row) in batch.indices.iter().zip(&batch.truncated).zip(&logits) {
            if truncated && skip_truncated {
                let id = &dataset.samples[index].id;
                on_skip(id, TRUNCATED_SKIP_REASON);
                summary
                    .skipped
                    .push((id.clone(), TRUNCATED_SKIP_REASON.to_string()));
                continue;
            }
            let prediction = Prediction {
                truncated,
                ..predict_one(dataset, index, row, in_dataset.as_deref())
            };
            summary.count(dataset, index, row, &prediction, in_dataset.as_deref());
            on_prediction(&prediction);
        }
        Ok(())
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Top-5 over the 1000 ImageNet classes and the prediction restricted to the dataset's classes.
pub fn predict_one(
    dataset: &Dataset,
    index: usize,
    logits: &[f32],
    in_dataset: Option<&[usize]>,
) -> Prediction {
    let sample = &dataset.samples[index];
    let probs = softmax(logits);
    let classes = imagenet::classes();
    let top5 = top_k(&probs, 5)
        .into_iter()
        .map(|k| ClassProb {
            wnid: classes[k].wnid.to_string(),
            name: classes[k].name.to_string(),
            prob: probs[k],
        })
        .collect();
    let pred_in_dataset = in_dataset.map(|indices| {
        let restricted: Vec<f32> = indices.iter().map(|&k| logits[k]).collect();
        dataset.classes[top_k(&restricted, 1)[0]].clone()
    });
    Prediction {
        path: sample.id.clone(),
        label: sample.label.map(|l| dataset.classes[l].clone()),
        top5,
        pred_in_dataset,
        truncated: false,
        sample: index,
    }
}

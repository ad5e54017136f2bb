//! Why a prediction came out as it did: the saliency of a head class and the nearest training
//! images, for one image. The dashboard's inspection worker and `reason explain` both ask this.

use std::path::PathBuf;

use candle_core::Device;
use image::RgbImage;

use crate::error::Result;
use crate::model::backbone::Backbone;
use crate::model::saliency::{self, Saliency};
use crate::reliability::artifacts::Artifacts;
use crate::reliability::neighbours::{self, Neighbour};
use crate::reliability::records::SampleRecord;
use crate::reliability::scoring::{PreparedImage, ScoringModels};

/// Trained artifacts, their backbone loaded, and where the bank's images are.
pub struct Explainer {
    pub models: ScoringModels,
    pub backbone: Backbone,
    /// The training images' folder on this machine (`None`: not found, or no paths file).
    pub bank_root: Option<PathBuf>,
}

impl Explainer {
    /// Loads the backbone on `device` (seconds; call it off a UI thread).
    pub fn new(models: ScoringModels, device: &Device) -> Result<Self> {
        let backbone = models.load_backbone(device)?;
        let bank_root = models
            .artifacts
            .bank_paths
            .as_ref()
            .and_then(|p| p.resolve_root());
        Ok(Explainer {
            models,
            backbone,
            bank_root,
        })
    }

    /// The saliency of head class `class` for a decoded picture.
    pub fn saliency(&self, image: &RgbImage, class: u16) -> Result<Saliency> {
        saliency::compute(&self.backbone, &self.models.artifacts.head, image, class)
    }

    /// The record of one picture, scored as `reason predict` scores it (`id` seeds MC dropout).
    pub fn score(&self, id: &str, image: &RgbImage, truncated: bool) -> Result<SampleRecord> {
        let pre = self.backbone.kind.preprocess();
        let prepared = PreparedImage {
            id: id.to_string(),
            chw: pre.apply(image),
            truncated,
        };
        let scorer = self.models.scorer(&self.backbone);
        let mut scored = scorer.score_images(&[prepared])?;
        Ok(scored.remove(0).0)
    }

    /// The `k` nearest training images of a scored sample (from its meta-vector's PCA block).
    pub fn neighbours(&self, record: &SampleRecord, k: usize) -> Vec<Neighbour> {
        nearest_of_record(&self.models.artifacts, self.bank_root.as_deref(), record, k)
    }
}

/// The `k` nearest training images of a scored record, with no backbone needed.
pub fn nearest_of_record(
    a: &Artifacts,
    bank_root: Option<&std::path::Path>,
    record: &SampleRecord,
    k: usize,
) -> Vec<Neighbour> {
    let Some(point) = neighbours::point_of_meta(&a.manifest.layout, &record.meta) else {
        return Vec::new();
    };
    neighbours::nearest(&a.bank, a.bank_paths.as_ref(), bank_root, &point, k)
}

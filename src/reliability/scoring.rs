//! Scoring any dataset with trained artifacts: one backbone pass (forward + backward) per image
//! gives the embedding and the gradient sensitivity; everything else comes from the cached
//! embedding. Records are produced in chunks so a viewer can fill progressively.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use rayon::prelude::*;

use crate::data::corrupt::CorruptionSpec;
use crate::data::dataset::{Dataset, Sample};
use crate::data::download::DownloadProgress;
use crate::data::imageio::TRUNCATED_SKIP_REASON;
use crate::error::Result;
use crate::model::backbone::{weights, Backbone, BackboneKind};
use crate::model::extract::{gradient_pass, ExtractSpec, Extracted};
use crate::model::pipeline::for_each_batch;
use crate::reliability::artifacts::Artifacts;
use crate::reliability::features::{self, RowInputs, MC_PASSES};
use crate::reliability::knn;
use crate::reliability::records::{CalibrationRows, RecordSet, SampleRecord, ScoringEvent};
use crate::support::math::{argmax, softmax64};

/// Samples per backbone chunk (and per cache entry).
pub const CHUNK: usize = 256;

/// Scores of one sample beyond its record, for evaluation.
#[derive(Debug, Clone)]
pub struct ExtraScores {
    /// Platt-calibrated MetaNet logit: ranks like P(correct) without float saturation.
    pub metanet_logit: f32,
    /// The baselines of `features::BASELINES`.
    pub baselines: [f32; 13],
    /// Logits of the backbone's own ImageNet classifier (only when `Scorer::imagenet_logits`).
    pub imagenet_logits: Option<Vec<f32>>,
}

/// An image decoded and preprocessed outside a dataset (see [`Scorer::score_images`]).
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// The name it is reported and seeded under (a file name for an upload).
    pub id: String,
    /// The backbone's preprocessed input, channels × height × width.
    pub chw: Vec<f32>,
    /// The bytes were a truncated JPEG (see `imageio::Decoded::truncated`).
    pub truncated: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Scored {
    pub header: RecordSet,
    pub records: Vec<SampleRecord>,
    pub extra: Vec<ExtraScores>,
    pub skipped: Vec<(String, String)>,
}

/// Trained artifacts and the backbone weights they were trained with, checked against each
/// other: the one way the dashboard, `eval`, `predict` and `bench` get what they score with.
pub struct ScoringModels {
    pub artifacts: Artifacts,
    pub kind: BackboneKind,
    pub weights_path: PathBuf,
    pub weights_sha256: String,
}

impl ScoringModels {
    /// Loads the artifacts in `dir` and the weights they name (or `weights`: a path or a hub
    /// id), and checks that they belong together. A weights download, when one is needed, is
    /// reported to `progress`.
    pub fn open(
        dir: &Path,
        weights: Option<&str>,
        progress: &dyn Fn(DownloadProgress),
    ) -> Result<Self> {
        let artifacts = Artifacts::load(dir)?;
        let kind = BackboneKind::from_name(&artifacts.manifest.backbone.name)?;
        let resolved = weights::resolve(kind, weights, progress)?;
        Self::with_weights(artifacts, kind, &resolved.path)
    }

    /// Pairs loaded artifacts with a `kind` backbone's weights file, checking backbone,
    /// weights sha256 and this build's feature layout.
    pub fn with_weights(
        artifacts: Artifacts,
        kind: BackboneKind,
        weights_path: &Path,
    ) -> Result<Self> {
        let weights_sha256 = weights::sha256_file(weights_path)?;
        artifacts.check_compatible(
            kind,
            &weights_sha256,
            &features::layout(artifacts.manifest.classes.len()),
        )?;
        Ok(Self {
            artifacts,
            kind,
            weights_path: weights_path.to_path_buf(),
            weights_sha256,
        })
    }

    pub fn load_backbone(&self, device: &Device) -> Result<Backbone> {
        Backbone::load(self.kind, &self.weights_path, device)
    }

    /// A scorer with the defaults (batch 16, seed 0, cached, no ImageNet logits).
    pub fn scorer<'a>(&'a self, backbone: &'a Backbone) -> Scorer<'a> {
        Scorer {
            backbone,
            weights_sha256: &self.weights_sha256,
            artifacts: &self.artifacts,
            batch_size: 16,
            seed: 0,
            imagenet_logits: false,
            use_cache: true,
            skip_truncated: false,
        }
    }
}

/// The record set header of `a`: classes, layout, threshold and the calibration rows, without
/// records (what a viewer needs besides the rows, whether they are scored now or read back).
pub fn record_header(a: &Artifacts) -> RecordSet {
    let m = &a.manifest;
    RecordSet {
        classes: m.classes.clone(),
        class_names: m.class_names.clone(),
        layout: m.layout.clone(),
        threshold: m.calibration.threshold,
        records: Vec::new(),
        calibration: Some(Box::new(calibration_rows(a))),
    }
}

/// P(correct) and outcome of the clean calibration rows the threshold was certified on.
fn calibration_rows(a: &Artifacts) -> CalibrationRows {
    let tm = &a.train_meta;
    let dim = a.manifest.layout.dim();
    let rows: Vec<usize> = (0..tm.correct.len())
        .filter(|&i| tm.role[i] == 2 && tm.view[i] == 0)
        .collect();
    let c = &a.manifest.calibration.certificate;
    CalibrationRows {
        p_correct: rows
            .iter()
            .map(|&i| a.metanet.p_correct(&tm.rows[i * dim..(i + 1) * dim]))
            .collect(),
        correct: rows.iter().map(|&i| tm.correct[i]).collect(),
        target_risk: c.target_risk,
        delta: c.delta,
        statement: c.statement(),
    }
}

pub struct Scorer<'a> {
    pub backbone: &'a Backbone,
    pub weights_sha256: &'a str,
    pub artifacts: &'a Artifacts,
    pub batch_size: usize,
    pub seed: u64,
    /// Also keep the backbone's ImageNet logits per sample (for `predict`).
    pub imagenet_logits: bool,
    /// Read and write the extraction cache (off for benchmarks).
    pub use_cache: bool,
    /// Leave truncated files out (as skipped, with the reason) instead of scoring the picture
    /// the decoder completed (`--skip-truncated`).
    pub skip_truncated: bool,
}

impl Scorer<'_> {
    /// The record set header: classes, layout and threshold, without records.
    pub fn header(&self) -> RecordSet {
        record_header(self.artifacts)
    }

    pub fn score(
        &self,
        dataset: &Dataset,
        corruption: Option<CorruptionSpec>,
        events: &(dyn Fn(ScoringEvent) + Sync),
    ) -> Result<Scored> {
        let header = self.header();
        // Dataset labels mapped onto the artifacts' classes by folder name; others are unlabelled.
        let label_map: Vec<Option<u16>> = dataset
            .classes
            .iter()
            .map(|c| header.classes.iter().position(|k| k == c).map(|i| i as u16))
            .collect();
        let total = dataset.samples.len();
        events(ScoringEvent::Started {
            total,
            header: header.clone(),
        });
        let spec = ExtractSpec {
            backbone: self.backbone,
            weights_sha256: self.weights_sha256,
            corruption,
            seed: self.seed,
            batch_size: self.batch_size,
            use_cache: self.use_cache,
        };
        let mut scored = Scored {
            header,
            ..Default::default()
        };
        for (c, chunk) in dataset.samples.chunks(CHUNK).enumerate() {
            let base = c * CHUNK;
            let extracted = spec.with_gradients(chunk, &|done, _| {
                events(ScoringEvent::Progress {
                    stage: "scoring".into(),
                    done: base + done,
                    total,
                });
            })?;
            let mut skipped = extracted.skipped.clone();
            // Rows (positions in `extracted.rows`) that are scored.
            let kept: Vec<usize> = (0..extracted.rows.len())
                .filter(|&r| {
                    let cut = self.skip_truncated && extracted.truncated[r];
                    if cut {
                        skipped.push((
                            chunk[extracted.rows[r]].id.clone(),
                            TRUNCATED_SKIP_REASON.to_string(),
                        ));
                    }
                    !cut
                })
                .collect();
            for (id, reason) in &skipped {
                events(ScoringEvent::Skipped {
                    id: id.clone(),
                    reason: reason.clone(),
                });
            }
            scored.skipped.extend(skipped);
            let imagenet = self.imagenet_logits_of(&extracted)?;
            let rows: Vec<(SampleRecord, ExtraScores)> = kept
                .par_iter()
                .map(|&r| {
                    let (mut record, mut extra) = self.score_row(
                        &chunk[extracted.rows[r]],
                        extracted.embedding(r),
                        extracted.grad_norms[r],
                        &label_map,
                    );
                    record.truncated = extracted.truncated[r];
                    extra.imagenet_logits = imagenet.as_ref().map(|l| l[r].clone());
                    (record, extra)
                })
                .collect();
            let (records, extra): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
            events(ScoringEvent::Records(records.clone()));
            scored.records.extend(records);
            scored.extra.extend(extra);
        }
        events(ScoringEvent::Finished);
        Ok(scored)
    }

    /// The backbone's ImageNet logits of each extracted row, when `imagenet_logits` is asked.
    fn imagenet_logits_of(&self, extracted: &Extracted) -> Result<Option<Vec<Vec<f32>>>> {
        if !self.imagenet_logits || extracted.rows.is_empty() {
            return Ok(None);
        }
        let e = candle_core::Tensor::from_slice(
            &extracted.embeddings,
            (extracted.rows.len(), extracted.dim),
            self.backbone.device(),
        )?;
        Ok(Some(self.backbone.classify(&e)?.to_vec2::<f32>()?))
    }

    /// Scores images that are already decoded and preprocessed (uploads to `reason serve`), as
    /// one batch: the same backbone pass and rows as [`Scorer::score`], without files, cache
    /// or labels. An image is identified by its `id`, which seeds its MC dropout as a file's
    /// path does, so an upload named like a file scores exactly as that file.
    pub fn score_images(
        &self,
        images: &[PreparedImage],
    ) -> Result<Vec<(SampleRecord, ExtraScores)>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let pre = self.backbone.kind.preprocess();
        let chw: Vec<Vec<f32>> = images.iter().map(|i| i.chw.clone()).collect();
        let input = pre.batch_tensor(&chw, self.backbone.device())?;
        let (embedding, grad_norms) = gradient_pass(self.backbone, &input)?;
        let extracted = Extracted {
            rows: (0..images.len()).collect(),
            dim: self.backbone.kind.embedding_dim(),
            embeddings: embedding.flatten_all()?.to_vec1::<f32>()?,
            grad_norms,
            truncated: images.iter().map(|i| i.truncated).collect(),
            ..Default::default()
        };
        let imagenet = self.imagenet_logits_of(&extracted)?;
        Ok(images
            .par_iter()
            .enumerate()
            .map(|(r, image)| {
                let sample = Sample {
                    id: image.id.clone(),
                    path: PathBuf::new(),
                    label: None,
                };
                let (mut record, mut extra) = self.score_row(
                    &sample,
                    extracted.embedding(r),
                    extracted.grad_norms[r],
                    &[],
                );
                record.truncated = image.truncated;
                extra.imagenet_logits = imagenet.as_ref().map(|l| l[r].clone());
                (record, extra)
            })
            .collect())
    }

    /// Where the time of scoring `samples` goes, stage by stage, each stage run on its own
    /// (decoding is not overlapped with the backbone here, unlike in [`Scorer::score`]), with
    /// the same batches, passes and rows as `score`. For `reason bench --kinds extract`.
    pub fn stage_seconds(&self, samples: &[Sample]) -> Result<StageSeconds> {
        let mut times = StageSeconds::default();
        let pre = self.backbone.kind.preprocess();
        let started = Instant::now();
        let mut batches = Vec::new();
        for_each_batch(samples, &pre, self.batch_size, |batch| {
            batches.push(batch);
            Ok(())
        })?;
        times.decode = started.elapsed().as_secs_f64();
        let mut rows = Vec::new();
        for batch in &batches {
            let Some(input) = &batch.input else { continue };
            let started = Instant::now();
            let input = input.to_device(self.backbone.device())?;
            let (embedding, grad_norms) = gradient_pass(self.backbone, &input)?;
            let embeddings = embedding.to_vec2::<f32>()?;
            times.backbone += started.elapsed().as_secs_f64();
            rows.extend(
                batch
                    .indices
                    .iter()
                    .copied()
                    .zip(embeddings.into_iter().zip(grad_norms)),
            );
        }
        for (i, (embedding, grad_norm)) in &rows {
            self.score_row_timed(&samples[*i], embedding, *grad_norm, &[], Some(&mut times));
        }
        times.images = rows.len();
        Ok(times)
    }

    fn score_row(
        &self,
        sample: &Sample,
        embedding: &[f32],
        grad_norm: f32,
        label_map: &[Option<u16>],
    ) -> (SampleRecord, ExtraScores) {
        self.score_row_timed(sample, embedding, grad_norm, label_map, None)
    }

    /// [`Scorer::score_row`], adding each step's time to `times` when given.
    fn score_row_timed(
        &self,
        sample: &Sample,
        embedding: &[f32],
        grad_norm: f32,
        label_map: &[Option<u16>],
        mut times: Option<&mut StageSeconds>,
    ) -> (SampleRecord, ExtraScores) {
        let mut lap = Lap::start(times.is_some());
        let a = self.artifacts;
        let logits = a.head.logits(embedding, None);
        let pred = argmax(&logits) as u16;
        let mc = features::mc_dropout(
            &a.head,
            embedding,
            a.manifest.head.dropout,
            MC_PASSES,
            features::sample_seed(self.seed, &sample.id),
        );
        lap.add_to(times.as_deref_mut().map(|t| &mut t.head_and_mc_dropout));
        let pca = a.pca.transform(embedding);
        let point = knn::to_point(&pca);
        lap.add_to(times.as_deref_mut().map(|t| &mut t.pca));
        let knn = a.bank.query(&point, pred, None);
        let class_knn = a.outcome_bank.query(&point, pred, None);
        lap.add_to(times.as_deref_mut().map(|t| &mut t.knn));
        let inputs = RowInputs {
            logits: &logits,
            mc,
            grad_norm,
            pca: &pca,
            knn,
            class_knn,
            temperature: a.manifest.calibration.temperature,
        };
        let meta = features::meta_vector(&inputs);
        let record = SampleRecord {
            id: sample.id.clone(),
            label: sample
                .label
                .and_then(|l| label_map.get(l).copied().flatten()),
            pred,
            probs: softmax64(&logits).into_iter().map(|p| p as f32).collect(),
            p_correct: a.metanet.p_correct(&meta),
            diagnostics: features::diagnostics(&inputs),
            meta: meta.clone(),
            truncated: false,
        };
        let extra = ExtraScores {
            metanet_logit: a.metanet.calibrated_logit(&meta),
            baselines: features::baseline_scores(&inputs, &a.baseline_params()),
            imagenet_logits: None,
        };
        lap.add_to(times.map(|t| &mut t.features_and_metanet));
        (record, extra)
    }
}

/// Seconds per stage of scoring, summed over the images (see [`Scorer::stage_seconds`]).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StageSeconds {
    pub images: usize,
    /// Decoding and preprocessing (parallel over the images of a batch).
    pub decode: f64,
    /// Forward and input-gradient pass of the backbone.
    pub backbone: f64,
    /// The artifacts' head and its MC-dropout passes.
    pub head_and_mc_dropout: f64,
    pub pca: f64,
    /// Both k-NN banks.
    pub knn: f64,
    /// The meta-vector, P(correct), the calibrated logit and the baselines.
    pub features_and_metanet: f64,
}

/// A stopwatch that costs nothing when off.
struct Lap(Option<Instant>);

impl Lap {
    fn start(on: bool) -> Self {
        Self(on.then(Instant::now))
    }

    /// Adds the time since the last lap to `total` and starts the next lap.
    fn add_to(&mut self, total: Option<&mut f64>) {
        if let (Some(started), Some(total)) = (self.0.as_mut(), total) {
            let now = Instant::now();
            *total += (now - *started).as_secs_f64();
            *started = now;
        }
    }
}

//! `reason_saved/`: the manifest and the safetensors files of a trained reliability model.
//! Backbone weights are referenced (source + sha256), never stored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::preprocess::Preprocess;
use crate::error::{Error, Result};
use crate::model::backbone::BackboneKind;
use crate::model::head::{HeadConfig, LinearHead};
use crate::reliability::baselines::RelU;
use crate::reliability::certify::Certificate;
use crate::reliability::knn::{self, KnnBank, OutcomeBank};
use crate::reliability::metanet::{MetaNet, MetaNetConfig, MetaNetTrainingReport};
use crate::reliability::neighbours::BankPaths;
use crate::reliability::pca::Pca;
use crate::reliability::records::FeatureLayout;
use crate::reliability::train::{InferenceHead, SelectionRow};
use crate::support::files::{write_atomically, write_bytes_atomically};

/// 2: training views, class-aware k-NN and softmax families, offset meta-models, fold-average
/// head, gradients through the backbone's classifier.
pub const FORMAT_VERSION: u32 = 2;
pub const MANIFEST: &str = "manifest.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const BANK_FILE: &str = "knn_bank.safetensors";
pub const TRAIN_META_FILE: &str = "train_meta.safetensors";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackboneInfo {
    pub name: String,
    /// Hub id (`hub:timm/...`) or the file name the weights came from.
    pub weights_source: String,
    /// The hub repository that publishes these weights, when known: where to get them.
    #[serde(default)]
    pub hub_id: Option<String>,
    pub weights_sha256: String,
    pub preprocess: Preprocess,
    pub embedding_dim: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Protocol {
    pub split: String,
    /// Rows of the split used (all of them, or a seeded subset).
    pub rows_used: usize,
    pub rows_in_split: usize,
    /// Set when only a seeded subset of the split was used.
    pub subset_seed: Option<u64>,
    pub folds: usize,
    pub seed: u64,
    /// Row counts of the MetaNet's three disjoint out-of-fold groups.
    pub metanet_fit_rows: usize,
    pub metanet_stop_rows: usize,
    pub calibration_rows: usize,
    pub mc_passes: usize,
    pub mc_dropout: f32,
    pub knn_k: usize,
    pub pca_components: usize,
    pub pca_explained_variance: f32,
    /// Corrupted views of each training image, and the (training-only) kinds they used.
    pub views: usize,
    pub training_corruptions: Vec<String>,
    /// Class folders left out of training (for the new-class evaluation).
    pub holdout_classes: Vec<String>,
    pub inference_head: InferenceHead,
    /// The meta-model kept, what was asked for, and how every candidate did on the select rows.
    pub meta_model: String,
    pub meta_model_requested: String,
    pub selection: Vec<SelectionRow>,
    /// Plain-language statement of what was fitted on which rows.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Softmax temperature of the head, fitted on its clean out-of-fold logits.
    pub temperature: f32,
    /// Operating threshold on P(correct): the certificate's (infinite, i.e. reject everything,
    /// when no threshold could be certified; stored as null).
    #[serde(with = "crate::reliability::certify::threshold_repr")]
    pub threshold: f32,
    /// Selective risk the threshold was certified for.
    pub target_risk: f32,
    /// The Learn-then-Test certificate of the threshold, on calibration rows nothing else used.
    pub certificate: Certificate,
    /// MaxLogit-pNorm's p and REL-U's λ, fitted/used on the select rows.
    pub pnorm_p: f64,
    pub relu_lambda: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Timing {
    pub stage: String,
    pub seconds: f64,
    pub images: usize,
    /// The stage's backbone outputs were read from the cache, not computed.
    #[serde(default)]
    pub from_cache: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub reason_version: String,
    pub command: String,
    pub backbone: BackboneInfo,
    pub classes: Vec<String>,
    pub class_names: Vec<String>,
    pub layout: FeatureLayout,
    pub head: HeadConfig,
    pub metanet: MetaNetConfig,
    pub metanet_training: MetaNetTrainingReport,
    pub metanet_layers: usize,
    pub protocol: Protocol,
    pub calibration: Calibration,
    /// Metrics of the run, each with its rows named in the key.
    pub metrics: serde_json::Map<String, serde_json::Value>,
    pub timings: Vec<Timing>,
}

/// The out-of-fold meta-vectors the MetaNet was trained on, kept for the ablation in `eval`.
#[derive(Debug, Clone)]
pub struct TrainMeta {
    pub rows: Vec<f32>,
    pub correct: Vec<bool>,
    /// 0 = meta-model fit, 1 = select (early stopping, model choice, Platt), 2 = calibration.
    pub role: Vec<u8>,
    /// The source image of each row (an index), and its view (0 = clean).
    pub source: Vec<u32>,
    pub view: Vec<u8>,
}

pub struct Artifacts {
    pub manifest: Manifest,
    pub head: LinearHead,
    pub metanet: MetaNet,
    pub pca: Pca,
    pub bank: KnnBank,
    pub outcome_bank: OutcomeBank,
    /// REL-U's matrix (a baseline).
    pub relu: RelU,
    pub train_meta: TrainMeta,
    /// The image of each k-NN bank row (`knn_bank_paths.json`); `None` for artifacts written
    /// before the paths were kept.
    pub bank_paths: Option<BankPaths>,
}

impl Artifacts {
    /// The parameters of the fitted baselines.
    pub fn baseline_params(&self) -> crate::reliability::features::BaselineParams<'_> {
        crate::reliability::features::BaselineParams {
            temperature: self.manifest.calibration.temperature,
            pnorm_p: self.manifest.calibration.pnorm_p,
            relu: &self.relu,
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let d = Device::Cpu;
        let mut model: HashMap<String, Tensor> =
            self.head.to_tensors("head")?.into_iter().collect();
        model.extend(self.metanet.to_tensors()?);
        model.insert(
            "pca.mean".into(),
            Tensor::from_slice(&self.pca.mean, self.pca.dim, &d)?,
        );
        model.insert(
            "pca.components".into(),
            Tensor::from_slice(
                &self.pca.components,
                (self.pca.n_components(), self.pca.dim),
                &d,
            )?,
        );
        model.insert(
            "pca.explained_variance_ratio".into(),
            Tensor::from_slice(
                &self.pca.explained_variance_ratio,
                self.pca.n_components(),
                &d,
            )?,
        );
        model.insert(
            "relu.d".into(),
            Tensor::from_slice(&self.relu.d, (self.relu.classes, self.relu.classes), &d)?,
        );
        save_tensors(&dir.join(MODEL_FILE), &model)?;

        let points: Vec<f32> = self.bank.points().iter().flatten().copied().collect();
        let n = self.bank.points().len();
        let bank = HashMap::from([
            (
                "points".to_string(),
                Tensor::from_vec(points, (n, knn::DIM), &d)?,
            ),
            (
                "labels".to_string(),
                Tensor::from_vec(
                    self.bank
                        .labels()
                        .iter()
                        .map(|&l| l as u32)
                        .collect::<Vec<_>>(),
                    n,
                    &d,
                )?,
            ),
        ]);
        let ob = &self.outcome_bank;
        let m_rows = ob.points().len();
        let u32s = |v: Vec<u32>| Tensor::from_vec(v, m_rows, &d);
        let mut bank = bank;
        bank.insert(
            "outcome.points".to_string(),
            Tensor::from_vec(
                ob.points().iter().flatten().copied().collect::<Vec<f32>>(),
                (m_rows, knn::DIM),
                &d,
            )?,
        );
        bank.insert(
            "outcome.predicted".to_string(),
            u32s(ob.predicted().iter().map(|&p| p as u32).collect())?,
        );
        bank.insert(
            "outcome.correct".to_string(),
            u32s(ob.correct().iter().map(|&c| u32::from(c)).collect())?,
        );
        bank.insert("outcome.group".to_string(), u32s(ob.group().to_vec())?);
        save_tensors(&dir.join(BANK_FILE), &bank)?;

        let m = &self.train_meta;
        let rows = m.correct.len();
        let dim = m.rows.len() / rows.max(1);
        let meta = HashMap::from([
            (
                "rows".to_string(),
                Tensor::from_slice(&m.rows, (rows, dim), &d)?,
            ),
            (
                "correct".to_string(),
                Tensor::from_vec(
                    m.correct.iter().map(|&c| u8::from(c)).collect::<Vec<_>>(),
                    rows,
                    &d,
                )?,
            ),
            ("role".to_string(), Tensor::from_slice(&m.role, rows, &d)?),
            (
                "source".to_string(),
                Tensor::from_slice(&m.source, rows, &d)?,
            ),
            ("view".to_string(), Tensor::from_slice(&m.view, rows, &d)?),
        ]);
        save_tensors(&dir.join(TRAIN_META_FILE), &meta)?;
        if let Some(paths) = &self.bank_paths {
            paths.save(dir)?;
        }

        let json =
            serde_json::to_vec_pretty(&self.manifest).map_err(|e| Error::Weights(e.to_string()))?;
        let path = dir.join(MANIFEST);
        write_bytes_atomically(&path, &json).map_err(|source| Error::Io { path, source })
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        let model = load_tensors(&dir.join(MODEL_FILE))?;
        let get = |name: &str| -> Result<Tensor> {
            model
                .get(name)
                .cloned()
                .ok_or_else(|| corrupt(dir, &format!("{MODEL_FILE} lacks tensor `{name}`")))
        };
        let head = LinearHead::from_tensors(get, "head")?;
        let metanet = MetaNet::from_tensors(
            get,
            manifest.metanet_layers,
            manifest.metanet_training.best_epoch,
        )?;
        let components = get("pca.components")?;
        let pca = Pca {
            mean: get("pca.mean")?.to_vec1()?,
            dim: components.dim(1)?,
            components: components.flatten_all()?.to_vec1()?,
            explained_variance_ratio: get("pca.explained_variance_ratio")?.to_vec1()?,
        };
        let relu_d = get("relu.d")?;
        let relu = RelU {
            classes: relu_d.dim(0)?,
            d: relu_d.flatten_all()?.to_vec1()?,
        };
        let bank_t = load_tensors(&dir.join(BANK_FILE))?;
        let bank_get = |name: &str| {
            bank_t
                .get(name)
                .cloned()
                .ok_or_else(|| corrupt(dir, &format!("{BANK_FILE} lacks `{name}`")))
        };
        let points = bank_get("points")?;
        if points.dim(1)? != knn::DIM {
            return Err(corrupt(
                dir,
                &format!(
                    "k-NN bank has {} dimensions, this build uses {}",
                    points.dim(1)?,
                    knn::DIM
                ),
            ));
        }
        let points: Vec<[f32; knn::DIM]> = points
            .to_vec2::<f32>()?
            .iter()
            .map(|r| knn::to_point(r))
            .collect();
        let labels: Vec<u16> = bank_get("labels")?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|l| l as u16)
            .collect();
        let bank = KnnBank::new(points, labels, manifest.classes.len());
        let u32s = |name: &str| -> Result<Vec<u32>> { Ok(bank_get(name)?.to_vec1::<u32>()?) };
        let outcome_points: Vec<[f32; knn::DIM]> = bank_get("outcome.points")?
            .to_vec2::<f32>()?
            .iter()
            .map(|r| knn::to_point(r))
            .collect();
        let outcome_bank = OutcomeBank::new(
            outcome_points,
            u32s("outcome.predicted")?
                .into_iter()
                .map(|p| p as u16)
                .collect(),
            u32s("outcome.correct")?
                .into_iter()
                .map(|c| c == 1)
                .collect(),
            u32s("outcome.group")?,
            manifest.classes.len(),
        );
        let meta_t = load_tensors(&dir.join(TRAIN_META_FILE))?;
        let meta_get = |name: &str| {
            meta_t
                .get(name)
                .cloned()
                .ok_or_else(|| corrupt(dir, &format!("{TRAIN_META_FILE} lacks `{name}`")))
        };
        let train_meta = TrainMeta {
            rows: meta_get("rows")?.flatten_all()?.to_vec1()?,
            correct: meta_get("correct")?
                .to_vec1::<u8>()?
                .into_iter()
                .map(|c| c == 1)
                .collect(),
            role: meta_get("role")?.to_vec1()?,
            source: meta_get("source")?.to_vec1()?,
            view: meta_get("view")?.to_vec1()?,
        };
        let artifacts = Self {
            manifest,
            head,
            metanet,
            pca,
            bank,
            outcome_bank,
            relu,
            train_meta,
            bank_paths: BankPaths::load(dir)?,
        };
        artifacts.check_consistency(dir)?;
        Ok(artifacts)
    }

    fn check_consistency(&self, dir: &Path) -> Result<()> {
        let m = &self.manifest;
        let dim = m.layout.dim();
        let checks = [
            (
                self.head.classes == m.classes.len(),
                format!(
                    "head has {} classes, manifest lists {}",
                    self.head.classes,
                    m.classes.len()
                ),
            ),
            (
                self.head.dim == m.backbone.embedding_dim,
                format!(
                    "head expects {}-d embeddings, backbone gives {}",
                    self.head.dim, m.backbone.embedding_dim
                ),
            ),
            (
                self.metanet.mean.len() == self.metanet.inputs.len()
                    && self.metanet.inputs.iter().all(|&j| j < dim)
                    && self.metanet.offset.is_none_or(|(j, _)| j < dim),
                format!(
                    "MetaNet reads {} features (columns up to {:?}), layout has {}",
                    self.metanet.mean.len(),
                    self.metanet.inputs.iter().max(),
                    dim
                ),
            ),
            (
                self.outcome_bank.points().len() == self.train_meta.correct.len()
                    && self.outcome_bank.predicted().len() == self.outcome_bank.points().len(),
                "class-aware bank does not match the training rows".to_string(),
            ),
            (
                self.relu.classes == m.classes.len(),
                format!(
                    "REL-U matrix is for {} classes, manifest lists {}",
                    self.relu.classes,
                    m.classes.len()
                ),
            ),
            (
                self.pca.n_components() == knn::DIM,
                format!(
                    "PCA has {} components, expected {}",
                    self.pca.n_components(),
                    knn::DIM
                ),
            ),
            (
                self.train_meta.rows.len() == self.train_meta.correct.len() * dim
                    && self.train_meta.source.len() == self.train_meta.correct.len()
                    && self.train_meta.view.len() == self.train_meta.correct.len(),
                "training meta-vectors do not match the layout".to_string(),
            ),
            (
                self.bank_paths
                    .as_ref()
                    .is_none_or(|p| p.paths.len() == self.bank.points().len()),
                format!(
                    "{} names {} images, the k-NN bank has {} rows",
                    crate::reliability::neighbours::BANK_PATHS_FILE,
                    self.bank_paths.as_ref().map_or(0, |p| p.paths.len()),
                    self.bank.points().len()
                ),
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(corrupt(dir, &why)),
            None => Ok(()),
        }
    }

    /// Fails with a message naming what differs when these artifacts were not trained for
    /// this backbone, these weights, or this build's feature layout.
    pub fn check_compatible(
        &self,
        kind: BackboneKind,
        weights_sha256: &str,
        layout: &FeatureLayout,
    ) -> Result<()> {
        let b = &self.manifest.backbone;
        if b.name != kind.name() {
            return Err(Error::Weights(format!(
                "artifacts were trained for backbone `{}`, not `{}`: pass --backbone {} or train new artifacts",
                b.name,
                kind.name(),
                b.name
            )));
        }
        if b.weights_sha256 != weights_sha256 {
            return Err(Error::Weights(format!(
                "artifacts were trained with weights sha256 {} ({}), the loaded weights have sha256 {weights_sha256}",
                short(&b.weights_sha256),
                b.weights_source
            )));
        }
        if &self.manifest.layout != layout {
            let ours: Vec<_> = layout
                .blocks
                .iter()
                .map(|b| format!("{}:{}", b.family, b.names.len()))
                .collect();
            let theirs: Vec<_> = self
                .manifest
                .layout
                .blocks
                .iter()
                .map(|b| format!("{}:{}", b.family, b.names.len()))
                .collect();
            return Err(Error::Weights(format!(
                "feature layout differs: artifacts have [{}], this build computes [{}]; retrain with `reason train`",
                theirs.join(", "),
                ours.join(", ")
            )));
        }
        Ok(())
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn corrupt(dir: &Path, why: &str) -> Error {
    Error::Weights(format!(
        "artifacts in {} are unusable: {why}",
        dir.display()
    ))
}

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = manifest_path(dir);
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(dir, &format!("{MANIFEST} is not JSON: {e}")))?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if version != Some(FORMAT_VERSION as u64) {
        return Err(corrupt(
            dir,
            &format!("format version {version:?}, this build reads {FORMAT_VERSION}"),
        ));
    }
    serde_json::from_value(value).map_err(|e| corrupt(dir, &format!("{MANIFEST}: {e}")))
}

fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    write_atomically(
        path,
        |tmp| Ok(candle_core::safetensors::save(tensors, tmp)?),
        |source| Error::Io {
            path: path.to_path_buf(),
            source,
        },
    )
}

fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::Weights(format!("cannot read {}: {e}", path.display())))
}

//! `reason train`: the cross-fitted reliability pipeline.
//!
//! 1. One backbone pass per image and view: the embedding and the gradient sensitivity. Each
//!    training image is seen clean and as `views` corrupted copies made with the training-only
//!    corruption kinds, so the meta-model meets thousands of errors of many kinds.
//! 2. K heads, each trained on the clean rows of K−1 folds of *source images*, predict every row
//!    (clean and views) of the held-out fold: every row gets an out-of-fold (OOF) prediction, and
//!    no image's views straddle folds. The heads share one standardisation, so the inference head
//!    is their exact average: the same kind of head that made the training features.
//! 3. Meta-features of every row from its OOF head: entropy, gap, top-k, MC dropout, gradient
//!    sensitivity, PCA, k-NN (own image excluded), class-aware k-NN (own image excluded),
//!    logit(TS-MSP).
//! 4. Source images split into fit / select / calibration groups. Candidate meta-models are fitted
//!    on the fit rows and compared on the select rows, where Platt scaling, MaxLogit-pNorm's p and
//!    REL-U's matrix are fitted too; the calibration rows (clean) serve only the certified
//!    operating threshold (Learn-then-Test).

use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::corrupt::{CorruptionKind, CorruptionSpec};
use crate::data::dataset::{Dataset, Sample};
use crate::error::{Error, Result};
use crate::metrics;
use crate::model::backbone::Backbone;
use crate::model::extract::ExtractSpec;
use crate::model::head::{column_stats, fit_temperature, HeadConfig, LinearHead};
use crate::reliability::artifacts::{
    Artifacts, BackboneInfo, Calibration, Manifest, Protocol, Timing, TrainMeta, FORMAT_VERSION,
};
use crate::reliability::baselines::{self, RelU};
use crate::reliability::certify;
use crate::reliability::features::{self, RowInputs, MC_PASSES};
use crate::reliability::knn::{self, KnnBank, OutcomeBank};
use crate::reliability::metanet::{MetaNet, MetaNetConfig};
use crate::reliability::neighbours::BankPaths;
use crate::reliability::pca::Pca;
use crate::reliability::records::SampleRecord;
use crate::support::math::{argmax, softmax64};

/// Which meta-model `train` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetaModelChoice {
    /// Every candidate below, the best on the select rows (never on evaluation rows) kept.
    Auto,
    /// logit P = a·logit(TS-MSP) + linear g on a compact feature set (L2 logistic regression).
    OffsetLogistic,
    /// logit P = a·logit(TS-MSP) + MLP g on every family.
    OffsetMlp,
    /// The first MetaNet: an MLP on the seven original families, no offset.
    SeedMlp,
}

impl MetaModelChoice {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::OffsetLogistic => "offset-logistic",
            Self::OffsetMlp => "offset-mlp",
            Self::SeedMlp => "seed-mlp",
        }
    }

    pub const CANDIDATES: [MetaModelChoice; 3] =
        [Self::OffsetLogistic, Self::OffsetMlp, Self::SeedMlp];

    /// The configuration of one candidate.
    pub fn config(self, base: &MetaNetConfig) -> MetaNetConfig {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            Self::Auto | Self::OffsetLogistic => MetaNetConfig {
                hidden: vec![],
                inputs: owned(&COMPACT_FEATURES),
                offset: true,
                weight_decay: 1e-2,
                ..base.clone()
            },
            Self::OffsetMlp => MetaNetConfig {
                inputs: Vec::new(),
                offset: true,
                ..base.clone()
            },
            Self::SeedMlp => MetaNetConfig {
                inputs: owned(features::SEED_FAMILIES),
                offset: false,
                ..base.clone()
            },
        }
    }
}

/// The logistic model's features: one or two per signal, so it sees tens of errors per weight.
pub const COMPACT_FEATURES: [&str; 10] = [
    "gap.logit_gap",
    "entropy.entropy_normalised",
    "mc_dropout.mutual_information",
    "gradient.log_grad_norm",
    "knn.mean_distance",
    "knn.predicted_class_distance",
    "knn.log_trust_score",
    "class_knn.log_ratio",
    "class_knn.log_correct_distance",
    "topk.logit_1",
];

/// How the head used at inference is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InferenceHead {
    /// The exact average of the K fold heads: the same kind of head (trained on (K−1)/K of the
    /// rows) that made every training row's features.
    Average,
    /// One head trained on every row (the first protocol): more confident than the heads
    /// that made the training features.
    Full,
}

/// One candidate meta-model on the select rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SelectionRow {
    pub model: String,
    /// AUROC on all select rows (clean and views), on the clean ones, on the views.
    pub auroc_all: Option<f64>,
    pub auroc_clean: Option<f64>,
    pub auroc_views: Option<f64>,
    pub best_epoch: usize,
    pub chosen: bool,
}

pub struct TrainOptions<'a> {
    pub backbone: &'a Backbone,
    pub weights_source: String,
    pub hub_id: Option<String>,
    pub weights_sha256: String,
    pub dataset: &'a Dataset,
    pub split: String,
    /// Use a seeded subset of this many source images.
    pub subset: Option<usize>,
    pub folds: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub head: HeadConfig,
    pub metanet: MetaNetConfig,
    /// Corrupted views per training image (training-only kinds).
    pub views: usize,
    /// Classes left out of training entirely (for the new-class evaluation).
    pub holdout_classes: usize,
    pub meta_model: MetaModelChoice,
    pub inference_head: InferenceHead,
    /// Selective risk the certified threshold guarantees, with probability 1 − delta.
    pub target_risk: f64,
    pub delta: f64,
    pub command: String,
}

/// Progress callback: (stage, done, total).
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// The corruption and seed of view `v` (0 = the clean image).
pub fn view_spec(v: usize, seed: u64) -> (Option<CorruptionSpec>, u64) {
    if v == 0 {
        (None, seed)
    } else {
        (
            Some(CorruptionSpec::TrainingMixed),
            seed.wrapping_add(v as u64),
        )
    }
}

/// Classes held out of training: `k` of them, drawn with `seed` (sorted indices).
pub fn holdout_classes(classes: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..classes).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x401d_0e07));
    let mut held: Vec<usize> = idx.into_iter().take(k.min(classes)).collect();
    held.sort_unstable();
    held
}

/// Per-row data of the training table: one row per (source image, view).
struct Rows {
    source: Vec<u32>,
    view: Vec<u8>,
    dim: usize,
    embeddings: Vec<f32>,
    grad_norms: Vec<f32>,
}

impl Rows {
    fn embedding(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }
}

/// Keeps the sources `keep` accepts and their rows, in order, with sources renumbered.
fn drop_classes(
    sources: Vec<Sample>,
    rows: Rows,
    keep: &dyn Fn(&Sample) -> bool,
) -> (Vec<Sample>, Rows) {
    let mut new_index = vec![None; sources.len()];
    let mut kept = Vec::new();
    for (i, s) in sources.into_iter().enumerate() {
        if keep(&s) {
            new_index[i] = Some(kept.len() as u32);
            kept.push(s);
        }
    }
    let dim = rows.dim;
    let mut out = Rows {
        source: Vec::new(),
        view: Vec::new(),
        dim,
        embeddings: Vec::new(),
        grad_norms: Vec::new(),
    };
    for i in 0..rows.source.len() {
        if let Some(j) = new_index[rows.source[i] as usize] {
            out.source.push(j);
            out.view.push(rows.view[i]);
            out.embeddings.extend_from_slice(rows.embedding(i));
            out.grad_norms.push(rows.grad_norms[i]);
        }
    }
    (kept, out)
}

pub fn train(opts: &TrainOptions, progress: Progress) -> Result<Artifacts> {
    train_with_oof(opts, progress).map(|(artifacts, _)| artifacts)
}

/// [`train`], and the records of the clean training rows as the run saw them: the label trained
/// on, the probabilities and prediction of the fold head that never saw the image, the
/// meta-model's P(correct) and the meta-vector (what `reason train` ranks label issues from
/// and the dashboard shows for the training split).
pub fn train_with_oof(
    opts: &TrainOptions,
    progress: Progress,
) -> Result<(Artifacts, Vec<SampleRecord>)> {
    let ds = opts.dataset;
    if ds.classes.len() < 2 {
        return Err(Error::Dataset {
            path: ds.root.clone(),
            reason: "training needs a labelled dataset with at least two class folders".into(),
        });
    }
    let held = holdout_classes(ds.classes.len(), opts.holdout_classes, opts.seed);
    let kept: Vec<usize> = (0..ds.classes.len())
        .filter(|c| !held.contains(c))
        .collect();
    if kept.len() < 2 {
        return Err(Error::Dataset {
            path: ds.root.clone(),
            reason: format!(
                "holding out {} of {} classes leaves fewer than two to train on",
                held.len(),
                ds.classes.len()
            ),
        });
    }
    let new_label = |l: usize| kept.iter().position(|&c| c == l).map(|p| p as u16);
    let mut timings = Vec::new();
    // Held-out classes are extracted too and dropped after the backbone pass, so runs with and
    // without them share one cache (its entries are chunks of this list).
    let mut labelled: Vec<usize> = (0..ds.samples.len())
        .filter(|&i| ds.samples[i].label.is_some())
        .collect();
    let rows_in_split = labelled
        .iter()
        .filter(|&&i| ds.samples[i].label.is_some_and(|l| new_label(l).is_some()))
        .count();
    if let Some(n) = opts.subset.filter(|&n| n < labelled.len()) {
        labelled.shuffle(&mut StdRng::seed_from_u64(opts.seed ^ 0x5eed_5b5e));
        labelled.truncate(n);
        labelled.sort_unstable();
    }
    let candidates: Vec<Sample> = labelled.iter().map(|&i| ds.samples[i].clone()).collect();
    // Checked before the backbone passes, not found by PCA after minutes of them.
    if candidates.len() < knn::DIM {
        return Err(Error::Dataset {
            path: ds.root.clone(),
            reason: format!(
                "training needs at least {} labelled images (PCA compresses the embeddings to {} \
                 dimensions); this run has {}: add images{}",
                knn::DIM,
                knn::DIM,
                candidates.len(),
                if opts.subset.is_some() {
                    " or raise --subset"
                } else {
                    ""
                }
            ),
        });
    }

    // 1. Backbone passes: the clean images, then each view of the ones that decoded.
    let t = Instant::now();
    let spec = |v: usize| {
        let (corruption, seed) = view_spec(v, opts.seed);
        ExtractSpec {
            backbone: opts.backbone,
            weights_sha256: &opts.weights_sha256,
            corruption,
            seed,
            batch_size: opts.batch_size,
            use_cache: true,
        }
    };
    let chunk = crate::reliability::scoring::CHUNK;
    let clean = spec(0).with_gradients_chunked(&candidates, chunk, &|d, n| {
        progress("backbone (clean)", d, n)
    })?;
    let sources: Vec<Sample> = clean.rows.iter().map(|&r| candidates[r].clone()).collect();
    let truncated: std::collections::HashSet<String> = clean
        .rows
        .iter()
        .zip(&clean.truncated)
        .filter(|(_, &t)| t)
        .map(|(&r, _)| candidates[r].id.clone())
        .collect();
    let n_src = sources.len();
    let dim = clean.dim;
    let mut from_cache = clean.from_cache;
    let mut rows = Rows {
        source: (0..n_src as u32).collect(),
        view: vec![0; n_src],
        dim,
        embeddings: clean.embeddings,
        grad_norms: clean.grad_norms,
    };
    for v in 1..=opts.views {
        let stage = format!("backbone (view {v}/{})", opts.views);
        let out =
            spec(v).with_gradients_chunked(&sources, chunk, &|d, n| progress(&stage, d, n))?;
        if out.rows.len() != n_src {
            return Err(Error::Dataset {
                path: ds.root.clone(),
                reason: format!(
                    "{} images decoded clean but not as view {v}",
                    n_src - out.rows.len()
                ),
            });
        }
        from_cache &= out.from_cache;
        rows.source.extend(out.rows.iter().map(|&r| r as u32));
        rows.view
            .extend(std::iter::repeat_n(v as u8, out.rows.len()));
        rows.embeddings.extend(out.embeddings);
        rows.grad_norms.extend(out.grad_norms);
    }
    let (sources, rows) = drop_classes(sources, rows, &|s: &Sample| {
        s.label.and_then(new_label).is_some()
    });
    let n_src = sources.len();
    let n = rows.source.len();
    timings.push(Timing {
        stage: "backbone".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache,
    });
    let source_label: Vec<u16> = sources
        .iter()
        .map(|s| new_label(s.label.expect("labelled")).expect("kept class"))
        .collect();
    let labels: Vec<u16> = rows
        .source
        .iter()
        .map(|&s| source_label[s as usize])
        .collect();
    let classes = kept.len();

    // 2. Cross-fitted heads on the clean rows, folds of source images, one standardisation.
    let t = Instant::now();
    let folds = opts.folds.max(2);
    let mut fold_of: Vec<usize> = (0..n_src).map(|i| i % folds).collect();
    fold_of.shuffle(&mut StdRng::seed_from_u64(opts.seed));
    let row_fold = |i: usize| fold_of[rows.source[i] as usize];
    let clean_embeddings = &rows.embeddings[..n_src * dim];
    let (mean, std) = column_stats(clean_embeddings, dim);
    let mut oof_logits = vec![Vec::new(); n];
    let mut fold_heads = Vec::with_capacity(folds);
    for k in 0..folds {
        progress("heads", k, folds + 1);
        let train_idx: Vec<usize> = (0..n_src).filter(|&i| fold_of[i] != k).collect();
        let x: Vec<f32> = train_idx
            .iter()
            .flat_map(|&i| rows.embedding(i).to_vec())
            .collect();
        let y: Vec<u16> = train_idx.iter().map(|&i| source_label[i]).collect();
        let head = LinearHead::train_standardised(
            &x,
            dim,
            &y,
            classes,
            &opts.head,
            opts.seed.wrapping_add(k as u64 + 1),
            mean.clone(),
            std.clone(),
        )?;
        for i in (0..n).filter(|&i| row_fold(i) == k) {
            oof_logits[i] = head.logits(rows.embedding(i), None);
        }
        fold_heads.push(head);
    }
    let inference_head = match opts.inference_head {
        InferenceHead::Average => LinearHead::average(&fold_heads).expect("shared standardisation"),
        InferenceHead::Full => LinearHead::train_standardised(
            clean_embeddings,
            dim,
            &source_label,
            classes,
            &opts.head,
            opts.seed,
            mean.clone(),
            std.clone(),
        )?,
    };
    progress("heads", folds + 1, folds + 1);
    // Temperature on the clean OOF rows: the in-distribution held-out set, as usual for TS.
    let temperature = fit_temperature(&oof_logits[..n_src], &source_label);
    let oof_pred: Vec<u16> = oof_logits.iter().map(|z| argmax(z) as u16).collect();
    let correct: Vec<bool> = oof_pred.iter().zip(&labels).map(|(p, l)| p == l).collect();
    timings.push(Timing {
        stage: "heads".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // 3a. MC dropout with each row's OOF head.
    let t = Instant::now();
    let row_id = |i: usize| -> String {
        let id = &sources[rows.source[i] as usize].id;
        match rows.view[i] {
            0 => id.clone(),
            v => format!("{id}#view{v}"),
        }
    };
    let mc: Vec<features::McStats> = (0..n)
        .into_par_iter()
        .map(|i| {
            features::mc_dropout(
                &fold_heads[row_fold(i)],
                rows.embedding(i),
                opts.head.dropout,
                MC_PASSES,
                features::sample_seed(opts.seed, &row_id(i)),
            )
        })
        .collect();
    timings.push(Timing {
        stage: "mc_dropout".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // 3b. PCA and the k-NN bank on the clean training embeddings; the class-aware bank on every
    //     row with its OOF outcome. A row never finds its own image (or its other views).
    let t = Instant::now();
    progress("pca", 0, 1);
    let pca = Pca::fit(clean_embeddings, dim, knn::DIM)?;
    let pca_rows: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|i| pca.transform(rows.embedding(i)))
        .collect();
    let bank = KnnBank::new(
        pca_rows[..n_src].iter().map(|r| knn::to_point(r)).collect(),
        source_label.clone(),
        classes,
    );
    let outcome_bank = OutcomeBank::new(
        pca_rows.iter().map(|r| knn::to_point(r)).collect(),
        oof_pred.clone(),
        correct.clone(),
        rows.source.clone(),
        classes,
    );
    let knn_stats: Vec<(knn::KnnStats, knn::ClassKnnStats)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let p = knn::to_point(&pca_rows[i]);
            let src = rows.source[i];
            (
                bank.query(&p, oof_pred[i], Some(src as usize)),
                outcome_bank.query(&p, oof_pred[i], Some(src)),
            )
        })
        .collect();
    progress("pca", 1, 1);
    timings.push(Timing {
        stage: "pca_knn".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // 3c. Meta-vectors.
    let layout = features::layout(classes);
    let meta_dim = layout.dim();
    let inputs = |i: usize| RowInputs {
        logits: &oof_logits[i],
        mc: mc[i],
        grad_norm: rows.grad_norms[i],
        pca: &pca_rows[i],
        knn: knn_stats[i].0,
        class_knn: knn_stats[i].1,
        temperature,
    };
    let meta: Vec<f32> = (0..n)
        .flat_map(|i| features::meta_vector(&inputs(i)))
        .collect();
    let row = |i: usize| &meta[i * meta_dim..(i + 1) * meta_dim];

    // 4. Roles by source image, stratified by the clean row's OOF outcome.
    let t = Instant::now();
    progress("metanet", 0, 1);
    let source_role = split_roles(&correct[..n_src], opts.seed);
    let role: Vec<u8> = rows
        .source
        .iter()
        .map(|&s| source_role[s as usize])
        .collect();
    let idx =
        |keep: &dyn Fn(usize) -> bool| -> Vec<usize> { (0..n).filter(|&i| keep(i)).collect() };
    let fit = idx(&|i| role[i] == 0);
    let select = idx(&|i| role[i] == 1);
    let select_clean = idx(&|i| role[i] == 1 && rows.view[i] == 0);
    let calib_clean = idx(&|i| role[i] == 2 && rows.view[i] == 0);
    let offset_column = (0..meta_dim)
        .find(|&j| layout.name(j) == Some(features::OFFSET_FEATURE))
        .expect("layout has the softmax offset");

    let auroc_on = |score: &dyn Fn(usize) -> f32, set: &[usize]| -> Option<f64> {
        let s: Vec<f32> = set.iter().map(|&i| score(i)).collect();
        let c: Vec<bool> = set.iter().map(|&i| correct[i]).collect();
        metrics::auroc(&s, &c)
    };
    let select_views: Vec<usize> = select
        .iter()
        .copied()
        .filter(|&i| rows.view[i] > 0)
        .collect();
    let selection_row = |name: &str, score: &dyn Fn(usize) -> f32, epoch: usize| SelectionRow {
        model: name.to_string(),
        auroc_all: auroc_on(score, &select),
        auroc_clean: auroc_on(score, &select_clean),
        auroc_views: auroc_on(score, &select_views),
        best_epoch: epoch,
        chosen: false,
    };
    let mut selection = vec![selection_row(
        "ts-msp (reference)",
        &|i| row(i)[offset_column],
        0,
    )];
    let wanted: Vec<MetaModelChoice> = match opts.meta_model {
        MetaModelChoice::Auto => MetaModelChoice::CANDIDATES.to_vec(),
        one => vec![one],
    };
    let mut fitted = Vec::new();
    for choice in wanted {
        let config = choice.config(&opts.metanet);
        let columns = config
            .input_columns(&layout)
            .map_err(|e| Error::Weights(format!("meta-model {}: {e}", choice.name())))?;
        let (net, report) = MetaNet::train(
            &meta,
            meta_dim,
            &correct,
            &fit,
            &select,
            &config,
            opts.seed,
            &columns,
            config.offset.then_some(offset_column),
        )?;
        selection.push(selection_row(
            choice.name(),
            &|i| net.logit(row(i)),
            report.best_epoch,
        ));
        fitted.push((choice, config, net, report));
    }
    // The best on the select rows (all of them: clean and views); never on evaluation rows.
    let best = (0..fitted.len())
        .max_by(|&a, &b| {
            let key = |k: usize| selection[k + 1].auroc_all.unwrap_or(0.0);
            key(a).total_cmp(&key(b))
        })
        .expect("at least one candidate");
    selection[best + 1].chosen = true;
    let (chosen, metanet_config, mut metanet, report) = fitted.swap_remove(best);
    // Platt scaling on the clean select rows: P(correct) is calibrated for clean data like the
    // training split's (the dashboard's default).
    let platt_logits: Vec<f32> = select_clean
        .iter()
        .map(|&i| metanet.logit(row(i)))
        .collect();
    let platt_correct: Vec<bool> = select_clean.iter().map(|&i| correct[i]).collect();
    metanet.calibrate(&platt_logits, &platt_correct);
    let calib_probs: Vec<f32> = calib_clean
        .iter()
        .map(|&i| metanet.p_correct(row(i)))
        .collect();
    let calib_correct: Vec<bool> = calib_clean.iter().map(|&i| correct[i]).collect();
    // The operating threshold, certified on rows nothing else was fitted or chosen on.
    let certificate =
        certify::learn_then_test(&calib_probs, &calib_correct, opts.target_risk, opts.delta);
    // The published baselines, fitted on the select rows like everything else that is tuned.
    let select_logits: Vec<Vec<f32>> = select.iter().map(|&i| oof_logits[i].clone()).collect();
    let select_correct: Vec<bool> = select.iter().map(|&i| correct[i]).collect();
    let pnorm_p = baselines::choose_pnorm(&select_logits, &select_correct);
    let relu = RelU::fit(
        &select_logits
            .iter()
            .map(|z| softmax64(z))
            .collect::<Vec<_>>(),
        &select_correct,
        baselines::RELU_DEFAULT_LAMBDA,
    );
    progress("metanet", 1, 1);
    timings.push(Timing {
        stage: "metanet".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // Metrics of the run, on rows the meta-model did not fit on.
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: Option<f64>| {
        m.insert(
            k.to_string(),
            v.map_or(serde_json::Value::Null, |v| serde_json::json!(v)),
        );
    };
    let count = |set: &dyn Fn(usize) -> bool| (0..n).filter(|&i| set(i)).count() as f64;
    put(
        "oof_head_accuracy_clean",
        Some(1.0 - count(&|i| rows.view[i] == 0 && !correct[i]) / n_src as f64),
    );
    put(
        "oof_errors_clean",
        Some(count(&|i| rows.view[i] == 0 && !correct[i])),
    );
    put(
        "oof_errors_views",
        Some(count(&|i| rows.view[i] > 0 && !correct[i])),
    );
    put("oof_rows", Some(n as f64));
    put(
        "calibration_rows_errors",
        Some(calib_correct.iter().filter(|&&c| !c).count() as f64),
    );
    put("temperature", Some(temperature as f64));

    let notes = vec![
        format!("Each of {n_src} training images was used clean and as {} corrupted view(s) of the training-only kinds [{}]; `eval` corrupts with the disjoint kinds [{}].", opts.views, CorruptionKind::TRAINING.map(|k| k.name()).join(", "), CorruptionKind::EVALUATION.map(|k| k.name()).join(", ")),
        format!("{folds} heads, each trained on the clean rows of {}/{folds} of the source images, predicted every row of the remaining images (out-of-fold); no image's views straddle folds.", folds - 1),
        match opts.inference_head {
            InferenceHead::Average => "The inference head is the exact average of the fold heads (one shared standardisation): the kind of head that made the training features.".to_string(),
            InferenceHead::Full => "The inference head was trained on every clean row (more confident than the fold heads that made the training features).".to_string(),
        },
        "Every meta-feature of a training row comes from its out-of-fold head; gradient sensitivity is taken through the backbone's own classifier at its predicted class, never the label.".into(),
        "PCA and the k-NN bank were fitted on the clean training embeddings; the class-aware bank holds every row with its out-of-fold outcome; no row finds its own image as a neighbour.".into(),
        format!("Meta-model: candidates fitted on {} rows (fit), compared and early-stopped on {} rows (select; Platt scaling on its {} clean rows); the threshold is certified on {} clean calibration rows that nothing else used.", fit.len(), select.len(), select_clean.len(), calib_clean.len()),
        "Temperature of the head: fitted on the clean out-of-fold rows.".into(),
        "The evaluation split is never used by `reason train`.".into(),
    ];
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        reason_version: env!("CARGO_PKG_VERSION").to_string(),
        command: opts.command.clone(),
        backbone: BackboneInfo {
            name: opts.backbone.kind.name().to_string(),
            weights_source: opts.weights_source.clone(),
            hub_id: opts.hub_id.clone(),
            weights_sha256: opts.weights_sha256.clone(),
            preprocess: opts.backbone.kind.preprocess(),
            embedding_dim: dim,
        },
        classes: kept.iter().map(|&c| ds.classes[c].clone()).collect(),
        class_names: kept.iter().map(|&c| ds.class_name(c).to_string()).collect(),
        layout,
        head: opts.head.clone(),
        metanet: metanet_config,
        metanet_training: report,
        metanet_layers: metanet.layers.len(),
        protocol: Protocol {
            split: opts.split.clone(),
            rows_used: n_src,
            rows_in_split,
            subset_seed: opts
                .subset
                .filter(|&s| s < rows_in_split)
                .map(|_| opts.seed),
            folds,
            seed: opts.seed,
            metanet_fit_rows: fit.len(),
            metanet_stop_rows: select.len(),
            calibration_rows: calib_clean.len(),
            mc_passes: MC_PASSES,
            mc_dropout: opts.head.dropout,
            knn_k: knn::K,
            pca_components: knn::DIM,
            pca_explained_variance: pca.explained_variance_ratio.iter().sum(),
            views: opts.views,
            training_corruptions: CorruptionKind::TRAINING
                .iter()
                .map(|k| k.name().to_string())
                .collect(),
            holdout_classes: held.iter().map(|&c| ds.classes[c].clone()).collect(),
            inference_head: opts.inference_head,
            meta_model: chosen.name().to_string(),
            meta_model_requested: opts.meta_model.name().to_string(),
            selection,
            notes,
        },
        calibration: Calibration {
            temperature,
            threshold: certificate.threshold,
            target_risk: opts.target_risk as f32,
            certificate,
            pnorm_p,
            relu_lambda: baselines::RELU_DEFAULT_LAMBDA,
        },
        metrics: m,
        timings,
    };
    let oof_records: Vec<SampleRecord> = (0..n_src)
        .map(|i| SampleRecord {
            id: sources[i].id.clone(),
            label: Some(source_label[i]),
            pred: oof_pred[i],
            probs: softmax64(&oof_logits[i])
                .into_iter()
                .map(|p| p as f32)
                .collect(),
            p_correct: metanet.p_correct(row(i)),
            diagnostics: features::diagnostics(&inputs(i)),
            meta: row(i).to_vec(),
            truncated: truncated.contains(&sources[i].id),
        })
        .collect();
    let artifacts = Artifacts {
        manifest,
        head: inference_head,
        metanet,
        pca,
        bank,
        outcome_bank,
        relu,
        train_meta: TrainMeta {
            rows: meta,
            correct,
            role,
            source: rows.source,
            view: rows.view,
        },
        // The bank rows are the clean sources, in order.
        bank_paths: Some(BankPaths::new(
            &ds.root,
            &opts.split,
            sources.iter().map(|s| s.id.as_str()),
        )),
    };
    Ok((artifacts, oof_records))
}

/// 0 = fit (70 %), 1 = early stopping (15 %), 2 = calibration (15 %), stratified by
/// correctness and seeded.
fn split_roles(correct: &[bool], seed: u64) -> Vec<u8> {
    let mut role = vec![0u8; correct.len()];
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00c0_ffee);
    for outcome in [true, false] {
        let mut idx: Vec<usize> = (0..correct.len())
            .filter(|&i| correct[i] == outcome)
            .collect();
        idx.shuffle(&mut rng);
        let m = idx.len();
        for (j, &i) in idx.iter().enumerate() {
            role[i] = if j * 100 < m * 70 {
                0
            } else if j * 100 < m * 85 {
                1
            } else {
                2
            };
        }
    }
    role
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_classes_are_seeded_distinct_and_sorted() {
        let a = holdout_classes(10, 2, 0);
        assert_eq!(a.len(), 2);
        assert!(a[0] < a[1] && a[1] < 10);
        assert_eq!(a, holdout_classes(10, 2, 0));
        assert!((1..20).any(|s| holdout_classes(10, 2, s) != a));
        assert!(holdout_classes(10, 0, 3).is_empty());
        assert_eq!(holdout_classes(3, 9, 1), vec![0, 1, 2]);
    }

    #[test]
    fn dropping_classes_keeps_every_view_of_the_kept_images_in_order() {
        let sample = |id: &str, label| Sample {
            id: id.into(),
            path: id.into(),
            label: Some(label),
        };
        let sources = vec![sample("a", 0), sample("b", 1), sample("c", 0)];
        // Clean rows first (sources 0, 1, 2), then one view of each; embeddings name the row.
        let rows = Rows {
            source: vec![0, 1, 2, 0, 1, 2],
            view: vec![0, 0, 0, 1, 1, 1],
            dim: 1,
            embeddings: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            grad_norms: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        };
        let (kept, rows) = drop_classes(sources, rows, &|s: &Sample| s.label == Some(0));
        assert_eq!(
            kept.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(rows.source, [0, 1, 0, 1]);
        assert_eq!(rows.view, [0, 0, 1, 1]);
        assert_eq!(rows.embeddings, [0.0, 2.0, 3.0, 5.0]);
    }

    #[test]
    fn views_are_clean_first_then_training_kinds_with_their_own_seed() {
        assert_eq!(view_spec(0, 7), (None, 7));
        assert_eq!(view_spec(2, 7), (Some(CorruptionSpec::TrainingMixed), 9));
    }

    #[test]
    fn roles_are_stratified_and_disjoint() {
        let correct: Vec<bool> = (0..1000).map(|i| i % 10 != 0).collect();
        let role = split_roles(&correct, 1);
        for r in 0..3u8 {
            let errors = (0..1000).filter(|&i| role[i] == r && !correct[i]).count();
            let expected = [70, 15, 15][r as usize];
            assert_eq!(errors, expected, "role {r}");
        }
    }
}

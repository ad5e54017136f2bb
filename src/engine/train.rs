//! `reason train`: the cross-fitted reliability pipeline (GUIDE §3–§6).
//!
//! 1. Embeddings of the training rows (cached).
//! 2. K heads on K−1 folds predict the held-out fold: every row gets an out-of-fold (OOF)
//!    prediction; the final head is trained on all rows.
//! 3. Meta-features of every row from its OOF head: entropy, gap, top-k, MC dropout, gradient
//!    sensitivity (a second backbone pass through that head), PCA, k-NN (self excluded).
//! 4. The MetaNet on the OOF rows, split into fit / early-stop / calibration groups;
//!    temperature of the head on the OOF logits; the operating threshold on the calibration rows.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::engine::artifacts::{
    Artifacts, BackboneInfo, Calibration, Manifest, Protocol, Timing, TrainMeta, FORMAT_VERSION,
};
use crate::engine::backbone::Backbone;
use crate::engine::dataset::{Dataset, Sample};
use crate::engine::error::{Error, Result};
use crate::engine::extract::ExtractSpec;
use crate::engine::features::{self, RowInputs, MC_PASSES};
use crate::engine::head::{fit_temperature, HeadConfig, LinearHead};
use crate::engine::knn::{self, KnnBank};
use crate::engine::metanet::{MetaNet, MetaNetConfig};
use crate::engine::metrics;
use crate::engine::pca::Pca;

pub struct TrainOptions<'a> {
    pub backbone: &'a Backbone,
    pub weights_source: String,
    pub hub_id: Option<String>,
    pub weights_sha256: String,
    pub dataset: &'a Dataset,
    pub split: String,
    /// Use a seeded subset of this many rows (every family computed for every row used).
    pub subset: Option<usize>,
    pub folds: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub head: HeadConfig,
    pub metanet: MetaNetConfig,
    /// Selective risk the operating threshold aims for on the calibration rows.
    pub target_risk: f32,
    pub command: String,
}

/// Progress callback: (stage, done, total).
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

pub fn train(opts: &TrainOptions, progress: Progress) -> Result<Artifacts> {
    let ds = opts.dataset;
    if ds.classes.len() < 2 {
        return Err(Error::Dataset {
            path: ds.root.clone(),
            reason: "training needs a labelled dataset with at least two class folders".into(),
        });
    }
    let mut timings = Vec::new();
    let mut labelled: Vec<usize> = (0..ds.samples.len())
        .filter(|&i| ds.samples[i].label.is_some())
        .collect();
    let rows_in_split = labelled.len();
    if let Some(n) = opts.subset.filter(|&n| n < labelled.len()) {
        labelled.shuffle(&mut StdRng::seed_from_u64(opts.seed ^ 0x5eed_5b5e));
        labelled.truncate(n);
        labelled.sort_unstable();
    }
    let samples: Vec<Sample> = labelled.iter().map(|&i| ds.samples[i].clone()).collect();
    let spec = ExtractSpec {
        backbone: opts.backbone,
        weights_sha256: &opts.weights_sha256,
        corruption: None,
        seed: opts.seed,
        batch_size: opts.batch_size,
        use_cache: true,
    };

    // 1. Embeddings.
    let t = Instant::now();
    let extracted = spec.embeddings(&samples, &|d, n| progress("embeddings", d, n))?;
    timings.push(Timing {
        stage: "embeddings".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: samples.len(),
        from_cache: extracted.from_cache,
    });
    let rows: Vec<&Sample> = extracted.rows.iter().map(|&r| &samples[r]).collect();
    let n = rows.len();
    let dim = extracted.dim;
    let labels: Vec<u16> = rows
        .iter()
        .map(|s| s.label.expect("labelled") as u16)
        .collect();
    let classes = ds.classes.len();

    // 2. Cross-fitted heads.
    let t = Instant::now();
    let folds = opts.folds.max(2);
    let mut fold_of: Vec<usize> = (0..n).map(|i| i % folds).collect();
    fold_of.shuffle(&mut StdRng::seed_from_u64(opts.seed));
    let mut oof_logits = vec![Vec::new(); n];
    let mut fold_heads = Vec::with_capacity(folds);
    for k in 0..folds {
        progress("heads", k, folds + 1);
        let train_idx: Vec<usize> = (0..n).filter(|&i| fold_of[i] != k).collect();
        let x: Vec<f32> = train_idx
            .iter()
            .flat_map(|&i| extracted.embedding(i).to_vec())
            .collect();
        let y: Vec<u16> = train_idx.iter().map(|&i| labels[i]).collect();
        let head = LinearHead::train(
            &x,
            dim,
            &y,
            classes,
            &opts.head,
            opts.seed.wrapping_add(k as u64 + 1),
        )?;
        for i in (0..n).filter(|&i| fold_of[i] == k) {
            oof_logits[i] = head.logits(extracted.embedding(i), None);
        }
        fold_heads.push(head);
    }
    let final_head = LinearHead::train(
        &extracted.embeddings,
        dim,
        &labels,
        classes,
        &opts.head,
        opts.seed,
    )?;
    progress("heads", folds + 1, folds + 1);
    let temperature = fit_temperature(&oof_logits, &labels);
    let oof_pred: Vec<u16> = oof_logits
        .iter()
        .map(|z| features::argmax(z) as u16)
        .collect();
    let correct: Vec<bool> = oof_pred.iter().zip(&labels).map(|(p, l)| p == l).collect();
    timings.push(Timing {
        stage: "heads".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // 3a. MC dropout with each row's OOF head.
    let t = Instant::now();
    let mc: Vec<features::McStats> = (0..n)
        .into_par_iter()
        .map(|i| {
            let head = &fold_heads[fold_of[i]];
            features::mc_dropout(
                head,
                extracted.embedding(i),
                opts.head.dropout,
                MC_PASSES,
                features::sample_seed(opts.seed, &rows[i].id),
            )
        })
        .collect();
    timings.push(Timing {
        stage: "mc_dropout".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // 3b. Gradient sensitivity through each row's OOF head, one backbone pass per fold.
    let t = Instant::now();
    let mut grad_norm = vec![0f32; n];
    let mut gradients_cached = true;
    for (k, head) in fold_heads.iter().enumerate() {
        let members: Vec<usize> = (0..n).filter(|&i| fold_of[i] == k).collect();
        let fold_samples: Vec<Sample> = members.iter().map(|&i| rows[i].clone()).collect();
        let stage = format!("gradients (fold {}/{folds})", k + 1);
        let out = spec.with_gradients(&fold_samples, head, &|d, m| progress(&stage, d, m))?;
        if out.rows.len() != members.len() {
            return Err(Error::Dataset {
                path: ds.root.clone(),
                reason: format!(
                    "{} images changed between the two backbone passes",
                    members.len() - out.rows.len()
                ),
            });
        }
        gradients_cached &= out.from_cache;
        for (r, g) in out.rows.iter().zip(&out.grad_norms) {
            grad_norm[members[*r]] = *g;
        }
    }
    timings.push(Timing {
        stage: "gradients".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: gradients_cached,
    });

    // 3c. PCA and the k-NN bank, fitted on the training embeddings only.
    let t = Instant::now();
    progress("pca", 0, 1);
    let pca = Pca::fit(&extracted.embeddings, dim, knn::DIM)?;
    let pca_rows: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|i| pca.transform(extracted.embedding(i)))
        .collect();
    let bank = KnnBank::new(
        pca_rows.iter().map(|r| knn::to_point(r)).collect(),
        labels.clone(),
        classes,
    );
    let knn_stats: Vec<knn::KnnStats> = (0..n)
        .into_par_iter()
        .map(|i| bank.query(&knn::to_point(&pca_rows[i]), oof_pred[i], Some(i)))
        .collect();
    progress("pca", 1, 1);
    timings.push(Timing {
        stage: "pca_knn".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // 3d. Meta-vectors.
    let layout = features::layout(classes);
    let meta_dim = layout.dim();
    let meta: Vec<f32> = (0..n)
        .flat_map(|i| {
            features::meta_vector(&RowInputs {
                logits: &oof_logits[i],
                mc: mc[i],
                grad_norm: grad_norm[i],
                pca: &pca_rows[i],
                knn: knn_stats[i],
            })
        })
        .collect();

    // 4. MetaNet on OOF rows: 70 % fit, 15 % early stopping, 15 % calibration, stratified by
    //    correctness so every group sees errors.
    let t = Instant::now();
    progress("metanet", 0, 1);
    let role = split_roles(&correct, opts.seed);
    let idx = |r: u8| -> Vec<usize> { (0..n).filter(|&i| role[i] == r).collect() };
    let (fit, stop, calib) = (idx(0), idx(1), idx(2));
    let (mut metanet, report) = MetaNet::train(
        &meta,
        meta_dim,
        &correct,
        &fit,
        &stop,
        &opts.metanet,
        opts.seed,
    )?;
    let row = |i: usize| &meta[i * meta_dim..(i + 1) * meta_dim];
    let calib_logits: Vec<f32> = calib.iter().map(|&i| metanet.logit(row(i))).collect();
    let calib_correct: Vec<bool> = calib.iter().map(|&i| correct[i]).collect();
    metanet.calibrate(&calib_logits, &calib_correct);
    let calib_scores: Vec<f32> = calib
        .iter()
        .map(|&i| metanet.calibrated_logit(row(i)))
        .collect();
    let calib_probs: Vec<f32> = calib.iter().map(|&i| metanet.p_correct(row(i))).collect();
    let threshold = threshold_for_risk(&calib_probs, &calib_correct, opts.target_risk);
    progress("metanet", 1, 1);
    timings.push(Timing {
        stage: "metanet".into(),
        seconds: t.elapsed().as_secs_f64(),
        images: n,
        from_cache: false,
    });

    // Metrics of the run, on rows the MetaNet did not fit on.
    let calib_msp: Vec<f32> = calib
        .iter()
        .map(|&i| {
            features::baseline_scores(
                &RowInputs {
                    logits: &oof_logits[i],
                    mc: mc[i],
                    grad_norm: grad_norm[i],
                    pca: &pca_rows[i],
                    knn: knn_stats[i],
                },
                temperature,
            )[0]
        })
        .collect();
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: Option<f64>| {
        m.insert(
            k.to_string(),
            v.map_or(serde_json::Value::Null, |v| serde_json::json!(v)),
        );
    };
    put(
        "oof_head_accuracy",
        Some(correct.iter().filter(|&&c| c).count() as f64 / n as f64),
    );
    put(
        "oof_errors",
        Some(correct.iter().filter(|&&c| !c).count() as f64),
    );
    put(
        "calibration_rows_auroc_metanet",
        metrics::auroc(&calib_scores, &calib_correct),
    );
    put(
        "calibration_rows_auroc_msp",
        metrics::auroc(&calib_msp, &calib_correct),
    );
    put(
        "calibration_rows_errors",
        Some(calib_correct.iter().filter(|&&c| !c).count() as f64),
    );
    put("temperature", Some(temperature as f64));

    let notes = vec![
        format!("{folds} heads, each trained on {}/{folds} of the rows, predicted the remaining fold (out-of-fold); the final head was trained on all rows.", folds - 1),
        "Every meta-feature of a training row comes from its out-of-fold head; gradient sensitivity uses the head's predicted class, never the label.".into(),
        "PCA and the k-NN bank were fitted on the training embeddings; a training row is never its own neighbour.".into(),
        format!("MetaNet: fitted on {} out-of-fold rows, early-stopped on {}, Platt-calibrated and thresholded on {} (disjoint, stratified by correctness).", fit.len(), stop.len(), calib.len()),
        "Temperature of the head: fitted on the out-of-fold logits of all training rows.".into(),
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
        classes: ds.classes.clone(),
        class_names: (0..classes).map(|c| ds.class_name(c).to_string()).collect(),
        layout,
        head: opts.head.clone(),
        metanet: opts.metanet.clone(),
        metanet_training: report,
        metanet_layers: metanet.layers.len(),
        protocol: Protocol {
            split: opts.split.clone(),
            rows_used: n,
            rows_in_split,
            subset_seed: opts
                .subset
                .filter(|&s| s < rows_in_split)
                .map(|_| opts.seed),
            folds,
            seed: opts.seed,
            metanet_fit_rows: fit.len(),
            metanet_stop_rows: stop.len(),
            calibration_rows: calib.len(),
            mc_passes: MC_PASSES,
            mc_dropout: opts.head.dropout,
            knn_k: knn::K,
            pca_components: knn::DIM,
            pca_explained_variance: pca.explained_variance_ratio.iter().sum(),
            notes,
        },
        calibration: Calibration {
            temperature,
            threshold,
            target_risk: opts.target_risk,
        },
        metrics: m,
        timings,
    };
    Ok(Artifacts {
        manifest,
        head: final_head,
        metanet,
        pca,
        bank,
        train_meta: TrainMeta {
            rows: meta,
            correct,
            role,
        },
    })
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

/// The lowest threshold on P(correct) whose selective risk on these rows is at most
/// `target_risk` (0.5 when no threshold reaches it).
pub fn threshold_for_risk(probs: &[f32], correct: &[bool], target_risk: f32) -> f32 {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut best = None;
    let mut errors = 0usize;
    let mut k = 0;
    while k < order.len() {
        // Whole tie groups at once: a threshold accepts all equal scores.
        let value = probs[order[k]];
        while k < order.len() && probs[order[k]] == value {
            errors += usize::from(!correct[order[k]]);
            k += 1;
        }
        if errors as f32 / k as f32 <= target_risk {
            best = Some(value);
        }
    }
    best.unwrap_or(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn threshold_is_the_lowest_meeting_the_risk() {
        let probs = [0.9, 0.8, 0.7, 0.6, 0.5];
        let correct = [true, true, false, true, false];
        // Risks going down the list: 0, 0, 1/3, 1/4, 2/5.
        assert_eq!(threshold_for_risk(&probs, &correct, 0.0), 0.8);
        assert_eq!(threshold_for_risk(&probs, &correct, 0.3), 0.6);
        assert_eq!(threshold_for_risk(&probs, &correct, 0.5), 0.5);
        assert_eq!(threshold_for_risk(&[0.4], &[false], 0.1), 0.5);
    }
}

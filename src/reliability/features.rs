//! The meta-feature families and their one named layout.
//!
//! For logits z over C classes, p = softmax(z), ŷ = argmax p:
//! - `entropy`: H(p) and H(p) / ln C
//! - `gap`: z₍₁₎ − z₍₂₎ and p₍₁₎ − p₍₂₎
//! - `topk`: the k largest logits, sorted (k = min(5, C))
//! - `mc_dropout`: over T dropout passes of the head on the cached embedding: mean and variance
//!   of p_ŷ, mean entropy, mutual information H(mean p) − mean H(p)
//! - `gradient`: ln ‖∂ log p_ŷ / ∂x‖₂ w.r.t. the normalised input image
//! - `pca`: the embedding's first `knn::DIM` principal components
//! - `knn`: mean and k-th distance to the reference bank, distance to the nearest sample of the
//!   predicted class, ln trust score
//! - `class_knn`: ln mean distance to the k nearest training rows predicted as ŷ correctly, the
//!   same to those predicted as ŷ wrongly, and their difference (class-aware distance)
//! - `softmax`: logit of the temperature-scaled MSP, the offset the meta-model starts from

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::head::LinearHead;
use crate::reliability::baselines::{maxlogit_pnorm, RelU};
use crate::reliability::knn::{self, ClassKnnStats, KnnStats};
use crate::reliability::records::{Diagnostics, FeatureBlock, FeatureLayout};
use crate::support::hash;
use crate::support::math::{argmax, softmax64, top_k};

pub const TOP_K: usize = 5;
pub const MC_PASSES: usize = 20;

/// Family names, in layout order.
pub const FAMILIES: [&str; 9] = [
    "entropy",
    "gap",
    "topk",
    "mc_dropout",
    "gradient",
    "pca",
    "knn",
    "class_knn",
    "softmax",
];

/// The seven families the first MetaNet used (its configuration stays reproducible).
pub const SEED_FAMILIES: &[&str] = FAMILIES.split_at(7).0;

/// The meta-vector column the offset meta-models start from: logit(TS-MSP).
pub const OFFSET_FEATURE: &str = "softmax.logit_ts_msp";

pub fn layout(classes: usize) -> FeatureLayout {
    let top_k = TOP_K.min(classes);
    let names: [Vec<String>; 9] = [
        vec!["entropy".into(), "entropy_normalised".into()],
        vec!["logit_gap".into(), "prob_margin".into()],
        (1..=top_k).map(|i| format!("logit_{i}")).collect(),
        vec![
            "mean_p_pred".into(),
            "var_p_pred".into(),
            "mean_entropy".into(),
            "mutual_information".into(),
        ],
        vec!["log_grad_norm".into()],
        (1..=knn::DIM).map(|i| format!("pc{i}")).collect(),
        vec![
            "mean_distance".into(),
            "kth_distance".into(),
            "predicted_class_distance".into(),
            "log_trust_score".into(),
        ],
        vec![
            "log_correct_distance".into(),
            "log_wrong_distance".into(),
            "log_ratio".into(),
        ],
        vec!["logit_ts_msp".into()],
    ];
    let mut offset = 0;
    let blocks = FAMILIES
        .iter()
        .zip(names)
        .map(|(family, names)| {
            let block = FeatureBlock {
                family: family.to_string(),
                names: names.iter().map(|n| format!("{family}.{n}")).collect(),
                offset,
            };
            offset += names.len();
            block
        })
        .collect();
    FeatureLayout { blocks }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct McStats {
    pub mean_p_pred: f32,
    pub var_p_pred: f32,
    pub mean_entropy: f32,
    pub mutual_information: f32,
}

fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&v| v > 0.0)
        .map(|v| v * v.ln())
        .sum::<f64>()
}

/// A stable per-sample seed, so MC dropout does not depend on batch order.
pub fn sample_seed(seed: u64, id: &str) -> u64 {
    hash::fnv1a(id.as_bytes(), hash::FNV_OFFSET ^ seed)
}

/// MC dropout over one cached embedding.
pub fn mc_dropout(
    head: &LinearHead,
    embedding: &[f32],
    rate: f32,
    passes: usize,
    seed: u64,
) -> McStats {
    let predicted = argmax(&head.logits(embedding, None));
    let keep = 1.0 - rate;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mask = vec![0f32; head.dim];
    let mut p_pred = Vec::with_capacity(passes);
    let mut entropies = Vec::with_capacity(passes);
    let mut mean_p = vec![0f64; head.classes];
    for _ in 0..passes {
        for m in mask.iter_mut() {
            *m = if rng.random::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            };
        }
        let p = softmax64(&head.logits(embedding, Some(&mask)));
        p_pred.push(p[predicted]);
        entropies.push(entropy(&p));
        for (m, v) in mean_p.iter_mut().zip(&p) {
            *m += v / passes as f64;
        }
    }
    let t = passes.max(1) as f64;
    let mean = p_pred.iter().sum::<f64>() / t;
    let var = p_pred.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t;
    let mean_entropy = entropies.iter().sum::<f64>() / t;
    McStats {
        mean_p_pred: mean as f32,
        var_p_pred: var as f32,
        mean_entropy: mean_entropy as f32,
        mutual_information: (entropy(&mean_p) - mean_entropy).max(0.0) as f32,
    }
}

/// Everything the meta-vector is made of, for one sample.
pub struct RowInputs<'a> {
    pub logits: &'a [f32],
    pub mc: McStats,
    pub grad_norm: f32,
    pub pca: &'a [f32],
    pub knn: KnnStats,
    pub class_knn: ClassKnnStats,
    /// The head's softmax temperature (for the `softmax` family).
    pub temperature: f32,
}

/// logit(p_max) of softmax(z / T), computed as −ln Σ_{j≠max} exp((z_j − z_max)/T) so it stays
/// finite where p_max rounds to 1.
pub fn logit_max_softmax(z: &[f32], temperature: f32) -> f64 {
    let order = top_k(z, z.len());
    if order.len() < 2 {
        return f64::from(f32::MAX);
    }
    let max = z[order[0]] as f64;
    let t = temperature.max(1e-6) as f64;
    let rest: Vec<f64> = order[1..]
        .iter()
        .map(|&j| (z[j] as f64 - max) / t)
        .collect();
    let m = rest.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    -(m + rest.iter().map(|v| (v - m).exp()).sum::<f64>().ln())
}

/// The meta-vector in `layout` order.
pub fn meta_vector(row: &RowInputs) -> Vec<f32> {
    let z = row.logits;
    let c = z.len();
    let p = softmax64(z);
    let order = top_k(z, c);
    let h = entropy(&p);
    let second = |v: &dyn Fn(usize) -> f64| if c > 1 { v(order[1]) } else { 0.0 };
    let mut out = vec![
        h as f32,
        (h / (c.max(2) as f64).ln()) as f32,
        (z[order[0]] as f64 - second(&|i| z[i] as f64)) as f32,
        (p[order[0]] - second(&|i| p[i])) as f32,
    ];
    out.extend(order.iter().take(TOP_K.min(c)).map(|&i| z[i]));
    out.extend([
        row.mc.mean_p_pred,
        row.mc.var_p_pred,
        row.mc.mean_entropy,
        row.mc.mutual_information,
    ]);
    out.push((row.grad_norm.max(1e-12) as f64).ln() as f32);
    out.extend((0..knn::DIM).map(|i| row.pca.get(i).copied().unwrap_or(0.0)));
    out.extend([
        row.knn.mean_distance,
        row.knn.kth_distance,
        row.knn.predicted_class_distance,
        (row.knn.trust_score.max(1e-12) as f64).ln() as f32,
    ]);
    let ln = |d: f32| (d as f64 + 1e-6).ln() as f32;
    out.extend([
        ln(row.class_knn.correct_distance),
        ln(row.class_knn.wrong_distance),
        row.class_knn.score(),
    ]);
    out.push(logit_max_softmax(z, row.temperature) as f32);
    out
}

pub fn diagnostics(row: &RowInputs) -> Diagnostics {
    let p = softmax64(row.logits);
    let order = top_k(row.logits, row.logits.len());
    let gap = if order.len() > 1 {
        row.logits[order[0]] - row.logits[order[1]]
    } else {
        0.0
    };
    Diagnostics {
        msp: p[order[0]] as f32,
        entropy: entropy(&p) as f32,
        logit_gap: gap,
        mc_variance: row.mc.var_p_pred,
        grad_sensitivity: row.grad_norm,
        knn_distance: row.knn.mean_distance,
        trust_score: row.knn.trust_score,
    }
}

/// The baseline confidence scores (higher = more likely correct), computed from the same rows
/// as the meta-model. Probabilities are ranked in log space where float32 softmax would
/// saturate at 1.0.
pub const BASELINES: [&str; 13] = [
    "msp",
    "msp_temperature",
    "neg_entropy",
    "margin",
    "max_logit",
    "energy",
    "doctor",
    "mc_dropout_mean",
    "neg_knn_distance",
    "trust_score",
    "maxlogit_pnorm",
    "rel_u",
    "class_knn",
];

/// What the fitted baselines need: each is fitted on held-out training-side rows by `train`.
pub struct BaselineParams<'a> {
    pub temperature: f32,
    /// MaxLogit-pNorm's p.
    pub pnorm_p: f64,
    /// REL-U's matrix.
    pub relu: &'a RelU,
}

pub fn baseline_scores(row: &RowInputs, params: &BaselineParams) -> [f32; 13] {
    let temperature = params.temperature;
    let z = row.logits;
    let order = top_k(z, z.len());
    let log_max_softmax = |t: f64| -> f64 {
        let max = z[order[0]] as f64;
        // log p_max = −ln(1 + Σ_{j≠max} exp((z_j − z_max)/T)), exact near p_max = 1.
        let rest: f64 = order[1..]
            .iter()
            .map(|&j| ((z[j] as f64 - max) / t).exp())
            .sum();
        -rest.ln_1p()
    };
    let p = softmax64(z);
    let max = z[order[0]] as f64;
    let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    let margin = if order.len() > 1 {
        p[order[0]] - p[order[1]]
    } else {
        1.0
    };
    [
        log_max_softmax(1.0) as f32,
        log_max_softmax(temperature as f64) as f32,
        -entropy(&p) as f32,
        margin as f32,
        max as f32,
        lse as f32,
        // DOCTOR's g(x) = Σ p², i.e. minus its uncertainty 1 − Σ p².
        (p.iter().map(|v| v * v).sum::<f64>() - 1.0) as f32,
        row.mc.mean_p_pred,
        -row.knn.mean_distance,
        row.knn.trust_score,
        maxlogit_pnorm(z, params.pnorm_p),
        params.relu.score(&p),
        row.class_knn.score(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(logits: &[f32]) -> RowInputs<'_> {
        RowInputs {
            logits,
            mc: McStats::default(),
            grad_norm: 2.0,
            pca: &[1.0, 2.0],
            knn: KnnStats {
                mean_distance: 3.0,
                kth_distance: 4.0,
                predicted_class_distance: 1.0,
                trust_score: 2.0,
            },
            class_knn: ClassKnnStats {
                correct_distance: 1.0,
                wrong_distance: 4.0,
            },
            temperature: 1.0,
        }
    }

    #[test]
    fn layout_names_every_dimension_of_the_meta_vector() {
        let l = layout(10);
        let v = meta_vector(&inputs(&[
            3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0,
        ]));
        assert_eq!(l.dim(), v.len());
        assert_eq!(l.dim(), 2 + 2 + 5 + 4 + 1 + knn::DIM + 4 + 3 + 1);
        // logit(MSP) of [3, 1, 0, ..., -1] at T = 1 is −ln Σ_{j≠max} e^{z_j − 3}.
        let rest: f64 = [1.0f64, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]
            .iter()
            .map(|z| (z - 3.0).exp())
            .sum();
        assert!((v[v.len() - 1] as f64 + rest.ln()).abs() < 1e-5);
        assert!((v[v.len() - 2] - (4f32).ln()).abs() < 1e-4);
        assert_eq!(l.name(0), Some("entropy.entropy"));
        assert_eq!(l.family_of(13), Some("gradient"));
        assert_eq!(v[13], 2f32.ln());
        assert_eq!(v[2], 2.0); // logit gap
        assert_eq!(&v[4..9], &[3.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(layout(3).dim(), 2 + 2 + 3 + 4 + 1 + knn::DIM + 4 + 3 + 1);
    }

    #[test]
    fn baselines_rank_a_confident_row_above_an_unsure_one() {
        let relu = RelU::fit(
            &[vec![0.5, 0.5, 0.0], vec![1.0, 0.0, 0.0]],
            &[false, true],
            0.5,
        );
        let params = BaselineParams {
            temperature: 1.0,
            pnorm_p: 2.0,
            relu: &relu,
        };
        let sure = baseline_scores(&inputs(&[30.0, 0.0, 0.0]), &params);
        let unsure = baseline_scores(&inputs(&[1.0, 0.9, 0.8]), &params);
        for i in (0..7).chain([10, 11]) {
            assert!(
                sure[i] > unsure[i],
                "{} {} vs {}",
                BASELINES[i],
                sure[i],
                unsure[i]
            );
        }
        // Saturated softmax still ranks: log p_max keeps the difference float32 p_max loses.
        let relu2 = RelU::fit(&[vec![0.5, 0.5]], &[false], 0.5);
        let params2 = BaselineParams {
            relu: &relu2,
            ..params
        };
        let a = baseline_scores(&inputs(&[40.0, 0.0]), &params2)[0];
        let b = baseline_scores(&inputs(&[50.0, 0.0]), &params2)[0];
        assert!(b > a, "{a} {b}");
    }

    #[test]
    fn mc_dropout_is_deterministic_per_sample_and_zero_rate_has_no_variance() {
        let head = LinearHead {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
            weight: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            bias: vec![0.0, 0.0],
            classes: 2,
            dim: 3,
        };
        let e = [2.0, 1.0, 0.5];
        let a = mc_dropout(&head, &e, 0.5, 20, sample_seed(1, "x.jpg"));
        let b = mc_dropout(&head, &e, 0.5, 20, sample_seed(1, "x.jpg"));
        assert_eq!(a, b);
        assert!(a.var_p_pred > 0.0);
        let none = mc_dropout(&head, &e, 0.0, 20, 3);
        assert!(none.var_p_pred < 1e-12);
        assert!(none.mutual_information.abs() < 1e-9);
    }
}

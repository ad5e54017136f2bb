//! Two published post-hoc confidence scores that beat plain softmax confidence (MSP) without
//! retraining, each fitted on held-out calibration rows. Both follow REASON's convention:
//! **higher = more likely correct**.
//!
//! * **MaxLogit-pNorm** (Cattelan & Silva, "How to Fix a Broken Confidence Estimator:
//!   Evaluating Post-hoc Methods for Selective Classification with Deep Neural Networks",
//!   UAI 2024): max_k (z_k − μ(z)) / ‖z − μ(z)‖_p, with p chosen by grid search on held-out AURC.
//! * **REL-U** (Gomes, Romanelli, Picot, Pichler & Piantanida, "A Data-Driven Measure of
//!   Relative Uncertainty for Misclassification Detection", ICLR 2024): the uncertainty pᵀDp
//!   with a C×C matrix D fitted in closed form from held-out probability vectors.
//!
//! Both follow the authors' reference implementations (noted at each item). All arithmetic is
//! in `f64`; scores are returned as `f32` like every other score in REASON.

use crate::metrics;

// ---------------------------------------------------------------------------------------------
// MaxLogit-pNorm
// ---------------------------------------------------------------------------------------------

/// Smallest norm divided by, as in the reference code (`torch.nn.functional.normalize`, whose
/// default eps is 1e-12): constant logits give a score of 0 instead of 0/0.
const NORM_EPS: f64 = 1e-12;

/// The p values searched by [`choose_pnorm`], in order of preference on ties: the authors'
/// grid 0..=8 (p = 0 meaning no normalisation, i.e. the max centred logit) extended to 10,
/// and p = ∞.
pub const PNORM_CANDIDATES: [f64; 12] = [
    0.0,
    1.0,
    2.0,
    3.0,
    4.0,
    5.0,
    6.0,
    7.0,
    8.0,
    9.0,
    10.0,
    f64::INFINITY,
];

/// ‖x‖_p for p ≥ 1 or p = ∞, scaled by max |x| so that |x_k|^p cannot overflow.
fn p_norm(x: &[f64], p: f64) -> f64 {
    let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if p.is_infinite() || m == 0.0 || !m.is_finite() {
        return m;
    }
    let s: f64 = x.iter().map(|v| (v.abs() / m).powf(p)).sum();
    m * s.powf(1.0 / p)
}

/// MaxLogit-pNorm: max_k (z_k − μ(z)) / max(‖z − μ(z)‖_p, 1e-12), μ = mean of the logits.
///
/// Centring makes it invariant to adding a constant to every logit, and for p > 0 the
/// normalisation makes it invariant to scaling them: the score then depends only on the shape
/// of the logit vector, which is what corrects the over-confidence of large-norm logits.
/// `p = 0` means no normalisation (the max centred logit, as in the reference code);
/// `p = f64::INFINITY` divides by the largest |z_k − μ|. A NaN logit gives NaN (ranked lowest
/// by the metrics); empty logits give NaN.
///
/// Reference: `MaxLogit_p` / `normalize` / `centralize` in `post_hoc.py` of
/// github.com/lfpc/FixSelectiveClassification.
///
/// # Panics
/// If `p` is negative or NaN.
pub fn maxlogit_pnorm(z: &[f32], p: f64) -> f32 {
    assert!(p >= 0.0, "maxlogit_pnorm: p must be ≥ 0 (got {p})");
    if z.is_empty() {
        return f32::NAN;
    }
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / z.len() as f64;
    let centred: Vec<f64> = z.iter().map(|&v| v as f64 - mean).collect();
    if centred.iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let max = centred.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let norm = if p == 0.0 {
        1.0
    } else {
        p_norm(&centred, p).max(NORM_EPS)
    };
    (max / norm) as f32
}

/// The p of [`PNORM_CANDIDATES`] whose MaxLogit-pNorm has the lowest AURC on these rows
/// (`logits[i]` of row i, `correct[i]` whether its prediction is right). Ties go to the
/// earlier (smaller) candidate; with no rows every candidate ties, so the result is 0.
///
/// Fit on held-out calibration rows, never on the rows that are then evaluated. The authors
/// also fall back to MSP when no p beats it on the held-out rows; REASON reports MSP beside
/// every score anyway, so that comparison is left to the caller.
///
/// # Panics
/// If `logits.len() != correct.len()`.
pub fn choose_pnorm(logits: &[Vec<f32>], correct: &[bool]) -> f64 {
    assert_eq!(
        logits.len(),
        correct.len(),
        "choose_pnorm: {} logit rows but {} correctness labels",
        logits.len(),
        correct.len()
    );
    let mut best = (PNORM_CANDIDATES[0], f64::INFINITY);
    for &p in &PNORM_CANDIDATES {
        let scores: Vec<f32> = logits.iter().map(|z| maxlogit_pnorm(z, p)).collect();
        let Some(aurc) = metrics::aurc(&scores, correct) else {
            return PNORM_CANDIDATES[0];
        };
        if aurc < best.1 {
            best = (p, aurc);
        }
    }
    best.0
}

// ---------------------------------------------------------------------------------------------
// REL-U
// ---------------------------------------------------------------------------------------------

/// The paper's default λ (and the reference code's `lbd=0.5`).
pub const RELU_DEFAULT_LAMBDA: f64 = 0.5;

/// REL-U: relative uncertainty pᵀDp of a probability vector p, with D fitted in closed form.
///
/// With held-out probability vectors split into correctly (+) and wrongly (−) classified rows,
///
/// ```text
/// D₀ = λ · mean_{i ∈ −} p_i p_iᵀ  −  (1 − λ) · mean_{i ∈ +} p_i p_iᵀ
/// D  = relu(D₀ with its diagonal set to 0)           (symmetric, non-negative, zero diagonal)
/// D  = J − I  (all ones off the diagonal: the Gini impurity 1 − Σ p_k²) if that is all zero
/// D  = D / ‖D‖_F                                     (Frobenius norm)
/// ```
///
/// This is `MetricLearningLagrange.fit` of the reference implementation
/// (github.com/edadaltocg/relative-uncertainty, `src/RelU/methods.py`). It solves the paper's
/// problem: maximise λ·mean_{−} pᵀDp − (1 − λ)·mean_{+} pᵀDp = ⟨D, D₀⟩ over symmetric,
/// non-negative, zero-diagonal D with ‖D‖_F = 1; by Cauchy–Schwarz on that cone the maximiser
/// is the clipped D₀, normalised. D_kl large means
/// that mass shared between classes k and l marks errors; pairs that are confused harmlessly
/// (both plausible on correct rows) get D_kl = 0. The reference code also divides the logits
/// by a temperature before the softmax; here the caller passes probabilities (apply any
/// temperature first). Differences from the reference: an empty class (no wrong or no correct
/// rows) contributes a zero mean instead of NaN, and the lower triangle is mirrored so D is
/// symmetric bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub struct RelU {
    /// Number of classes C.
    pub classes: usize,
    /// D, row-major C×C.
    pub d: Vec<f32>,
}

impl RelU {
    /// Fits D on held-out rows: `probs[i]` the probability vector of row i (all of one length
    /// C), `correct[i]` whether its prediction is right, `lambda` in [0, 1] (see
    /// [`RELU_DEFAULT_LAMBDA`]): larger λ weighs the wrong rows more. With no rows, C = 0.
    ///
    /// # Panics
    /// If `probs.len() != correct.len()` or the vectors differ in length.
    pub fn fit(probs: &[Vec<f64>], correct: &[bool], lambda: f64) -> RelU {
        assert_eq!(
            probs.len(),
            correct.len(),
            "RelU::fit: {} probability rows but {} correctness labels",
            probs.len(),
            correct.len()
        );
        let c = probs.first().map_or(0, Vec::len);
        assert!(
            probs.iter().all(|p| p.len() == c),
            "RelU::fit: probability vectors of different lengths"
        );
        // Lower-triangle sums of p pᵀ per class (the diagonal is discarded anyway).
        let tri = |k: usize, l: usize| k * (k - 1) / 2 + l; // k > l
        let size = c * c.saturating_sub(1) / 2;
        let (mut pos, mut neg) = (vec![0.0f64; size], vec![0.0f64; size]);
        let (mut n_pos, mut n_neg) = (0usize, 0usize);
        for (p, &ok) in probs.iter().zip(correct) {
            let (acc, n) = if ok {
                (&mut pos, &mut n_pos)
            } else {
                (&mut neg, &mut n_neg)
            };
            *n += 1;
            for k in 1..c {
                for l in 0..k {
                    acc[tri(k, l)] += p[k] * p[l];
                }
            }
        }
        let mean = |sum: f64, n: usize| if n == 0 { 0.0 } else { sum / n as f64 };
        let mut lower: Vec<f64> = (0..size)
            .map(|i| {
                let v = lambda * mean(neg[i], n_neg) - (1.0 - lambda) * mean(pos[i], n_pos);
                v.max(0.0)
            })
            .collect();
        if lower.iter().all(|&v| v <= 0.0) {
            // Nothing to learn: the reference falls back to the Gini impurity.
            lower.iter_mut().for_each(|v| *v = 1.0);
        }
        // Frobenius norm of the full symmetric matrix: each off-diagonal entry counts twice.
        let norm = (2.0 * lower.iter().map(|v| v * v).sum::<f64>()).sqrt();
        let mut d = vec![0.0f32; c * c];
        for k in 1..c {
            for l in 0..k {
                let v = (lower[tri(k, l)] / norm) as f32;
                d[k * c + l] = v;
                d[l * c + k] = v;
            }
        }
        RelU { classes: c, d }
    }

    /// −pᵀDp for one probability vector: higher = more likely correct.
    ///
    /// # Panics
    /// If `p.len() != self.classes`.
    pub fn score(&self, p: &[f64]) -> f32 {
        assert_eq!(
            p.len(),
            self.classes,
            "RelU::score: {} probabilities for {} classes",
            p.len(),
            self.classes
        );
        let c = self.classes;
        // pᵀDp = 2·Σ_{k>l} p_k D_kl p_l (D symmetric with zero diagonal).
        let mut u = 0.0f64;
        for k in 1..c {
            let row = &self.d[k * c..k * c + k];
            let inner: f64 = row.iter().zip(p).map(|(&dkl, &pl)| dkl as f64 * pl).sum();
            u += p[k] * inner;
        }
        (-2.0 * u) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn softmax(z: &[f64]) -> Vec<f64> {
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    /// Brute force: the definition with plain powf, no rescaling.
    fn pnorm_reference(z: &[f32], p: f64) -> f64 {
        let z: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let mu = z.iter().sum::<f64>() / z.len() as f64;
        let c: Vec<f64> = z.iter().map(|v| v - mu).collect();
        let max = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let norm = if p == 0.0 {
            1.0
        } else if p.is_infinite() {
            c.iter().map(|v| v.abs()).fold(0.0, f64::max)
        } else {
            c.iter().map(|v| v.abs().powf(p)).sum::<f64>().powf(1.0 / p)
        };
        max / norm.max(1e-12)
    }

    #[test]
    fn maxlogit_pnorm_hand_example() {
        // z = (3, 1, −1): μ = 1, centred (2, 0, −2), max 2.
        // p = 1: ‖·‖ = 4 → 0.5; p = 2: √8 → 1/√2; p = ∞: 2 → 1; p = 0: 2.
        let z = [3.0, 1.0, -1.0];
        assert!(close(maxlogit_pnorm(&z, 1.0) as f64, 0.5, 1e-7));
        assert!(close(
            maxlogit_pnorm(&z, 2.0) as f64,
            std::f64::consts::FRAC_1_SQRT_2,
            1e-7
        ));
        assert_eq!(maxlogit_pnorm(&z, f64::INFINITY), 1.0);
        assert_eq!(maxlogit_pnorm(&z, 0.0), 2.0);
        // Constant logits: 0/eps = 0, not NaN.
        assert_eq!(maxlogit_pnorm(&[4.0; 5], 2.0), 0.0);
        assert!(maxlogit_pnorm(&[1.0, f32::NAN], 2.0).is_nan());
        assert!(maxlogit_pnorm(&[], 2.0).is_nan());
    }

    #[test]
    fn maxlogit_pnorm_matches_brute_force_and_invariances() {
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..300 {
            let c = rng.random_range(2..20);
            let z: Vec<f32> = (0..c).map(|_| rng.random_range(-8.0..12.0)).collect();
            let shift = rng.random_range(-50.0f32..50.0);
            let scale = rng.random_range(0.1f32..10.0);
            let shifted: Vec<f32> = z.iter().map(|v| v + shift).collect();
            let scaled: Vec<f32> = z.iter().map(|v| v * scale).collect();
            for &p in &PNORM_CANDIDATES {
                let s = maxlogit_pnorm(&z, p) as f64;
                let want = pnorm_reference(&z, p);
                assert!(
                    close(s, want, 1e-6 * want.abs().max(1.0)),
                    "p={p}: {s} vs {want}"
                );
                // Translation: exact up to the f32 rounding of z + shift.
                let t = maxlogit_pnorm(&shifted, p) as f64;
                assert!(
                    close(t, s, 1e-4 * s.abs().max(1.0)),
                    "p={p} shift: {t} vs {s}"
                );
                if p > 0.0 {
                    let u = maxlogit_pnorm(&scaled, p) as f64;
                    assert!(close(u, s, 1e-5), "p={p} scale: {u} vs {s}");
                }
            }
        }
        // Large logits and p: no overflow from |z|^p.
        let z = [900.0f32, -300.0, 10.0, 0.0];
        let s = maxlogit_pnorm(&z, 10.0);
        assert!(s.is_finite() && s > 0.0 && s <= 1.0);
    }

    #[test]
    fn choose_pnorm_is_the_brute_force_argmin() {
        let mut rng = StdRng::seed_from_u64(11);
        for trial in 0..6 {
            let c = 10;
            let (mut logits, mut correct) = (Vec::new(), Vec::new());
            for _ in 0..400 {
                // Norm varies independently of the shape: MaxLogit and MSP are misled by it.
                let scale: f32 = rng.random_range(0.5..6.0);
                let margin: f32 = rng.random_range(-1.0..3.0);
                let mut z: Vec<f32> = (0..c).map(|_| rng.random_range(-1.0..1.0)).collect();
                z[0] += margin;
                let z: Vec<f32> = z.iter().map(|v| v * scale).collect();
                let p_right = 1.0 / (1.0 + (-(2.0 * margin as f64 - 1.0)).exp());
                correct.push(rng.random_bool(p_right));
                logits.push(z);
            }
            let got = choose_pnorm(&logits, &correct);
            let mut best = (f64::NAN, f64::INFINITY);
            for &p in &PNORM_CANDIDATES {
                let s: Vec<f32> = logits.iter().map(|z| maxlogit_pnorm(z, p)).collect();
                let a = metrics::aurc(&s, &correct).unwrap();
                if a < best.1 {
                    best = (p, a);
                }
            }
            assert_eq!(got, best.0, "trial {trial}");
        }
        // Ties go to the smallest candidate: with every row correct every AURC is 0.
        let logits = vec![vec![1.0f32, 0.0, 2.0]; 5];
        assert_eq!(choose_pnorm(&logits, &[true; 5]), 0.0);
        assert_eq!(choose_pnorm(&[], &[]), 0.0);
    }

    #[test]
    fn relu_closed_form_by_hand() {
        // Correct: (0.8, 0.1, 0.1), (0.6, 0.3, 0.1); wrong: (0.4, 0.5, 0.1); λ = 0.5.
        // Off-diagonal means: correct (01) = (0.08 + 0.18)/2 = 0.13, (02) = (0.08 + 0.06)/2
        // = 0.07, (12) = (0.01 + 0.03)/2 = 0.02; wrong (01) = 0.20, (02) = 0.04, (12) = 0.05.
        // D₀ = 0.5·wrong − 0.5·correct: (01) 0.035, (02) −0.015 → 0, (12) 0.015.
        // ‖D‖_F = √(2·(0.035² + 0.015²)) = √0.0029.
        let probs = vec![
            vec![0.8, 0.1, 0.1],
            vec![0.6, 0.3, 0.1],
            vec![0.4, 0.5, 0.1],
        ];
        let correct = [true, true, false];
        let m = RelU::fit(&probs, &correct, 0.5);
        let norm = 0.0029f64.sqrt();
        let want = [
            [0.0, 0.035 / norm, 0.0],
            [0.035 / norm, 0.0, 0.015 / norm],
            [0.0, 0.015 / norm, 0.0],
        ];
        assert_eq!(m.classes, 3);
        for (k, want_row) in want.iter().enumerate() {
            for (l, &w) in want_row.iter().enumerate() {
                assert!(close(m.d[k * 3 + l] as f64, w, 1e-7), "D[{k}][{l}]");
            }
        }
        // pᵀDp at the wrong row: 2·(0.4·0.5·0.035 + 0.5·0.1·0.015)/norm = 0.0155/norm.
        assert!(close(m.score(&probs[2]) as f64, -0.0155 / norm, 1e-7));
        // Direct evaluation of the quadratic form.
        let p = [0.2, 0.3, 0.5];
        let mut direct = 0.0;
        for (k, want_row) in want.iter().enumerate() {
            for (l, &w) in want_row.iter().enumerate() {
                direct += p[k] * w * p[l];
            }
        }
        assert!(close(m.score(&p) as f64, -direct, 1e-7));

        // λ = 0.8: D₀ = 0.8·wrong − 0.2·correct: (01) 0.16 − 0.026 = 0.134, (02) 0.032 − 0.014
        // = 0.018, (12) 0.04 − 0.004 = 0.036.
        let m = RelU::fit(&probs, &correct, 0.8);
        let norm = (2.0f64 * (0.134f64.powi(2) + 0.018f64.powi(2) + 0.036f64.powi(2))).sqrt();
        assert!(close(m.d[1] as f64, 0.134 / norm, 1e-7));
        assert!(close(m.d[2] as f64, 0.018 / norm, 1e-7));
        assert!(close(m.d[5] as f64, 0.036 / norm, 1e-7));
    }

    #[test]
    fn relu_matrix_is_symmetric_nonnegative_zero_diagonal() {
        let mut rng = StdRng::seed_from_u64(17);
        let c = 7;
        let (probs, correct): (Vec<Vec<f64>>, Vec<bool>) = (0..500)
            .map(|_| {
                let z: Vec<f64> = (0..c).map(|_| rng.random_range(-3.0..3.0)).collect();
                (softmax(&z), rng.random_bool(0.7))
            })
            .unzip();
        for lambda in [0.0, 0.3, 0.5, 0.9, 1.0] {
            let m = RelU::fit(&probs, &correct, lambda);
            let mut frob = 0.0f64;
            for k in 0..c {
                assert_eq!(m.d[k * c + k], 0.0);
                for l in 0..c {
                    assert_eq!(m.d[k * c + l], m.d[l * c + k]);
                    assert!(m.d[k * c + l] >= 0.0);
                    frob += (m.d[k * c + l] as f64).powi(2);
                }
            }
            assert!(close(frob, 1.0, 1e-6), "λ={lambda}: {frob}");
        }
        // λ = 0 leaves only −mean(correct) ≤ 0: every entry clips to 0 → Gini fallback,
        // D = (J − I)/√(C(C−1)), and −pᵀDp = −(1 − Σp²)/√(C(C−1)).
        let m = RelU::fit(&probs, &correct, 0.0);
        let p = &probs[3];
        let gini = 1.0 - p.iter().map(|v| v * v).sum::<f64>();
        let want = -gini / ((c * (c - 1)) as f64).sqrt();
        assert!(close(m.score(p) as f64, want, 1e-6));
        // No rows at all.
        assert_eq!(RelU::fit(&[], &[], 0.5).classes, 0);
    }

    #[test]
    fn relu_separates_at_least_as_well_as_msp() {
        // 5 classes. Wrong rows split their mass between classes 0 and 1. Correct rows are
        // either confident, or split between classes 2 and 3 (a harmless confusion): MSP
        // cannot tell the two kinds of split apart, REL-U learns that only a 0/1 split is bad.
        let draw = |rng: &mut StdRng, n: usize| -> (Vec<Vec<f64>>, Vec<bool>) {
            (0..n)
                .map(|_| {
                    let mut z = vec![0.0f64; 5];
                    let kind = rng.random_range(0..3);
                    let (a, b) = match kind {
                        0 => (0, 1),
                        1 => (2, 3),
                        _ => (rng.random_range(0..5), 5),
                    };
                    if b == 5 {
                        z[a] = rng.random_range(3.0..6.0);
                    } else {
                        z[a] = rng.random_range(2.0..3.0);
                        z[b] = z[a] - rng.random_range(0.0..0.6);
                    }
                    for v in z.iter_mut() {
                        *v += rng.random_range(-0.3..0.3);
                    }
                    (softmax(&z), kind != 0)
                })
                .unzip()
        };
        let mut rng = StdRng::seed_from_u64(23);
        let (cal_p, cal_c) = draw(&mut rng, 2000);
        let model = RelU::fit(&cal_p, &cal_c, RELU_DEFAULT_LAMBDA);
        // D_01 carries the error signal; D_23 (harmless confusion) is clipped away.
        assert!(
            model.d[1] > 0.5 && model.d[2 * 5 + 3] == 0.0,
            "{:?}",
            model.d
        );
        let (test_p, test_c) = draw(&mut rng, 2000);
        let relu: Vec<f32> = test_p.iter().map(|p| model.score(p)).collect();
        let msp: Vec<f32> = test_p
            .iter()
            .map(|p| p.iter().copied().fold(0.0, f64::max) as f32)
            .collect();
        let (a_relu, a_msp) = (
            metrics::auroc(&relu, &test_c).unwrap(),
            metrics::auroc(&msp, &test_c).unwrap(),
        );
        assert!(a_relu >= a_msp, "REL-U {a_relu} < MSP {a_msp}");
        assert!(a_relu > 0.95 && a_msp < 0.9, "REL-U {a_relu}, MSP {a_msp}");
    }
}

//! The base head: a linear softmax classifier over the dataset's classes on the frozen,
//! standardised backbone embedding, trained with input dropout so MC dropout over the cached
//! embedding is meaningful.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Dropout on the standardised embedding, in training and in MC dropout.
    pub dropout: f32,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            epochs: 40,
            batch_size: 256,
            learning_rate: 5e-3,
            weight_decay: 1e-2,
            dropout: 0.2,
        }
    }
}

/// `logits = W · ((e − mean) / std) + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// `classes × dim`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub classes: usize,
    pub dim: usize,
}

impl LinearHead {
    /// Trains on `embeddings` (`n × dim`, row-major) with `labels` in `0..classes`.
    pub fn train(
        embeddings: &[f32],
        dim: usize,
        labels: &[u16],
        classes: usize,
        config: &HeadConfig,
        seed: u64,
    ) -> Result<Self> {
        let (mean, std) = column_stats(embeddings, dim);
        Self::train_standardised(embeddings, dim, labels, classes, config, seed, mean, std)
    }

    /// Like [`LinearHead::train`], with the standardisation given: heads that share it can be
    /// averaged exactly ([`LinearHead::average`]).
    #[allow(clippy::too_many_arguments)]
    pub fn train_standardised(
        embeddings: &[f32],
        dim: usize,
        labels: &[u16],
        classes: usize,
        config: &HeadConfig,
        seed: u64,
        mean: Vec<f32>,
        std: Vec<f32>,
    ) -> Result<Self> {
        let n = labels.len();
        assert_eq!(embeddings.len(), n * dim, "embedding matrix shape");
        let standardised = standardise(embeddings, dim, &mean, &std);
        let device = Device::Cpu;
        let x_all = Tensor::from_vec(standardised, (n, dim), &device)?;
        let y_all = Tensor::from_vec(
            labels.iter().map(|&l| l as u32).collect::<Vec<_>>(),
            n,
            &device,
        )?;

        let mut rng = StdRng::seed_from_u64(seed);
        let scale = (1.0 / dim as f64).sqrt() as f32;
        let w0: Vec<f32> = (0..classes * dim)
            .map(|_| rng.random_range(-scale..scale))
            .collect();
        let w = Var::from_tensor(&Tensor::from_vec(w0, (classes, dim), &device)?)?;
        let b = Var::zeros(classes, DType::F32, &device)?;
        let mut opt = AdamW::new(
            vec![w.clone(), b.clone()],
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
        )?;
        let keep = 1.0 - config.dropout;
        let mut order: Vec<u32> = (0..n as u32).collect();
        for _ in 0..config.epochs {
            order.shuffle(&mut rng);
            for chunk in order.chunks(config.batch_size.max(1)) {
                let idx = Tensor::from_slice(chunk, chunk.len(), &device)?;
                let x = x_all.index_select(&idx, 0)?;
                let y = y_all.index_select(&idx, 0)?;
                // Inverted dropout from our own seeded generator, so training is reproducible.
                let mask = dropout_mask(&mut rng, chunk.len() * dim, keep);
                let x = x.mul(&Tensor::from_vec(mask, (chunk.len(), dim), &device)?)?;
                let logits = x
                    .matmul(&w.as_tensor().t()?)?
                    .broadcast_add(b.as_tensor())?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                opt.backward_step(&loss)?;
            }
        }
        Ok(Self {
            mean,
            std,
            weight: w.as_tensor().flatten_all()?.to_vec1()?,
            bias: b.as_tensor().to_vec1()?,
            classes,
            dim,
        })
    }

    /// The head whose logits are the mean of `heads`' logits, for every embedding and every
    /// dropout mask: exact because the heads share one standardisation (checked). `None` when
    /// they do not or there are none.
    pub fn average(heads: &[LinearHead]) -> Option<LinearHead> {
        let first = heads.first()?;
        let same = heads.iter().all(|h| {
            h.mean == first.mean
                && h.std == first.std
                && h.classes == first.classes
                && h.dim == first.dim
        });
        if !same {
            return None;
        }
        let k = heads.len() as f32;
        let mean_of = |get: &dyn Fn(&LinearHead) -> &Vec<f32>| -> Vec<f32> {
            (0..get(first).len())
                .map(|i| heads.iter().map(|h| get(h)[i]).sum::<f32>() / k)
                .collect()
        };
        Some(LinearHead {
            mean: first.mean.clone(),
            std: first.std.clone(),
            weight: mean_of(&|h| &h.weight),
            bias: mean_of(&|h| &h.bias),
            classes: first.classes,
            dim: first.dim,
        })
    }

    /// Logits of one embedding; `keep_mask` (already scaled by 1/keep) applies MC dropout.
    pub fn logits(&self, embedding: &[f32], keep_mask: Option<&[f32]>) -> Vec<f32> {
        let x: Vec<f32> = (0..self.dim)
            .map(|j| {
                let v = (embedding[j] - self.mean[j]) / self.std[j];
                keep_mask.map_or(v, |m| v * m[j])
            })
            .collect();
        (0..self.classes)
            .map(|c| {
                let row = &self.weight[c * self.dim..(c + 1) * self.dim];
                self.bias[c] + row.iter().zip(&x).map(|(w, v)| w * v).sum::<f32>()
            })
            .collect()
    }

    /// Differentiable logits of `(n, dim)` embeddings, on their device (for input gradients).
    pub fn logits_tensor(&self, embedding: &Tensor) -> Result<Tensor> {
        let device = embedding.device();
        let dtype = embedding.dtype();
        let mean = Tensor::from_slice(&self.mean, (1, self.dim), device)?.to_dtype(dtype)?;
        let std = Tensor::from_slice(&self.std, (1, self.dim), device)?.to_dtype(dtype)?;
        let w =
            Tensor::from_slice(&self.weight, (self.classes, self.dim), device)?.to_dtype(dtype)?;
        let b = Tensor::from_slice(&self.bias, (1, self.classes), device)?.to_dtype(dtype)?;
        let x = embedding.broadcast_sub(&mean)?.broadcast_div(&std)?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(&b)?)
    }

    pub fn to_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let d = Device::Cpu;
        Ok(vec![
            (
                format!("{prefix}.mean"),
                Tensor::from_slice(&self.mean, self.dim, &d)?,
            ),
            (
                format!("{prefix}.std"),
                Tensor::from_slice(&self.std, self.dim, &d)?,
            ),
            (
                format!("{prefix}.weight"),
                Tensor::from_slice(&self.weight, (self.classes, self.dim), &d)?,
            ),
            (
                format!("{prefix}.bias"),
                Tensor::from_slice(&self.bias, self.classes, &d)?,
            ),
        ])
    }

    pub fn from_tensors(get: impl Fn(&str) -> Result<Tensor>, prefix: &str) -> Result<Self> {
        let weight = get(&format!("{prefix}.weight"))?;
        let (classes, dim) = weight.dims2()?;
        Ok(Self {
            mean: get(&format!("{prefix}.mean"))?.to_vec1()?,
            std: get(&format!("{prefix}.std"))?.to_vec1()?,
            weight: weight.flatten_all()?.to_vec1()?,
            bias: get(&format!("{prefix}.bias"))?.to_vec1()?,
            classes,
            dim,
        })
    }
}

/// Per-column mean and standard deviation (never below 1e-6) of an `n × dim` matrix.
pub fn column_stats(data: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (data.len() / dim.max(1)).max(1) as f64;
    let mut mean = vec![0f64; dim];
    for row in data.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; dim];
    for row in data.chunks(dim) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let std = var
        .iter()
        .map(|s| ((s / n).sqrt() as f32).max(1e-6))
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

pub fn standardise(data: &[f32], dim: usize, mean: &[f32], std: &[f32]) -> Vec<f32> {
    data.chunks(dim)
        .flat_map(|row| row.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s))
        .collect()
}

/// Fits the softmax temperature minimising the negative log-likelihood of `labels` under
/// `logits / T` (golden-section search over log T), for temperature-scaled MSP.
pub fn fit_temperature(logits: &[Vec<f32>], labels: &[u16]) -> f32 {
    let nll = |log_t: f64| -> f64 {
        let t = log_t.exp();
        logits
            .iter()
            .zip(labels)
            .map(|(z, &y)| {
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = z
                    .iter()
                    .map(|&v| ((v as f64 - max) / t).exp())
                    .sum::<f64>()
                    .ln()
                    + max / t;
                lse - z[y as usize] as f64 / t
            })
            .sum()
    };
    let (mut lo, mut hi) = ((0.05f64).ln(), (20f64).ln());
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let a = hi - phi * (hi - lo);
        let b = lo + phi * (hi - lo);
        if nll(a) < nll(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    ((lo + hi) / 2.0).exp() as f32
}

/// An inverted-dropout mask of `len` values: `1/keep` with probability `keep`, else 0. Drawn
/// from the caller's seeded generator, so training is reproducible.
pub fn dropout_mask(rng: &mut impl rand::Rng, len: usize, keep: f32) -> Vec<f32> {
    (0..len)
        .map(|_| {
            if rng.random::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two well separated Gaussian blobs per class in 4 dimensions.
    fn blobs(n_per_class: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u16>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n_per_class * classes {
            let c = i % classes;
            for j in 0..4 {
                let centre = if j == c % 4 { 5.0 } else { 0.0 };
                x.push(centre + rng.random_range(-1.0f32..1.0) + 100.0);
            }
            y.push(c as u16);
        }
        (x, y)
    }

    #[test]
    fn learns_separable_classes_and_round_trips_through_tensors() {
        let (x, y) = blobs(50, 3, 1);
        let cfg = HeadConfig {
            epochs: 300,
            ..Default::default()
        };
        let head = LinearHead::train(&x, 4, &y, 3, &cfg, 7).unwrap();
        let correct = x
            .chunks(4)
            .zip(&y)
            .filter(|(row, &label)| {
                crate::support::math::argmax(&head.logits(row, None)) == label as usize
            })
            .count();
        assert!(correct >= 145, "{correct}/150");
        let tensors: std::collections::HashMap<_, _> =
            head.to_tensors("head").unwrap().into_iter().collect();
        let back = LinearHead::from_tensors(|k| Ok(tensors[k].clone()), "head").unwrap();
        assert_eq!(back, head);
        // The tensor path computes the same logits as the scalar path.
        let t = Tensor::from_slice(&x[..8], (2, 4), &Device::Cpu).unwrap();
        let a = head.logits_tensor(&t).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in a.iter().enumerate() {
            let b = head.logits(&x[i * 4..(i + 1) * 4], None);
            for (p, q) in row.iter().zip(&b) {
                assert!((p - q).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn averaged_head_gives_the_mean_logits_with_and_without_dropout() {
        let (x, y) = blobs(20, 3, 4);
        let cfg = HeadConfig {
            epochs: 3,
            ..Default::default()
        };
        let (mean, std) = column_stats(&x, 4);
        let heads: Vec<LinearHead> = (0..3)
            .map(|s| {
                LinearHead::train_standardised(&x, 4, &y, 3, &cfg, s, mean.clone(), std.clone())
                    .unwrap()
            })
            .collect();
        let avg = LinearHead::average(&heads).unwrap();
        let mask = [2.0, 0.0, 2.0, 2.0];
        for row in x.chunks(4).take(5) {
            for m in [None, Some(&mask[..])] {
                let want: Vec<f32> = (0..3)
                    .map(|c| heads.iter().map(|h| h.logits(row, m)[c]).sum::<f32>() / 3.0)
                    .collect();
                for (a, b) in avg.logits(row, m).iter().zip(&want) {
                    assert!((a - b).abs() < 1e-4, "{a} vs {b}");
                }
            }
        }
        // Heads with their own standardisation cannot be averaged exactly.
        let own = LinearHead::train(&x[..40], 4, &y[..10], 3, &cfg, 1).unwrap();
        assert!(LinearHead::average(&[heads[0].clone(), own]).is_none());
    }

    #[test]
    fn training_is_reproducible_from_the_seed() {
        let (x, y) = blobs(20, 2, 3);
        let cfg = HeadConfig {
            epochs: 5,
            ..Default::default()
        };
        let a = LinearHead::train(&x, 4, &y, 2, &cfg, 11).unwrap();
        let b = LinearHead::train(&x, 4, &y, 2, &cfg, 11).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn temperature_recovers_overconfidence() {
        // Logits ten times too sharp for labels drawn at the rate the unscaled softmax implies.
        let mut rng = StdRng::seed_from_u64(5);
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..4000 {
            let z = [1.0f32, 0.0];
            let p1 = 1.0 / (1.0 + (-1.0f64).exp());
            labels.push(if rng.random::<f64>() < p1 { 0 } else { 1 });
            logits.push(z.iter().map(|v| v * 10.0).collect());
        }
        let t = fit_temperature(&logits, &labels);
        assert!((t - 10.0).abs() < 1.5, "T = {t}");
    }
}

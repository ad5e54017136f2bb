//! The MetaNet: a small model on (part of) the standardised meta-vector that predicts
//! P(correct), trained with early stopping on an inner validation split and calibrated with
//! Platt scaling.
//!
//! With `offset`, its logit is a·logit(TS-MSP) + g(x): `a` starts at 1 and the last layer of g
//! at 0, so before any training it *is* temperature-scaled MSP, and early stopping keeps that
//! start when no epoch beats it on the validation rows. The field's results (learned
//! confidence heads rarely beat MSP; an MSP start and many errors are what they need) are why
//! this is the default. With `hidden` empty, g is linear: an L2 logistic regression.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::head::dropout_mask;
use crate::model::head::{column_stats, standardise};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetaNetConfig {
    pub hidden: Vec<usize>,
    pub max_epochs: usize,
    /// Epochs without improvement of the inner-validation loss before stopping.
    pub patience: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub dropout: f32,
    /// What the model reads: family names (`knn`) or feature names (`knn.mean_distance`) of
    /// the layout; empty = every dimension.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Start from logit(TS-MSP) as an offset (see the module docs).
    #[serde(default)]
    pub offset: bool,
}

impl Default for MetaNetConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 32],
            max_epochs: 300,
            patience: 25,
            batch_size: 128,
            learning_rate: 3e-3,
            weight_decay: 1e-3,
            dropout: 0.1,
            inputs: Vec::new(),
            offset: false,
        }
    }
}

impl MetaNetConfig {
    /// The meta-vector columns `inputs` names in `layout` (every column when empty).
    pub fn input_columns(
        &self,
        layout: &crate::reliability::records::FeatureLayout,
    ) -> std::result::Result<Vec<usize>, String> {
        if self.inputs.is_empty() {
            return Ok((0..layout.dim()).collect());
        }
        let mut cols = Vec::new();
        for name in &self.inputs {
            let matched: Vec<usize> = (0..layout.dim())
                .filter(|&j| layout.family_of(j) == Some(name) || layout.name(j) == Some(name))
                .collect();
            if matched.is_empty() {
                return Err(format!(
                    "`{name}` is neither a feature family nor a feature"
                ));
            }
            for j in matched {
                if !cols.contains(&j) {
                    cols.push(j);
                }
            }
        }
        Ok(cols)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `out × in`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetaNet {
    /// The meta-vector columns the network reads, in order.
    pub inputs: Vec<usize>,
    /// The offset column and its learned coefficient `a`, when the model has one.
    pub offset: Option<(usize, f32)>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub layers: Vec<Dense>,
    /// Platt scaling of the output logit: P(correct) = σ(a · logit + b).
    pub platt_a: f32,
    pub platt_b: f32,
    /// Epoch whose weights were kept (best inner-validation loss).
    pub best_epoch: usize,
}

/// What training saw, for the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetaNetTrainingReport {
    pub best_epoch: usize,
    pub best_validation_loss: f64,
    pub epochs_run: usize,
}

impl MetaNet {
    /// Trains on `rows[fit]` (row-major, `row_dim` wide), early-stopping on `rows[stop]`,
    /// reading the columns `inputs` and, when given, starting from the column `offset`.
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        rows: &[f32],
        row_dim: usize,
        correct: &[bool],
        fit: &[usize],
        stop: &[usize],
        config: &MetaNetConfig,
        seed: u64,
        inputs: &[usize],
        offset: Option<usize>,
    ) -> Result<(Self, MetaNetTrainingReport)> {
        let dim = inputs.len();
        let gather = |idx: &[usize]| -> Vec<f32> {
            idx.iter()
                .flat_map(|&i| inputs.iter().map(move |&j| rows[i * row_dim + j]))
                .collect()
        };
        let fit_rows = gather(fit);
        let (mean, std) = column_stats(&fit_rows, dim);
        let device = Device::Cpu;
        let to_xy = |idx: &[usize], data: Vec<f32>| -> Result<(Tensor, Tensor, Tensor)> {
            let x = Tensor::from_vec(
                standardise(&data, dim, &mean, &std),
                (idx.len(), dim),
                &device,
            )?;
            let y: Vec<f32> = idx
                .iter()
                .map(|&i| f32::from(u8::from(correct[i])))
                .collect();
            let o: Vec<f32> = idx
                .iter()
                .map(|&i| offset.map_or(0.0, |j| rows[i * row_dim + j]))
                .collect();
            Ok((
                x,
                Tensor::from_vec(y, (idx.len(), 1), &device)?,
                Tensor::from_vec(o, (idx.len(), 1), &device)?,
            ))
        };
        let (x_fit, y_fit, o_fit) = to_xy(fit, fit_rows.clone())?;
        let (x_stop, y_stop, o_stop) = to_xy(stop, gather(stop))?;

        let mut rng = StdRng::seed_from_u64(seed);
        let mut sizes = vec![dim];
        sizes.extend(&config.hidden);
        sizes.push(1);
        let mut vars = Vec::new();
        let last = sizes.len() - 2;
        for (l, w) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = (6.0 / fan_in as f64).sqrt() as f32 / 2.0;
            // With an offset, g starts at exactly 0: the untrained model is TS-MSP.
            let zero = offset.is_some() && l == last;
            let init: Vec<f32> = (0..fan_in * fan_out)
                .map(|_| {
                    let v = rng.random_range(-bound..bound);
                    if zero {
                        0.0
                    } else {
                        v
                    }
                })
                .collect();
            vars.push(Var::from_tensor(&Tensor::from_vec(
                init,
                (fan_out, fan_in),
                &device,
            )?)?);
            vars.push(Var::zeros(fan_out, DType::F32, &device)?);
        }
        let mut opt = AdamW::new(
            vars.clone(),
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
        )?;
        // The offset's coefficient is not weight-decayed: shrinking it would pull the model
        // away from TS-MSP, which is where it is meant to start.
        let a = Var::from_tensor(&Tensor::ones((1, 1), DType::F32, &device)?)?;
        let mut opt_a = AdamW::new(
            vec![a.clone()],
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let forward = |x: &Tensor, o: &Tensor, masks: Option<&[Tensor]>| -> Result<Tensor> {
            let mut h = x.clone();
            let layers = vars.len() / 2;
            for l in 0..layers {
                h = h
                    .matmul(&vars[2 * l].as_tensor().t()?)?
                    .broadcast_add(vars[2 * l + 1].as_tensor())?;
                if l + 1 < layers {
                    h = h.relu()?;
                    if let Some(m) = masks {
                        h = h.mul(&m[l])?;
                    }
                }
            }
            if offset.is_some() {
                h = h.add(&o.broadcast_mul(a.as_tensor())?)?;
            }
            Ok(h)
        };
        let val_loss =
            || -> Result<f64> {
                Ok(bce_with_logits(&forward(&x_stop, &o_stop, None)?, &y_stop)?
                    .to_scalar::<f32>()? as f64)
            };
        let keep = 1.0 - config.dropout;
        let mut order: Vec<usize> = (0..fit.len()).collect();
        // Epoch 0 is the untrained start (TS-MSP itself with an offset): it competes too.
        let a_value = |a: &Var| -> Result<f32> { Ok(a.as_tensor().flatten_all()?.to_vec1()?[0]) };
        let mut best = (val_loss()?, 0usize, snapshot(&vars)?, a_value(&a)?);
        let mut epochs_run = 0;
        for epoch in 1..=config.max_epochs {
            epochs_run = epoch;
            order.shuffle(&mut rng);
            for chunk in order.chunks(config.batch_size.max(1)) {
                let idx = Tensor::from_vec(
                    chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    chunk.len(),
                    &device,
                )?;
                let x = x_fit.index_select(&idx, 0)?;
                let y = y_fit.index_select(&idx, 0)?;
                let masks = config.hidden.iter().map(|&h| {
                    let m = dropout_mask(&mut rng, chunk.len() * h, keep);
                    Tensor::from_vec(m, (chunk.len(), h), &device)
                });
                let masks = masks.collect::<candle_core::Result<Vec<_>>>()?;
                let o = o_fit.index_select(&idx, 0)?;
                let loss = bce_with_logits(&forward(&x, &o, Some(&masks))?, &y)?;
                let grads = loss.backward()?;
                opt.step(&grads)?;
                if offset.is_some() {
                    opt_a.step(&grads)?;
                }
            }
            let loss = val_loss()?;
            if loss < best.0 {
                best = (loss, epoch, snapshot(&vars)?, a_value(&a)?);
            } else if epoch - best.1 >= config.patience {
                break;
            }
        }
        let layers = best
            .2
            .chunks(2)
            .map(|wb| Dense {
                weight: wb[0].clone(),
                bias: wb[1].clone(),
            })
            .collect();
        let net = Self {
            inputs: inputs.to_vec(),
            offset: offset.map(|j| (j, best.3)),
            mean,
            std,
            layers,
            platt_a: 1.0,
            platt_b: 0.0,
            best_epoch: best.1,
        };
        let report = MetaNetTrainingReport {
            best_epoch: best.1,
            best_validation_loss: best.0,
            epochs_run,
        };
        Ok((net, report))
    }

    /// The uncalibrated output logit of one raw meta-vector.
    pub fn logit(&self, row: &[f32]) -> f32 {
        let mut h: Vec<f32> = self
            .inputs
            .iter()
            .zip(&self.mean)
            .zip(&self.std)
            .map(|((&j, m), s)| (row[j] - m) / s)
            .collect();
        for (l, layer) in self.layers.iter().enumerate() {
            let inputs = h.len();
            h = layer
                .bias
                .iter()
                .enumerate()
                .map(|(o, b)| {
                    b + layer.weight[o * inputs..(o + 1) * inputs]
                        .iter()
                        .zip(&h)
                        .map(|(w, v)| w * v)
                        .sum::<f32>()
                })
                .collect();
            if l + 1 < self.layers.len() {
                h.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        h[0] + self.offset.map_or(0.0, |(j, a)| a * row[j])
    }

    /// The calibrated logit: monotone in P(correct) and free of float saturation, so rankings
    /// (AUROC, AURC) use it.
    pub fn calibrated_logit(&self, row: &[f32]) -> f32 {
        self.platt_a * self.logit(row) + self.platt_b
    }

    pub fn p_correct(&self, row: &[f32]) -> f32 {
        sigmoid(self.calibrated_logit(row))
    }

    /// Fits Platt scaling on held-out rows (logits `z`, outcomes `y`).
    pub fn calibrate(&mut self, logits: &[f32], correct: &[bool]) {
        let (a, b) = fit_platt(logits, correct);
        self.platt_a = a;
        self.platt_b = b;
    }

    pub fn to_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let d = Device::Cpu;
        let mut out = vec![
            (
                "metanet.mean".to_string(),
                Tensor::from_slice(&self.mean, self.mean.len(), &d)?,
            ),
            (
                "metanet.std".to_string(),
                Tensor::from_slice(&self.std, self.std.len(), &d)?,
            ),
            (
                "metanet.platt".to_string(),
                Tensor::from_slice(&[self.platt_a, self.platt_b], 2, &d)?,
            ),
            (
                "metanet.inputs".to_string(),
                Tensor::from_vec(
                    self.inputs.iter().map(|&j| j as u32).collect::<Vec<_>>(),
                    self.inputs.len(),
                    &d,
                )?,
            ),
        ];
        if let Some((j, a)) = self.offset {
            // The column index is stored exactly as u32 beside the f32 coefficient.
            out.push((
                "metanet.offset_column".to_string(),
                Tensor::from_vec(vec![j as u32], 1, &d)?,
            ));
            out.push((
                "metanet.offset_coefficient".to_string(),
                Tensor::from_vec(vec![a], 1, &d)?,
            ));
        }
        for (i, l) in self.layers.iter().enumerate() {
            let out_dim = l.bias.len();
            out.push((
                format!("metanet.layer{i}.weight"),
                Tensor::from_slice(&l.weight, (out_dim, l.weight.len() / out_dim), &d)?,
            ));
            out.push((
                format!("metanet.layer{i}.bias"),
                Tensor::from_slice(&l.bias, out_dim, &d)?,
            ));
        }
        Ok(out)
    }

    pub fn from_tensors(
        get: impl Fn(&str) -> Result<Tensor>,
        layers: usize,
        best_epoch: usize,
    ) -> Result<Self> {
        let platt: Vec<f32> = get("metanet.platt")?.to_vec1()?;
        let layers = (0..layers)
            .map(|i| {
                Ok(Dense {
                    weight: get(&format!("metanet.layer{i}.weight"))?
                        .flatten_all()?
                        .to_vec1()?,
                    bias: get(&format!("metanet.layer{i}.bias"))?.to_vec1()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let offset = match get("metanet.offset_column") {
            Ok(col) => Some((
                col.to_vec1::<u32>()?[0] as usize,
                get("metanet.offset_coefficient")?.to_vec1::<f32>()?[0],
            )),
            Err(_) => None,
        };
        Ok(Self {
            inputs: get("metanet.inputs")?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|j| j as usize)
                .collect(),
            offset,
            mean: get("metanet.mean")?.to_vec1()?,
            std: get("metanet.std")?.to_vec1()?,
            layers,
            platt_a: platt[0],
            platt_b: platt[1],
            best_epoch,
        })
    }
}

/// Mean binary cross-entropy of logits `x` against targets `y`, in the stable form
/// max(x, 0) − x·y + ln(1 + e^−|x|). candle's version takes ln(σ(x)) and ln(1 − σ(x)), which
/// is −∞ (and the loss NaN) once σ saturates: the offset models start at logits of 15 and more.
fn bce_with_logits(x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (x.relu()? - x.mul(y)?)?.add(&softplus)?.mean_all()
}

fn snapshot(vars: &[Var]) -> Result<Vec<Vec<f32>>> {
    vars.iter()
        .map(|v| Ok(v.as_tensor().flatten_all()?.to_vec1()?))
        .collect()
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Logistic regression of `correct` on one feature `z` by Newton's method (with a tiny ridge so
/// separable data stays finite).
pub fn fit_platt(z: &[f32], correct: &[bool]) -> (f32, f32) {
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) =
            (1e-3 * (a - 1.0), 1e-3 * b, 1e-3, 0.0, 1e-3);
        for (&zi, &yi) in z.iter().zip(correct) {
            let zi = zi as f64;
            let p = 1.0 / (1.0 + (-(a * zi + b)).exp());
            let r = p - f64::from(u8::from(yi));
            ga += r * zi;
            gb += r;
            let w = p * (1.0 - p);
            haa += w * zi * zi;
            hab += w * zi;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-9 {
            break;
        }
    }
    (a as f32, b as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_signal_and_calibration_recovers_probabilities() {
        // Feature 0 carries the signal: P(correct) = σ(2·x0); feature 1 is noise.
        let mut rng = StdRng::seed_from_u64(1);
        let n = 3000;
        let mut rows = Vec::new();
        let mut correct = Vec::new();
        for _ in 0..n {
            let x0: f32 = rng.random_range(-3.0..3.0);
            rows.extend([x0, rng.random_range(-1.0..1.0)]);
            correct.push(rng.random::<f32>() < sigmoid(2.0 * x0));
        }
        let fit: Vec<usize> = (0..2000).collect();
        let stop: Vec<usize> = (2000..2500).collect();
        let cfg = MetaNetConfig {
            max_epochs: 100,
            ..Default::default()
        };
        let (mut net, report) =
            MetaNet::train(&rows, 2, &correct, &fit, &stop, &cfg, 3, &[0, 1], None).unwrap();
        assert!(report.best_validation_loss < 0.5, "{report:?}");
        let held: Vec<usize> = (2500..n).collect();
        let logits: Vec<f32> = held
            .iter()
            .map(|&i| net.logit(&rows[2 * i..2 * i + 2]))
            .collect();
        let labels: Vec<bool> = held.iter().map(|&i| correct[i]).collect();
        net.calibrate(&logits, &labels);
        // Monotone in the signal, and calibrated on the held-out rows.
        let p = |x0: f32| net.p_correct(&[x0, 0.0]);
        assert!(
            p(-2.0) < p(0.0) && p(0.0) < p(2.0),
            "{} {} {}",
            p(-2.0),
            p(0.0),
            p(2.0)
        );
        assert!(p(-2.0) < 0.2 && p(2.0) > 0.8);
        let probs: Vec<f32> = held
            .iter()
            .map(|&i| net.p_correct(&rows[2 * i..2 * i + 2]))
            .collect();
        let ece = crate::metrics::ece(&probs, &labels).unwrap();
        assert!(ece < 0.06, "ECE {ece}");
        let auroc = crate::metrics::auroc(&probs, &labels).unwrap();
        // The Bayes-optimal AUROC for this set-up is about 0.86.
        assert!(auroc > 0.8, "AUROC {auroc}");
        let tensors: std::collections::HashMap<_, _> =
            net.to_tensors().unwrap().into_iter().collect();
        let back = MetaNet::from_tensors(
            |k| {
                tensors
                    .get(k)
                    .cloned()
                    .ok_or_else(|| crate::error::Error::Weights(format!("no tensor {k}")))
            },
            net.layers.len(),
            net.best_epoch,
        )
        .unwrap();
        assert_eq!(back, net);
    }

    #[test]
    fn offset_model_starts_at_the_offset_and_learns_what_it_misses() {
        // Column 0 is the offset (a calibrated logit); column 1 carries extra signal the offset
        // lacks; column 2 is noise.
        let mut rng = StdRng::seed_from_u64(4);
        let n = 4000;
        let mut rows = Vec::new();
        let mut correct = Vec::new();
        for _ in 0..n {
            let o: f32 = rng.random_range(-3.0..3.0);
            let extra: f32 = rng.random_range(-2.0..2.0);
            rows.extend([o, extra, rng.random_range(-1.0..1.0)]);
            correct.push(rng.random::<f32>() < sigmoid(o + 1.5 * extra));
        }
        let fit: Vec<usize> = (0..3000).collect();
        let stop: Vec<usize> = (3000..n).collect();
        // No epochs: the model is the offset itself.
        let untrained = MetaNetConfig {
            max_epochs: 0,
            hidden: vec![],
            ..Default::default()
        };
        let (net0, report0) = MetaNet::train(
            &rows,
            3,
            &correct,
            &fit,
            &stop,
            &untrained,
            1,
            &[1, 2],
            Some(0),
        )
        .unwrap();
        assert_eq!(report0.best_epoch, 0);
        for i in 0..20 {
            let row = &rows[3 * i..3 * i + 3];
            assert!((net0.logit(row) - row[0]).abs() < 1e-6);
        }
        // Trained, the linear g picks up column 1.
        let cfg = MetaNetConfig {
            max_epochs: 60,
            hidden: vec![],
            ..Default::default()
        };
        let (net, _) =
            MetaNet::train(&rows, 3, &correct, &fit, &stop, &cfg, 1, &[1, 2], Some(0)).unwrap();
        let labels: Vec<bool> = stop.iter().map(|&i| correct[i]).collect();
        let auroc = |f: &dyn Fn(&[f32]) -> f32| {
            let s: Vec<f32> = stop.iter().map(|&i| f(&rows[3 * i..3 * i + 3])).collect();
            crate::metrics::auroc(&s, &labels).unwrap()
        };
        let (learned, offset_only) = (auroc(&|r| net.logit(r)), auroc(&|r| r[0]));
        assert!(learned > offset_only + 0.02, "{learned} vs {offset_only}");
        let tensors: std::collections::HashMap<_, _> =
            net.to_tensors().unwrap().into_iter().collect();
        let back = MetaNet::from_tensors(
            |k| {
                tensors
                    .get(k)
                    .cloned()
                    .ok_or_else(|| crate::error::Error::Weights(format!("no tensor {k}")))
            },
            net.layers.len(),
            net.best_epoch,
        )
        .unwrap();
        assert_eq!(back, net);
    }

    #[test]
    fn loss_stays_finite_on_saturated_logits() {
        let x = Tensor::new(&[[40f32], [-40.0], [0.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[0f32], [1.0], [1.0]], &Device::Cpu).unwrap();
        let loss = bce_with_logits(&x, &y).unwrap().to_scalar::<f32>().unwrap();
        // (40 + 40 + ln 2) / 3.
        assert!((loss - (80.0 + 2f32.ln()) / 3.0).abs() < 1e-4, "{loss}");
    }

    #[test]
    fn platt_recovers_known_slope() {
        let mut rng = StdRng::seed_from_u64(9);
        let z: Vec<f32> = (0..20000).map(|_| rng.random_range(-4.0..4.0)).collect();
        let y: Vec<bool> = z
            .iter()
            .map(|&v| rng.random::<f32>() < sigmoid(0.5 * v - 1.0))
            .collect();
        let (a, b) = fit_platt(&z, &y);
        assert!(
            (a - 0.5).abs() < 0.05 && (b + 1.0).abs() < 0.08,
            "a {a} b {b}"
        );
    }
}

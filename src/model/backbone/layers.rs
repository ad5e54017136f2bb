//! Building blocks shared by the backbones: convolution + inference-mode BatchNorm, padding
//! modes, and a max-pool that supports backprop.

use std::sync::OnceLock;

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use super::conv::Conv;
use super::depthwise::Depthwise;
pub use super::kernel::Activation;
use super::kernel::{contiguous_slice, fast_kernels, zeros, Float};
use rayon::prelude::*;

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// PyTorch style: the same amount on every side.
    Symmetric(usize),
    /// TensorFlow "SAME": output = ceil(input / stride); for an odd total the extra row and
    /// column go to the bottom and right.
    TfSame,
}

/// A bias-free convolution followed by BatchNorm in inference mode, folded into one
/// convolution with a bias at load time.
///
/// Running-statistics BatchNorm is the per-channel affine map y = scale * x + shift with
/// scale = gamma / sqrt(var + eps) and shift = beta - mean * scale, so the convolution weight is
/// multiplied by `scale` and `shift` becomes its bias: one op less per layer, forward and backward.
#[derive(Debug, Clone)]
pub struct ConvBn {
    /// `(out, in / groups, k, k)`, BatchNorm scale folded in.
    weight: Tensor,
    /// `(1, out, 1, 1)`.
    bias: Tensor,
    /// `weight` as the `(in·k·k, out)` matrix the fast input gradient reads
    /// (`Conv::transposed_weight`), built on the first gradient: models never differentiated
    /// do not hold a second copy.
    weight_t: OnceLock<Tensor>,
    kernel: usize,
    stride: usize,
    groups: usize,
    padding: Padding,
}

pub struct ConvSpec {
    pub in_ch: usize,
    pub out_ch: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub padding: Padding,
    pub bn_eps: f64,
}

impl ConvBn {
    /// Loads `<conv>.weight` and `<bn>.{weight,bias,running_mean,running_var}`.
    pub fn load(spec: &ConvSpec, conv: VarBuilder, bn: VarBuilder) -> Result<Self> {
        // The hints only matter for randomly initialised networks (benchmarks, tests); without
        // one candle initialises to zeros, which would make every comparison vacuous.
        let weight = conv.get_with_hints(
            (
                spec.out_ch,
                spec.in_ch / spec.groups,
                spec.kernel,
                spec.kernel,
            ),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let gamma = bn.get_with_hints(spec.out_ch, "weight", Init::Const(1.0))?;
        let beta = bn.get_with_hints(spec.out_ch, "bias", Init::Const(0.0))?;
        let mean = bn.get_with_hints(spec.out_ch, "running_mean", Init::Const(0.0))?;
        let var = bn.get_with_hints(spec.out_ch, "running_var", Init::Const(1.0))?;
        let scale = gamma.div(&(var + spec.bn_eps)?.sqrt()?)?;
        let shift = beta.sub(&mean.mul(&scale)?)?;
        let weight = weight.broadcast_mul(&scale.reshape((spec.out_ch, 1, 1, 1))?)?;
        Ok(Self {
            weight,
            bias: shift.reshape((1, spec.out_ch, 1, 1))?,
            weight_t: OnceLock::new(),
            kernel: spec.kernel,
            stride: spec.stride,
            groups: spec.groups,
            padding: spec.padding,
        })
    }

    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.weight.dim(0).unwrap_or(0)
    }

    /// Zero padding of an `h`×`w` input: top, bottom, left, right.
    fn pad_sides(&self, h: usize, w: usize) -> [usize; 4] {
        match self.padding {
            Padding::Symmetric(p) => [p; 4],
            Padding::TfSame => {
                let ph = tf_same_total(h, self.kernel, self.stride);
                let pw = tf_same_total(w, self.kernel, self.stride);
                [ph / 2, ph - ph / 2, pw / 2, pw - pw / 2]
            }
        }
    }

    /// `activation(conv(x) + bias)`.
    pub fn forward_act(&self, x: &Tensor, activation: Activation) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let pad = self.pad_sides(h, w);
        let constant_weights = !self.weight.track_op() && !self.bias.track_op();
        if fast_kernels(x) && self.groups == 1 && constant_weights {
            let conv = Conv {
                kernel: self.kernel,
                stride: self.stride,
                pad,
                activation,
            };
            return conv.apply(x, &self.weight, &self.bias);
        }
        let y = if fast_kernels(x) && self.is_depthwise() {
            let y = self.depthwise(pad).apply(x, &self.weight)?;
            if !y.track_op() {
                return bias_act(&y, &self.bias, activation);
            }
            y
        } else {
            // candle's own kernels: CUDA, and the reference path.
            let (x, p) = match self.padding {
                Padding::Symmetric(p) => (x.clone(), p),
                Padding::TfSame => (tf_same_pad(x, self.kernel, self.stride)?, 0),
            };
            x.conv2d(&self.weight, p, self.stride, 1, self.groups)?
        };
        activate(&y.broadcast_add(&self.bias)?, activation)
    }

    fn depthwise(&self, pad: [usize; 4]) -> Depthwise {
        Depthwise {
            kernel: self.kernel,
            stride: self.stride,
            pad,
        }
    }

    /// ∂loss/∂x from ∂loss/∂out, where `out = self.forward_act(x, activation)` ran on the fast
    /// CPU kernels (the manual backward path; see `Backbone::input_gradient`).
    pub fn input_grad(
        &self,
        x: &Tensor,
        out: &Tensor,
        grad: &Tensor,
        activation: Activation,
    ) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let pad = self.pad_sides(h, w);
        if self.is_depthwise() {
            let grad = mask_grad(grad, out, activation)?;
            return self
                .depthwise(pad)
                .input_grad(x.shape(), &grad, &self.weight);
        }
        if self.groups != 1 {
            candle_core::bail!("grouped convolutions have no manual backward");
        }
        let conv = Conv {
            kernel: self.kernel,
            stride: self.stride,
            pad,
            activation,
        };
        // The identity reads no output: the gradient stands in for it.
        let out = if activation == Activation::Identity {
            grad
        } else {
            out
        };
        let weight_t = match self.weight_t.get() {
            Some(t) => t,
            None => {
                let t = Conv::transposed_weight(&self.weight)?;
                self.weight_t.get_or_init(|| t)
            }
        };
        conv.input_grad(x.shape(), grad, out, weight_t)
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity)
    }
}

/// Applies `activation` as a separate op.
pub fn activate(x: &Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Identity => Ok(x.clone()),
        Activation::Relu => x.relu(),
        Activation::Relu6 => relu6(x),
    }
}

/// Total TensorFlow "SAME" padding of one dimension.
fn tf_same_total(size: usize, kernel: usize, stride: usize) -> usize {
    let out = size.div_ceil(stride);
    ((out - 1) * stride + kernel).saturating_sub(size)
}

/// Zero-pads height and width the way TensorFlow's "SAME" does.
pub fn tf_same_pad(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (ph, pw) = (
        tf_same_total(h, kernel, stride),
        tf_same_total(w, kernel, stride),
    );
    if ph == 0 && pw == 0 {
        return Ok(x.clone());
    }
    x.pad_with_zeros(2, ph / 2, ph - ph / 2)?
        .pad_with_zeros(3, pw / 2, pw - pw / 2)
}

pub use super::activation::relu6;
use super::activation::{bias_act, mask_grad};

/// Global average pooling: `(N, C, H, W)` to `(N, C)`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}

/// ∂loss/∂x of `global_avg_pool` for an input of shape `x`, from ∂loss/∂out `(N, C)`.
pub fn global_avg_pool_grad(x: &candle_core::Shape, grad: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    (grad / (h * w) as f64)?
        .reshape((n, c, 1, 1))?
        .broadcast_as((n, c, h, w))?
        .contiguous()
}

/// ∂loss/∂x of `max_pool_3x3_s2(x)` from ∂loss/∂out: each output's gradient goes to the first
/// maximum of its window (the manual backward path).
pub fn max_pool_3x3_s2_grad(x: &Tensor, grad: &Tensor) -> Result<Tensor> {
    grad.contiguous()?
        .apply_op2_no_bwd(&x.contiguous()?, &MaxPoolGrad)
}

struct MaxPoolGrad;

impl MaxPoolGrad {
    fn run<T: Float>(g: &[T], x: &[T], (h, w): (usize, usize)) -> Vec<T> {
        let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
        let mut dx = zeros(x.len());
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(g.par_chunks(oh * ow))
            .for_each(|((dx, x), g)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        // Zero padding: the inputs are non-negative, as in the forward.
                        let mut best = (T::ZERO, None);
                        for iy in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h) {
                            for ix in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(w) {
                                let v = x[iy * w + ix];
                                if best.1.is_none() || v > best.0 {
                                    best = (v, Some(iy * w + ix));
                                }
                            }
                        }
                        if let (v, Some(i)) = best {
                            if v >= T::ZERO {
                                dx[i] += g[oy * ow + ox];
                            }
                        }
                    }
                }
            });
        dx
    }
}

impl candle_core::CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool-3x3-s2-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage::{F32, F64};
        let (n, c, h, w) = l2.shape().dims4()?;
        if l1.shape().dims4()? != (n, c, h.div_ceil(2), w.div_ceil(2)) {
            candle_core::bail!(
                "max-pool grad: {:?} does not fit {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let (g, x) = ("max-pool grad", "max-pool input");
        let out = match (s1, s2) {
            (F32(_), F32(_)) => F32(Self::run(
                contiguous_slice(s1, l1, g)?,
                contiguous_slice(s2, l2, x)?,
                (h, w),
            )),
            (F64(_), F64(_)) => F64(Self::run(
                contiguous_slice(s1, l1, g)?,
                contiguous_slice(s2, l2, x)?,
                (h, w),
            )),
            _ => candle_core::bail!("max-pool grad: f32 or f64 of one dtype expected"),
        };
        Ok((out, l2.shape().clone()))
    }
}

/// `max_pool_3x3_s2` on the CPU: each plane in one pass, planes in parallel. candle's
/// padded copy and `max_pool2d` took 5 % of resnet18 @64's forward on a 2-core Xeon.
struct MaxPool;

impl MaxPool {
    fn run<T: Float>(x: &[T], (h, w): (usize, usize)) -> Vec<T> {
        let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
        let mut out = zeros(x.len() / (h * w).max(1) * oh * ow);
        if h * w == 0 {
            return out;
        }
        out.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .for_each(|(out, x)| {
                for (oy, out) in out.chunks_exact_mut(ow).enumerate() {
                    let rows = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h);
                    let padded_rows = oy == 0 || 2 * oy + 1 >= h;
                    for (ox, o) in out.iter_mut().enumerate() {
                        let cols = (2 * ox).saturating_sub(1)..(2 * ox + 2).min(w);
                        // The window's zero padding takes part in the maximum, as in candle's
                        // max-pool of the zero-padded input.
                        let mut best = None;
                        if padded_rows || ox == 0 || 2 * ox + 1 >= w {
                            best = Some(T::ZERO);
                        }
                        for iy in rows.clone() {
                            for &v in &x[iy * w + cols.start..iy * w + cols.end] {
                                if best.is_none_or(|b| v > b) {
                                    best = Some(v);
                                }
                            }
                        }
                        *o = best.unwrap_or(T::ZERO);
                    }
                }
            });
        out
    }
}

impl candle_core::CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool-3x3-s2"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage::{F32, F64};
        let (n, c, h, w) = l.shape().dims4()?;
        let out = match s {
            F32(_) => F32(Self::run(contiguous_slice(s, l, "max-pool input")?, (h, w))),
            F64(_) => F64(Self::run(contiguous_slice(s, l, "max-pool input")?, (h, w))),
            _ => candle_core::bail!("max-pool: f32 or f64 expected"),
        };
        Ok((out, (n, c, h.div_ceil(2), w.div_ceil(2)).into()))
    }
}

/// 3x3 max-pool with stride 2 and padding 1, for inputs that are non-negative (it follows a
/// ReLU in ResNet, so zero padding equals -inf padding).
///
/// candle cannot backprop its `max_pool2d` when kernel != stride. When the input tracks
/// gradients, the pool is computed as the maximum of the nine strided shifted views instead,
/// which candle differentiates; the plain kernel is used otherwise. Both give identical output.
pub fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    if !x.track_op() && fast_kernels(x) {
        return x.contiguous()?.apply_op1_no_bwd(&MaxPool);
    }
    if !x.track_op() {
        return x
            .pad_with_zeros(2, 1, 1)?
            .pad_with_zeros(3, 1, 1)?
            .max_pool2d_with_stride(3, 2);
    }
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    // One extra zero row/column at the end so every shifted view has 2 * out elements.
    let padded = x.pad_with_zeros(2, 1, 2)?.pad_with_zeros(3, 1, 2)?;
    let mut result: Option<Tensor> = None;
    for dy in 0..3 {
        let rows = padded
            .narrow(2, dy, 2 * oh)?
            .reshape((n, c, oh, 2, w + 3))?
            .narrow(3, 0, 1)?
            .squeeze(3)?;
        for dx in 0..3 {
            let view = rows
                .narrow(3, dx, 2 * ow)?
                .reshape((n, c, oh, ow, 2))?
                .narrow(4, 0, 1)?
                .squeeze(4)?;
            result = Some(match result {
                None => view,
                Some(acc) => acc.maximum(&view)?,
            });
        }
    }
    Ok(result.expect("nine views"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backbone::kernel::with_plain_kernels;
    use candle_core::{DType, Device, Var};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn as_vec(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// The manual max-pool gradient against candle: its `max_pool2d` for the forward, and its
    /// autograd (through the differentiable nine-view pool, as candle cannot backprop
    /// `max_pool2d` with kernel != stride) for the gradient. Seeded positive inputs without
    /// ties, as after a ReLU; odd and even sizes.
    #[test]
    fn max_pool_grad_matches_candle_autograd() {
        let mut rng = StdRng::seed_from_u64(17);
        for (n, c, h, w) in [
            (1, 1, 1, 1),
            (1, 1, 2, 3),
            (2, 3, 7, 9),
            (2, 4, 8, 8),
            (1, 2, 15, 12),
        ] {
            for dtype in [DType::F32, DType::F64] {
                let count = n * c * h * w;
                let x: Vec<f64> = (0..count).map(|_| rng.random_range(0.01..1.0)).collect();
                let x = Tensor::from_vec(x, (n, c, h, w), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
                let g: Vec<f64> = (0..n * c * oh * ow)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                let g = Tensor::from_vec(g, (n, c, oh, ow), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let what = format!("{:?} {dtype:?}", (n, c, h, w));
                // Forward: candle's max_pool2d over the zero-padded input.
                let reference = x
                    .pad_with_zeros(2, 1, 1)
                    .unwrap()
                    .pad_with_zeros(3, 1, 1)
                    .unwrap()
                    .max_pool2d_with_stride(3, 2)
                    .unwrap();
                let var = Var::from_tensor(&x).unwrap();
                let tracked = max_pool_3x3_s2(var.as_tensor()).unwrap();
                assert_eq!(as_vec(&tracked), as_vec(&reference), "forward {what}");
                // Backward.
                let grads = tracked
                    .mul(&g)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let theirs = as_vec(grads.get(&var).unwrap());
                let ours = as_vec(&max_pool_3x3_s2_grad(&x, &g).unwrap());
                assert_eq!(ours.len(), theirs.len());
                // An input can win up to four overlapping windows; the sums may be taken in
                // another order, so allow a rounding error of the dtype.
                let ulp = if dtype == DType::F32 { 1e-6 } else { 1e-15 };
                for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                    assert!(
                        (a - b).abs() <= 4.0 * ulp,
                        "{what}: element {i}: {a} vs {b}"
                    );
                }
                // Every output's gradient lands somewhere: nothing lost, nothing doubled.
                let total: f64 = ours.iter().sum();
                let expected: f64 = as_vec(&g).iter().sum();
                assert!(
                    (total - expected).abs() <= count as f64 * ulp,
                    "{what}: total"
                );
            }
        }
    }

    /// Exact ties inside a window: the first maximum in row-major order gets the gradient, as in
    /// PyTorch (whose kernel only replaces the running maximum on a strictly greater value),
    /// not the last one and not a split.
    #[test]
    fn max_pool_grad_gives_tied_windows_gradient_to_the_first_maximum() {
        for dtype in [DType::F32, DType::F64] {
            // A 3x3 input pools to 2x2; window (oy, ox) covers rows 2oy-1..=2oy+1 and the same
            // columns, clipped to the input. Window (0, 0) holds rows 0-1, columns 0-1: four
            // tied 5s. Window (0, 1) holds rows 0-1, columns 1-2: 5 5 / 5 5 too. Window (1, 0)
            // holds rows 1-2, columns 0-1: 5 5 / 2 5. Window (1, 1): 5 5 / 5 1.
            let x = Tensor::new(
                &[[5.0, 5.0, 5.0], [5.0, 5.0, 5.0], [2.0, 5.0, 1.0]],
                &Device::Cpu,
            )
            .unwrap()
            .reshape((1, 1, 3, 3))
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
            let g = Tensor::new(&[[1.0, 10.0], [100.0, 1000.0]], &Device::Cpu)
                .unwrap()
                .reshape((1, 1, 2, 2))
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let ours = as_vec(&max_pool_3x3_s2_grad(&x, &g).unwrap());
            // First maximum of each window: (0,0), (0,1), (1,0), (1,1).
            let first = [1.0, 10.0, 0.0, 100.0, 1000.0, 0.0, 0.0, 0.0, 0.0];
            // A last-maximum rule would give them to (1,1), (1,2), (2,1), (2,1).
            let last = [0.0, 0.0, 0.0, 0.0, 1.0, 10.0, 0.0, 1100.0, 0.0];
            assert_ne!(first, last, "the test must tell the two rules apart");
            assert_eq!(ours, first, "{dtype:?}");
            // The maximum ties inside one row as well: first by column.
            let x = Tensor::new(&[[1.0, 7.0, 7.0, 3.0]], &Device::Cpu)
                .unwrap()
                .reshape((1, 1, 1, 4))
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let g = Tensor::new(&[[1.0, 2.0]], &Device::Cpu)
                .unwrap()
                .reshape((1, 1, 1, 2))
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            // Window 0: columns 0-1 -> 7 at 1. Window 1: columns 1-3, 7 7 3 -> column 1, not 2.
            assert_eq!(
                as_vec(&max_pool_3x3_s2_grad(&x, &g).unwrap()),
                [0.0, 3.0, 0.0, 0.0],
                "{dtype:?}"
            );
        }
    }

    #[test]
    fn tf_same_padding_puts_the_extra_row_at_the_bottom() {
        let x = Tensor::ones((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        // k=3, s=2 on 4: out 2, total pad (2-1)*2+3-4 = 1 -> 0 top, 1 bottom.
        let p = tf_same_pad(&x, 3, 2).unwrap();
        assert_eq!(p.dims4().unwrap(), (1, 1, 5, 5));
        let v = p
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(v[0][0], 1.0);
        assert_eq!(v[4][0], 0.0);
        assert_eq!(v[0][4], 0.0);
        // k=5, s=2 on 4: total 3 -> 1 top, 2 bottom.
        let p = tf_same_pad(&x, 5, 2).unwrap();
        assert_eq!(p.dims4().unwrap(), (1, 1, 7, 7));
        let v = p
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!((v[0][1], v[1][1], v[4][1], v[5][1]), (0.0, 1.0, 1.0, 0.0));
    }

    #[test]
    fn fast_max_pool_equals_candles_on_the_zero_padded_input() {
        // Negative values too, so that the padding's zeros decide some windows.
        for (h, w) in [(8, 8), (7, 9), (1, 2), (2, 1), (5, 4)] {
            for dtype in [DType::F32, DType::F64] {
                let data: Vec<f64> = (0..2 * 3 * h * w)
                    .map(|i| ((i * 7919) % 101) as f64 / 10.0 - 5.0)
                    .collect();
                let x = Tensor::from_vec(data, (2, 3, h, w), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let ours = max_pool_3x3_s2(&x).unwrap();
                let theirs = with_plain_kernels(|| max_pool_3x3_s2(&x).unwrap());
                assert_eq!(ours.dims(), theirs.dims(), "{h}x{w}");
                assert_eq!(as_vec(&ours), as_vec(&theirs), "{h}x{w} {dtype:?}");
            }
        }
    }

    #[test]
    fn differentiable_max_pool_matches_the_kernel_and_backprops() {
        for (h, w) in [(8, 8), (7, 9), (1, 2)] {
            let data: Vec<f32> = (0..2 * 3 * h * w)
                .map(|i| ((i * 7919) % 101) as f32 / 10.0 + 0.1)
                .collect();
            let x = Tensor::from_vec(data, (2, 3, h, w), &Device::Cpu).unwrap();
            let plain = max_pool_3x3_s2(&x).unwrap();
            let var = Var::from_tensor(&x).unwrap();
            let tracked = max_pool_3x3_s2(var.as_tensor()).unwrap();
            assert_eq!(plain.dims(), tracked.dims());
            let diff = (plain - &tracked)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
            let grads = tracked.sum_all().unwrap().backward().unwrap();
            let g = grads.get(&var).unwrap();
            // Inputs are positive, so padding never wins and each output's unit gradient lands
            // on real inputs (split evenly between tied maxima): it sums to the output count.
            let total = g.sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(total, tracked.elem_count() as f32);
        }
    }
}

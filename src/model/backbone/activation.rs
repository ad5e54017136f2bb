//! ReLU6 as one CPU op with its own backward.
//!
//! candle's `clamp` is a `maximum` then a `minimum`, and each of their backward passes builds
//! several masks over the whole tensor; EfficientNet applies ReLU6 after almost every
//! convolution, so input gradients spent much of their time there. Here the forward is one pass
//! and the backward one pass (gradient where 0 < x < 6, as PyTorch's hardtanh).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::{
    contiguous_slice, dispatch, fast_kernels, widest_simd, zeros, Activation, Float,
};

/// Elements per rayon task: large enough that scheduling costs nothing.
const CHUNK: usize = 1 << 14;

pub fn relu6(x: &Tensor) -> Result<Tensor> {
    if fast_kernels(x) {
        x.contiguous()?.apply_op1(Relu6)
    } else {
        x.clamp(0f32, 6f32)
    }
}

struct Relu6;

impl CustomOp1 for Relu6 {
    fn name(&self) -> &'static str {
        "relu6"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => {
                CpuStorage::F32(map(contiguous_slice::<f32>(s, l, "relu6 input")?, |v| {
                    v.clamp(0.0, 6.0)
                }))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(map(contiguous_slice::<f64>(s, l, "relu6 input")?, |v| {
                    v.clamp(0.0, 6.0)
                }))
            }
            _ => candle_core::bail!("relu6: f32 or f64 expected"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // 0 < relu6(x) < 6 exactly where 0 < x < 6.
        Ok(Some(mask_grad(grad, res, Activation::Relu6)?))
    }
}

fn map<T: Copy + Send + Sync + Default>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::default(); x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, i)| {
            widest_simd(|| {
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = f(v);
                }
            })
        });
    out
}

/// `activation(x + bias[c])` over `(N, C, H, W)` in one pass, for the manual backward path
/// (no autograd history).
pub fn bias_act(x: &Tensor, bias: &Tensor, activation: Activation) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&bias.contiguous()?, &Elementwise::BiasAct(activation))
}

/// `grad` where `activation` lets it pass, judged from the activation's output `out`.
pub fn mask_grad(grad: &Tensor, out: &Tensor, activation: Activation) -> Result<Tensor> {
    if activation == Activation::Identity {
        return Ok(grad.clone());
    }
    grad.contiguous()?
        .apply_op2_no_bwd(&out.contiguous()?, &Elementwise::MaskGrad(activation))
}

/// `relu(a + b)` in one pass, for the manual backward path (no autograd history).
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?
        .apply_op2_no_bwd(&b.contiguous()?, &Elementwise::AddRelu)
}

enum Elementwise {
    BiasAct(Activation),
    MaskGrad(Activation),
    AddRelu,
}

impl Elementwise {
    fn run<T: Float>(&self, a: &[T], b: &[T], plane: usize) -> Vec<T> {
        let mut out = zeros(a.len());
        match *self {
            Self::BiasAct(act) => {
                let channels = b.len();
                out.par_chunks_mut(plane)
                    .zip(a.par_chunks(plane))
                    .enumerate()
                    .for_each(|(p, (o, x))| {
                        act.apply_slice(x, b[p % channels], o);
                    });
            }
            Self::MaskGrad(act) => out
                .par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                .for_each(|(o, (g, y))| act.mask_slice(g, y, o)),
            Self::AddRelu => zip_map(&mut out, a, b, |x, y| (x + y).max(T::ZERO)),
        }
        out
    }
}

fn zip_map<T: Float>(out: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| {
            widest_simd(|| {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                    *o = f(a, b);
                }
            })
        });
}

impl CustomOp2 for Elementwise {
    fn name(&self) -> &'static str {
        match self {
            Self::BiasAct(_) => "bias-activation",
            Self::MaskGrad(_) => "activation-grad",
            Self::AddRelu => "add-relu",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = l1.shape();
        let plane = match self {
            Self::BiasAct(_) => {
                let (n, c, h, w) = shape.dims4()?;
                if l2.shape().elem_count() != c || n * c * h * w == 0 {
                    candle_core::bail!("bias {:?} does not fit {shape:?}", l2.shape());
                }
                h * w
            }
            _ if l2.shape() != shape => {
                candle_core::bail!(
                    "{}: shapes {shape:?} and {:?} differ",
                    self.name(),
                    l2.shape()
                )
            }
            _ => 1,
        };
        let out = dispatch(
            self.name(),
            [(s1, l1), (s2, l2)],
            |[a, b]| self.run(a, b, plane),
            |[a, b]| self.run(a, b, plane),
        )?;
        Ok((out, shape.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Seeded values uniform in `[lo, hi)`, as a tensor of `dtype`.
    fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64, dtype: DType) -> Tensor {
        let mut rng = StdRng::seed_from_u64(seed);
        let count = shape.iter().product::<usize>();
        let data: Vec<f64> = (0..count).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_vec(data, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    /// Exact equality, element by element (both sides do the same rounding steps).
    fn assert_same(ours: &Tensor, theirs: &Tensor, what: &str) {
        assert_eq!(ours.dims(), theirs.dims(), "{what}: shapes");
        let a = ours.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
        let b = theirs.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
        let (a, b) = (a.to_vec1::<f64>().unwrap(), b.to_vec1::<f64>().unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "{what}: element {i}");
        }
    }

    /// Odd and even sizes; the middle one is larger than one rayon chunk.
    const SHAPES: [[usize; 4]; 3] = [[1, 1, 1, 1], [2, 3, 5, 7], [3, 5, 63, 65]];
    const DTYPES: [DType; 2] = [DType::F32, DType::F64];
    const ACTIVATIONS: [Activation; 3] =
        [Activation::Identity, Activation::Relu, Activation::Relu6];

    /// candle's ops for `activation`.
    fn candle_activation(x: &Tensor, activation: Activation) -> Tensor {
        match activation {
            Activation::Identity => x.clone(),
            Activation::Relu => x.relu().unwrap(),
            Activation::Relu6 => x.clamp(0f32, 6f32).unwrap(),
        }
    }

    #[test]
    fn bias_act_matches_broadcast_add_and_candle_activation() {
        for (seed, shape) in SHAPES.iter().enumerate() {
            for dtype in DTYPES {
                let c = shape[1];
                // Wide enough that both ReLU6 limits are crossed.
                let x = uniform(shape, -8.0, 8.0, seed as u64, dtype);
                let bias = uniform(&[c], -2.0, 2.0, 100 + seed as u64, dtype);
                for act in ACTIVATIONS {
                    let ours = bias_act(&x, &bias, act).unwrap();
                    let sum = x
                        .broadcast_add(&bias.reshape((1, c, 1, 1)).unwrap())
                        .unwrap();
                    let theirs = candle_activation(&sum, act);
                    assert_same(&ours, &theirs, &format!("{act:?} {shape:?} {dtype:?}"));
                }
                // The bias may also come as `(1, C, 1, 1)`, as ConvBn holds it.
                let ours = bias_act(&x, &bias.reshape((1, c, 1, 1)).unwrap(), Activation::Relu6);
                let theirs = bias_act(&x, &bias, Activation::Relu6).unwrap();
                assert_same(&ours.unwrap(), &theirs, "(1, C, 1, 1) bias");
            }
        }
    }

    #[test]
    fn mask_grad_matches_a_mask_built_by_comparison() {
        for (seed, shape) in SHAPES.iter().enumerate() {
            for dtype in DTYPES {
                let grad = uniform(shape, -1.0, 1.0, 200 + seed as u64, dtype);
                let x = uniform(shape, -8.0, 8.0, 300 + seed as u64, dtype);
                for act in ACTIVATIONS {
                    // The activation's output: exact 0s (and 6s) wherever it clamps.
                    let out = candle_activation(&x, act);
                    let ours = mask_grad(&grad, &out, act).unwrap();
                    let pass = match act {
                        Activation::Identity => out.ones_like().unwrap(),
                        Activation::Relu => out.gt(0.0).unwrap().to_dtype(dtype).unwrap(),
                        Activation::Relu6 => {
                            let above = out.gt(0.0).unwrap().to_dtype(dtype).unwrap();
                            let below = out.lt(6.0).unwrap().to_dtype(dtype).unwrap();
                            (above * below).unwrap()
                        }
                    };
                    let theirs = grad.mul(&pass).unwrap();
                    assert_same(&ours, &theirs, &format!("{act:?} {shape:?} {dtype:?}"));
                    // And it is what candle's autograd gives, away from the exact limits
                    // (where candle passes part of the gradient and PyTorch none).
                    let var = Var::from_tensor(&x).unwrap();
                    let y = candle_activation(var.as_tensor(), act);
                    let g = y.mul(&grad).unwrap().sum_all().unwrap().backward().unwrap();
                    let autograd = g.get(&var).unwrap();
                    let at_limit = match act {
                        Activation::Identity => x.zeros_like().unwrap(),
                        Activation::Relu => x.eq(0.0).unwrap().to_dtype(dtype).unwrap(),
                        Activation::Relu6 => (x.eq(0.0).unwrap().to_dtype(dtype).unwrap()
                            + x.eq(6.0).unwrap().to_dtype(dtype).unwrap())
                        .unwrap(),
                    };
                    let keep = (at_limit.ones_like().unwrap() - at_limit).unwrap();
                    assert_same(
                        &ours.mul(&keep).unwrap(),
                        &autograd.mul(&keep).unwrap(),
                        &format!("autograd {act:?} {shape:?} {dtype:?}"),
                    );
                }
            }
        }
    }

    #[test]
    fn mask_grad_blocks_the_gradient_at_the_limits() {
        for dtype in DTYPES {
            let out = Tensor::new(&[0.0, 1e-3, 3.0, 6.0 - 1e-3, 6.0], &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let grad = out.ones_like().unwrap();
            let relu = mask_grad(&grad, &out, Activation::Relu).unwrap();
            let relu6 = mask_grad(&grad, &out, Activation::Relu6).unwrap();
            let as_vec = |t: Tensor| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
            assert_eq!(as_vec(relu), [0.0, 1.0, 1.0, 1.0, 1.0]);
            assert_eq!(as_vec(relu6), [0.0, 1.0, 1.0, 1.0, 0.0]);
        }
    }

    #[test]
    fn add_relu_matches_add_then_relu() {
        for (seed, shape) in SHAPES.iter().enumerate() {
            for dtype in DTYPES {
                let a = uniform(shape, -1.0, 1.0, 400 + seed as u64, dtype);
                let b = uniform(shape, -1.0, 1.0, 500 + seed as u64, dtype);
                let ours = add_relu(&a, &b).unwrap();
                let theirs = (&a + &b).unwrap().relu().unwrap();
                assert_same(&ours, &theirs, &format!("{shape:?} {dtype:?}"));
            }
        }
        // Mismatched shapes are an error, not a silent broadcast.
        let a = uniform(&[2, 3], -1.0, 1.0, 1, DType::F32);
        let b = uniform(&[3, 2], -1.0, 1.0, 2, DType::F32);
        assert!(add_relu(&a, &b).is_err());
    }

    #[test]
    fn matches_clamp_forward_and_backward() {
        let data: Vec<f32> = (0..200).map(|i| (i as f32 - 50.0) * 0.07).collect();
        let x = Var::from_tensor(&Tensor::from_vec(data, (2, 100), &Device::Cpu).unwrap()).unwrap();
        let weights = Tensor::arange(0f32, 200.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 100))
            .unwrap();
        let ours = relu6(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().clamp(0f32, 6f32).unwrap();
        assert_eq!(
            ours.to_vec2::<f32>().unwrap(),
            theirs.to_vec2::<f32>().unwrap()
        );
        let g1 = ours
            .mul(&weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = theirs
            .mul(&weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
        // Away from the exact boundaries the two agree; none of the inputs is exactly 0 or 6
        // except x = 0 (i = 50), where clamp passes half the gradient and ReLU6' is 0.
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        for i in 0..200 {
            if i != 50 {
                assert_eq!(a[i], b[i], "element {i}");
            }
        }
        assert_eq!(a[50], 0.0);
    }
}

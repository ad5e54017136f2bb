//! ReLU6 as one CPU op with its own backward.
//!
//! candle's `clamp` is a `maximum` then a `minimum`, and each of their backward passes builds
//! several masks over the whole tensor; EfficientNet applies ReLU6 after almost every
//! convolution, so input gradients spent much of their time there. Here the forward is one pass
//! and the backward one pass (gradient where 0 < x < 6, as PyTorch's hardtanh).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::{contiguous_slice, dispatch, fast_kernels, Activation, Float};

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
            for (o, &v) in o.iter_mut().zip(i) {
                *o = f(v);
            }
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
        let mut out = vec![T::ZERO; a.len()];
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
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
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
    use candle_core::{Device, Var};

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

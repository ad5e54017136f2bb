//! ReLU6 as one CPU op with its own backward.
//!
//! candle's `clamp` is a `maximum` then a `minimum`, and each of their backward passes builds
//! several masks over the whole tensor; EfficientNet applies ReLU6 after almost every
//! convolution, so input gradients spent much of their time there. Here the forward is one pass
//! and the backward one pass (gradient where 0 < x < 6, as PyTorch's hardtanh).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per rayon task: large enough that scheduling costs nothing.
const CHUNK: usize = 1 << 14;

pub fn relu6(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(Relu6)
    } else {
        x.clamp(0f32, 6f32)
    }
}

fn contiguous<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("relu6: input must be contiguous"),
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
                CpuStorage::F32(map(contiguous::<f32>(s, l)?, |v| v.clamp(0.0, 6.0)))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(map(contiguous::<f64>(s, l)?, |v| v.clamp(0.0, 6.0)))
            }
            _ => candle_core::bail!("relu6: f32 or f64 expected"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(x, &Relu6Grad)?))
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

/// `grad` where `0 < x < 6`, else 0.
struct Relu6Grad;

fn masked<T: candle_core::WithDType + PartialOrd + Default>(
    g: &[T],
    x: &[T],
    zero: T,
    six: T,
) -> Vec<T> {
    let mut out = vec![T::default(); g.len()];
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(x.par_chunks(CHUNK)))
        .for_each(|(o, (g, x))| {
            for ((o, &g), &x) in o.iter_mut().zip(g).zip(x) {
                *o = if x > zero && x < six { g } else { T::default() };
            }
        });
    out
}

impl CustomOp2 for Relu6Grad {
    fn name(&self) -> &'static str {
        "relu6-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(masked(
                contiguous::<f32>(s1, l1)?,
                contiguous::<f32>(s2, l2)?,
                0.0,
                6.0,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(masked(
                contiguous::<f64>(s1, l1)?,
                contiguous::<f64>(s2, l2)?,
                0.0,
                6.0,
            )),
            _ => candle_core::bail!("relu6: f32 or f64 of one dtype expected"),
        };
        Ok((out, l1.shape().clone()))
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

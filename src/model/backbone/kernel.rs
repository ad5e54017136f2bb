//! What every CPU kernel of the backbones shares: the float types they are written for, the
//! activation they fuse, how they read candle's storage, and the switch between REASON's
//! kernels and candle's own (the reference they are tested and benchmarked against).

use std::cell::Cell;
use std::sync::LazyLock;
use std::thread::LocalKey;

use candle_core::{CpuStorage, Layout, Result, Tensor};
use rayon::prelude::*;

/// The activation fused after the convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
    /// min(max(x, 0), 6), as in EfficientNet-Lite.
    Relu6,
}

pub trait Float:
    candle_core::WithDType + Default + PartialOrd + std::ops::Mul<Output = Self> + std::ops::AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    const SIX: Self;

    /// This thread's spare scratch vectors of this type (see [`with_scratch`]).
    fn spares() -> &'static LocalKey<Cell<Vec<Vec<Self>>>>;
}

thread_local! {
    static SPARE_F32: Cell<Vec<Vec<f32>>> = const { Cell::new(Vec::new()) };
    static SPARE_F64: Cell<Vec<Vec<f64>>> = const { Cell::new(Vec::new()) };
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const SIX: Self = 6.0;

    fn spares() -> &'static LocalKey<Cell<Vec<Vec<Self>>>> {
        &SPARE_F32
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const SIX: Self = 6.0;

    fn spares() -> &'static LocalKey<Cell<Vec<Vec<Self>>>> {
        &SPARE_F64
    }
}

/// `len` zeros, written by every thread in parallel. `vec![0.0; len]` zeroes (and first
/// touches) a fresh allocation on the calling thread alone; for Lite0's 224-pixel activations
/// (up to 77 MB per tensor at batch 16) that serial pass was ~14 % of its input-gradient
/// time on a 2-core Xeon, with the other core idle.
pub fn zeros<T: Float>(len: usize) -> Vec<T> {
    const CHUNK: usize = 1 << 16;
    if len < CHUNK {
        return vec![T::ZERO; len];
    }
    let mut values = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| {
            for v in chunk {
                v.write(T::ZERO);
            }
        });
    // SAFETY: the loop above wrote each of the first `len` values, and the capacity is `len`.
    unsafe { values.set_len(len) };
    values
}

/// Runs `f` on `len` values of a scratch vector that this thread keeps between calls, so that
/// the kernels' temporary matrices (im2col, masked gradients) are not allocated and zeroed
/// on every call: that zeroing was 5–7 % of ResNet-50's time at batch 1. The values are
/// whatever an earlier call left; `f` must write every value it reads. The vector is taken
/// out of the thread's list while `f` runs, not borrowed, so a rayon task that runs on this
/// thread meanwhile (while `f` waits on a parallel GEMM) gets another one. Each thread keeps
/// its largest buffers, a few times the largest im2col matrix of the network.
pub fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut scratch = T::spares()
        .with(|spares| {
            let mut list = spares.take();
            let one = list.pop();
            spares.set(list);
            one
        })
        .unwrap_or_default();
    if scratch.len() < len {
        scratch.resize(len, T::ZERO);
    }
    let result = f(&mut scratch[..len]);
    T::spares().with(|spares| {
        let mut list = spares.take();
        list.push(scratch);
        spares.set(list);
    });
    result
}

/// Runs `f` compiled for the widest vector extension this CPU has (AVX-512, else AVX2 with
/// FMA, else the build's baseline), chosen at run time by `pulp` (the SIMD layer of the `gemm`
/// crate). REASON's own loops (depthwise convolutions, im2col, activations, masks) are written
/// to auto-vectorise; without this they were compiled for the x86-64 baseline, SSE2's 128-bit
/// vectors, whatever the CPU. Every path does the same operations in the same order (Rust never
/// fuses a multiply and an add on its own), so results do not depend on the CPU. Call it around
/// a whole loop nest, not per element: the choice is one indirect call.
#[inline(always)]
pub fn widest_simd<R>(f: impl FnOnce() -> R) -> R {
    ARCH.dispatch(f)
}

static ARCH: LazyLock<pulp::Arch> = LazyLock::new(pulp::Arch::new);

/// A loop nest for [`widest_simd_loop`]. `run` must be `#[inline(always)]`, and so must what it
/// calls in its inner loops.
pub trait SimdLoop {
    type Output;
    fn run(self) -> Self::Output;
}

struct Vectorised<L>(L);

impl<L: SimdLoop> pulp::WithSimd for Vectorised<L> {
    type Output = L::Output;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> L::Output {
        self.0.run()
    }
}

/// [`widest_simd`] for large loop nests. A closure is compiled with the CPU's extensions only
/// when LLVM inlines it into pulp's dispatch function, and it declines for large ones: the
/// depthwise kernels' closures stayed SSE2 code (seen with `perf annotate`), 60 % of Lite0's
/// input-gradient time. `#[inline(always)]` on [`SimdLoop::run`] makes the inlining certain.
#[inline(always)]
pub fn widest_simd_loop<L: SimdLoop>(body: L) -> L::Output {
    ARCH.dispatch(Vectorised(body))
}

/// What [`widest_simd`] runs REASON's own loops with on this CPU.
pub fn widest_simd_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        match pulp::Arch::new() {
            pulp::Arch::V4(_) => "avx512 (x86-64-v4, chosen at run time)",
            pulp::Arch::V3(_) => "avx2+fma (x86-64-v3, chosen at run time)",
            _ => "sse2 (x86-64 baseline)",
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon (aarch64 baseline)"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "target baseline"
    }
}

impl Activation {
    /// `dst[i] = activation(src[i] + bias)`. The slice functions match on the activation once,
    /// outside the loop, so that each loop vectorises (per-element matches did not).
    pub fn apply_slice<T: Float>(self, src: &[T], bias: T, dst: &mut [T]) {
        widest_simd(|| {
            let pairs = dst.iter_mut().zip(src);
            match self {
                Self::Identity => pairs.for_each(|(d, &s)| *d = s + bias),
                Self::Relu => pairs.for_each(|(d, &s)| *d = (s + bias).max(T::ZERO)),
                Self::Relu6 => pairs.for_each(|(d, &s)| *d = (s + bias).max(T::ZERO).min(T::SIX)),
            }
        })
    }

    /// `values[i] = activation(values[i] + bias)`.
    pub fn apply_bias_in_place<T: Float>(self, values: &mut [T], bias: T) {
        widest_simd(|| match self {
            Self::Identity => values.iter_mut().for_each(|v| *v += bias),
            Self::Relu => values
                .iter_mut()
                .for_each(|v| *v = (*v + bias).max(T::ZERO)),
            Self::Relu6 => values
                .iter_mut()
                .for_each(|v| *v = (*v + bias).max(T::ZERO).min(T::SIX)),
        })
    }

    /// `dst[i] = grad[i]` where the activation lets the gradient pass, judged from its output
    /// `out[i]` (as PyTorch does).
    pub fn mask_slice<T: Float>(self, grad: &[T], out: &[T], dst: &mut [T]) {
        widest_simd(|| {
            let triples = dst.iter_mut().zip(grad).zip(out);
            match self {
                Self::Identity => dst.copy_from_slice(grad),
                Self::Relu => triples.for_each(|((d, &g), &o)| {
                    *d = if o > T::ZERO { g } else { T::ZERO };
                }),
                Self::Relu6 => triples.for_each(|((d, &g), &o)| {
                    *d = if o > T::ZERO && o < T::SIX {
                        g
                    } else {
                        T::ZERO
                    };
                }),
            }
        })
    }
}

/// Input row of output row `oy` and kernel tap `ky` for a window of this `stride` and `top`
/// padding, if inside an image of `h` rows.
pub fn input_row(stride: usize, top: usize, oy: usize, ky: usize, h: usize) -> Option<usize> {
    (oy * stride + ky).checked_sub(top).filter(|&iy| iy < h)
}

/// `(x0, x1)`: the output columns (of `ow`) whose input column `ox * stride + kx - left` lies
/// inside an image of `w` columns.
pub fn valid_cols(stride: usize, left: usize, kx: usize, w: usize, ow: usize) -> (usize, usize) {
    let first = left.saturating_sub(kx).div_ceil(stride);
    let last = (w + left).saturating_sub(kx).div_ceil(stride).min(ow);
    (first.min(last), last)
}

/// Runs the f32 or the f64 instance of a kernel on `N` operands of one float type, read through
/// [`contiguous_slice`]; `op` names the op in errors.
pub fn dispatch<const N: usize>(
    op: &str,
    operands: [(&CpuStorage, &Layout); N],
    f32_kernel: impl FnOnce([&[f32]; N]) -> Vec<f32>,
    f64_kernel: impl FnOnce([&[f64]; N]) -> Vec<f64>,
) -> Result<CpuStorage> {
    fn slices<'a, T: candle_core::WithDType, const N: usize>(
        op: &str,
        operands: &[(&'a CpuStorage, &Layout); N],
    ) -> Result<[&'a [T]; N]> {
        let mut out = Vec::with_capacity(N);
        for (storage, layout) in operands {
            out.push(contiguous_slice::<T>(storage, layout, op)?);
        }
        Ok(out
            .try_into()
            .unwrap_or_else(|_| unreachable!("one slice per operand")))
    }
    if operands
        .iter()
        .all(|(s, _)| matches!(s, CpuStorage::F32(_)))
    {
        Ok(CpuStorage::F32(f32_kernel(slices(op, &operands)?)))
    } else if operands
        .iter()
        .all(|(s, _)| matches!(s, CpuStorage::F64(_)))
    {
        Ok(CpuStorage::F64(f64_kernel(slices(op, &operands)?)))
    } else {
        candle_core::bail!("{op}: f32 or f64 tensors of one dtype expected")
    }
}

/// The elements of a contiguous CPU tensor; `what` names it in the error (the CPU kernels of
/// every backbone op read their operands through this).
pub fn contiguous_slice<'a, T: candle_core::WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage.as_slice::<T>()?[start..end]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

thread_local! {
    /// Whether this thread uses candle's own kernels for every layer (`with_plain_kernels`).
    static PLAIN_KERNELS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with candle's own kernels (`conv2d`, `clamp`, ...) instead of REASON's CPU
/// kernels, on this thread: the reference the fast path is tested and benchmarked against.
pub fn with_plain_kernels<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PLAIN_KERNELS.set(self.0);
        }
    }
    let _restore = Restore(PLAIN_KERNELS.replace(true));
    f()
}

/// Setting this environment variable to 1 makes every command use candle's own kernels, to
/// compare results or speed with REASON's.
pub const PLAIN_KERNELS_ENV: &str = "REASON_PLAIN_KERNELS";

/// REASON's own kernels run on the CPU unless `with_plain_kernels` or `REASON_PLAIN_KERNELS=1`
/// say otherwise; CUDA keeps candle's kernels.
pub fn fast_kernels(x: &Tensor) -> bool {
    static PLAIN_BY_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let by_env = *PLAIN_BY_ENV
        .get_or_init(|| std::env::var(PLAIN_KERNELS_ENV).is_ok_and(|v| v.trim() == "1"));
    x.device().is_cpu() && !PLAIN_KERNELS.get() && !by_env
}

//! A depthwise convolution kernel for the CPU.
//!
//! candle runs a grouped convolution as one convolution per channel (1,152 of them in some
//! EfficientNet layers), which made Lite0 run at ~3 images/s. Here each (image, channel) plane
//! is one rayon task, and each of its K×K taps one contiguous multiply-add over the plane (see
//! `Grid`), compiled for the CPU's widest vectors. The backward pass gives the input
//! gradient (and the kernel gradient only when the kernel itself tracks gradients), so input
//! gradients through EfficientNet stay on this fast path too. f32 is the fast path; f64 exists
//! so gradients can be checked against finite differences exactly.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::{self, dispatch, widest_simd, widest_simd_loop, zeros, Float, SimdLoop};

/// Geometry of a depthwise convolution with per-side zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depthwise {
    pub kernel: usize,
    pub stride: usize,
    /// Zero padding: top, bottom, left, right.
    pub pad: [usize; 4],
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Depthwise {
    fn dims(&self, n: usize, c: usize, h: usize, w: usize) -> Result<Dims> {
        let [top, bottom, left, right] = self.pad;
        let (hp, wp) = (h + top + bottom, w + left + right);
        if hp < self.kernel || wp < self.kernel {
            candle_core::bail!(
                "depthwise: input {h}x{w} smaller than kernel {}",
                self.kernel
            );
        }
        Ok(Dims {
            n,
            c,
            h,
            w,
            oh: (hp - self.kernel) / self.stride + 1,
            ow: (wp - self.kernel) / self.stride + 1,
        })
    }

    /// Input row of output row `oy` and tap `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize, h: usize) -> Option<usize> {
        kernel::input_row(self.stride, self.pad[0], oy, ky, h)
    }

    /// `(x0, x1)`: the output columns whose input column is inside the image.
    fn valid_cols(&self, kx: usize, w: usize, ow: usize) -> (usize, usize) {
        kernel::valid_cols(self.stride, self.pad[2], kx, w, ow)
    }

    /// ∂loss/∂x for an input of shape `x`, from ∂loss/∂out (the manual backward path).
    pub fn input_grad(&self, x: &Shape, grad: &Tensor, kernel: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let dims = self.dims(n, c, h, w)?;
        grad.contiguous()?
            .apply_op2_no_bwd(&kernel.contiguous()?, &InputGrad { conv: *self, dims })
    }

    /// Applies the convolution: `x` is `(N, C, H, W)`, `kernel` is `(C, 1, K, K)`.
    pub fn apply(&self, x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(&kernel.contiguous()?, *self)
    }

    fn forward<T: Float>(&self, d: Dims, x: &[T], k: &[T]) -> Vec<T> {
        self.planes(d, Pass::Forward, x, k)
    }

    fn input_grad_kernel<T: Float>(&self, d: Dims, g: &[T], k: &[T]) -> Vec<T> {
        self.planes(d, Pass::InputGrad, g, k)
    }

    /// Runs `pass` on every (image, channel) plane of `input`, in parallel.
    fn planes<T: Float>(&self, d: Dims, pass: Pass, input: &[T], k: &[T]) -> Vec<T> {
        let kk = self.kernel * self.kernel;
        let grid = Grid::new(self, d);
        let (in_plane, out_plane) = match pass {
            Pass::Forward => (d.h * d.w, d.oh * d.ow),
            Pass::InputGrad => (d.oh * d.ow, d.h * d.w),
        };
        let mut out = zeros(d.n * d.c * out_plane);
        out.par_chunks_mut(out_plane).enumerate().for_each_init(
            Scratch::default,
            |scratch, (plane, out)| {
                let channel = plane % d.c;
                widest_simd_loop(Plane {
                    conv: self,
                    d,
                    grid,
                    pass,
                    input: &input[plane * in_plane..(plane + 1) * in_plane],
                    taps: &k[channel * kk..(channel + 1) * kk],
                    out,
                    scratch,
                })
            },
        );
        out
    }

    fn kernel_grad<T: Float>(&self, d: Dims, x: &[T], g: &[T]) -> Vec<T> {
        let kk = self.kernel * self.kernel;
        let left = self.pad[2];
        let mut out = vec![T::default(); d.c * kk];
        out.par_chunks_mut(kk)
            .enumerate()
            .for_each(|(channel, dk)| {
                widest_simd(|| {
                    for n in 0..d.n {
                        let plane = n * d.c + channel;
                        let xp = &x[plane * d.h * d.w..(plane + 1) * d.h * d.w];
                        let gp = &g[plane * d.oh * d.ow..(plane + 1) * d.oh * d.ow];
                        for oy in 0..d.oh {
                            for ky in 0..self.kernel {
                                let Some(iy) = self.input_row(oy, ky, d.h) else {
                                    continue;
                                };
                                for kx in 0..self.kernel {
                                    let (x0, x1) = self.valid_cols(kx, d.w, d.ow);
                                    let mut acc = T::default();
                                    for ox in x0..x1 {
                                        acc += gp[oy * d.ow + ox]
                                            * xp[iy * d.w + ox * self.stride + kx - left];
                                    }
                                    dk[ky * self.kernel + kx] += acc;
                                }
                            }
                        }
                    }
                })
            });
        out
    }
}

/// The layout the per-plane loops work in. The zero-padded input plane is split into its
/// `stride × stride` phases (phase (py, px) holds padded rows py, py + s, … and columns px,
/// px + s, …), each `rows × cols`, and outputs are laid out `cols` wide. Then every tap of the
/// window is one contiguous multiply-add over the whole plane at a fixed offset into its phase,
/// instead of a short (7 to 112 values) or strided loop per output row and tap: those did not
/// vectorise, and depthwise convolutions were 60 % of Lite0's input-gradient time.
#[derive(Debug, Clone, Copy)]
struct Grid {
    s: usize,
    rows: usize,
    cols: usize,
}

impl Grid {
    fn new(conv: &Depthwise, d: Dims) -> Grid {
        let s = conv.stride;
        let wp = d.w + conv.pad[2] + conv.pad[3];
        Grid {
            s,
            cols: wp.div_ceil(s),
            // The rows the taps read, plus one: the last tap's run ends `kx / s` values into it.
            rows: d.oh + (conv.kernel - 1) / s + 1,
        }
    }

    fn phase_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Where tap (`ky`, `kx`)'s run starts in the phases buffer. A run has `oh * cols` values;
    /// for the outputs that exist (column < `ow`) it never wraps into the next row.
    fn tap_offset(&self, ky: usize, kx: usize) -> usize {
        let s = self.s;
        ((ky % s) * s + kx % s) * self.phase_len() + (ky / s) * self.cols + kx / s
    }
}

/// Per-thread buffers, reused across planes.
#[derive(Default)]
struct Scratch<T> {
    phases: Vec<T>,
    wide: Vec<T>,
}

/// `dst += weight * src`, element by element.
#[inline(always)]
fn axpy<T: Float>(dst: &mut [T], weight: T, src: &[T]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d += weight * v;
    }
}

/// Which pass a [`Plane`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// `out = taps ⊛ input`: `input` is an input plane, `out` an output plane.
    Forward,
    /// `out = taps ⊛ᵀ input`: `input` is the gradient of an output plane, `out` that of the
    /// input plane.
    InputGrad,
}

/// One (image, channel) plane of a pass.
struct Plane<'a, T> {
    conv: &'a Depthwise,
    d: Dims,
    grid: Grid,
    pass: Pass,
    input: &'a [T],
    taps: &'a [T],
    out: &'a mut [T],
    scratch: &'a mut Scratch<T>,
}

impl<T: Float> SimdLoop for Plane<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self {
            conv,
            d,
            grid,
            pass,
            input,
            taps,
            out,
            scratch,
        } = self;
        let (k, s, top, left) = (conv.kernel, grid.s, conv.pad[0], conv.pad[2]);
        let run = d.oh * grid.cols;
        let Scratch { phases, wide } = scratch;
        phases.clear();
        phases.resize(s * s * grid.phase_len(), T::ZERO);
        wide.clear();
        wide.resize(run, T::ZERO);
        match pass {
            Pass::Forward => {
                // The padded input into its phases.
                for (p, phase) in phases.chunks_mut(grid.phase_len()).enumerate() {
                    let (py, px) = (p / s, p % s);
                    for (i, row) in phase.chunks_mut(grid.cols).enumerate() {
                        let Some(iy) = (i * s + py).checked_sub(top).filter(|&iy| iy < d.h) else {
                            continue;
                        };
                        let src_row = &input[iy * d.w..(iy + 1) * d.w];
                        for (j, v) in row.iter_mut().enumerate() {
                            if let Some(&x) = (j * s + px)
                                .checked_sub(left)
                                .and_then(|ix| src_row.get(ix))
                            {
                                *v = x;
                            }
                        }
                    }
                }
                for ky in 0..k {
                    for kx in 0..k {
                        let at = grid.tap_offset(ky, kx);
                        axpy(wide, taps[ky * k + kx], &phases[at..at + run]);
                    }
                }
                for (row, wide_row) in out.chunks_mut(d.ow).zip(wide.chunks(grid.cols)) {
                    row.copy_from_slice(&wide_row[..d.ow]);
                }
            }
            Pass::InputGrad => {
                // The gradient `cols` wide, zero past `ow` so the runs add nothing there.
                for (wide_row, row) in wide.chunks_mut(grid.cols).zip(input.chunks(d.ow)) {
                    wide_row[..d.ow].copy_from_slice(row);
                }
                for ky in 0..k {
                    for kx in 0..k {
                        let at = grid.tap_offset(ky, kx);
                        axpy(&mut phases[at..at + run], taps[ky * k + kx], wide);
                    }
                }
                // Back from the padded phases to the image (padding's gradients are dropped).
                for (iy, dx_row) in out.chunks_mut(d.w).enumerate() {
                    let (py, i) = ((iy + top) % s, (iy + top) / s);
                    for (ix, v) in dx_row.iter_mut().enumerate() {
                        let (px, j) = ((ix + left) % s, (ix + left) / s);
                        *v = phases[(py * s + px) * grid.phase_len() + i * grid.cols + j];
                    }
                }
            }
        }
    }
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        if l2.shape().elem_count() != c * self.kernel * self.kernel {
            candle_core::bail!(
                "depthwise: kernel {:?} does not fit {c} channels",
                l2.shape()
            );
        }
        let d = self.dims(n, c, h, w)?;
        let out = dispatch(
            "depthwise",
            [(s1, l1), (s2, l2)],
            |[x, k]| self.forward(d, x, k),
            |[x, k]| self.forward(d, x, k),
        )?;
        Ok((out, Shape::from((d.n, d.c, d.oh, d.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (n, c, h, w) = x.dims4()?;
        let dims = self.dims(n, c, h, w)?;
        let grad_x = grad.apply_op2_no_bwd(kernel, &InputGrad { conv: *self, dims })?;
        // Input gradients (the common case) never pay for the kernel gradient.
        let grad_k = if kernel.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &KernelGrad { conv: *self, dims })?)
        } else {
            None
        };
        Ok((Some(grad_x), grad_k))
    }
}

/// ∂loss/∂x: `grad_output.apply_op2(kernel)`.
struct InputGrad {
    conv: Depthwise,
    dims: Dims,
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, d) = (&self.conv, self.dims);
        let out = dispatch(
            "depthwise",
            [(s1, l1), (s2, l2)],
            |[g, k]| c.input_grad_kernel(d, g, k),
            |[g, k]| c.input_grad_kernel(d, g, k),
        )?;
        Ok((out, Shape::from((d.n, d.c, d.h, d.w))))
    }
}

/// ∂loss/∂kernel: `x.apply_op2(grad_output)`.
struct KernelGrad {
    conv: Depthwise,
    dims: Dims,
}

impl CustomOp2 for KernelGrad {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-kernel-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, d) = (&self.conv, self.dims);
        let out = dispatch(
            "depthwise",
            [(s1, l1), (s2, l2)],
            |[x, g]| c.kernel_grad(d, x, g),
            |[x, g]| c.kernel_grad(d, x, g),
        )?;
        Ok((out, Shape::from((d.c, 1, c.kernel, c.kernel))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn tensor(shape: (usize, usize, usize, usize), seed: usize) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let data: Vec<f32> = (0..n)
            .map(|i| (((i + seed) * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Forward, input gradient and kernel gradient equal candle's grouped convolution for the
    /// geometries EfficientNet uses (3x3 and 5x5, stride 1 and 2, TF "SAME" asymmetric padding).
    #[test]
    fn matches_candle_grouped_convolution_forward_and_backward() {
        for (kernel, stride, pad, h, w) in [
            (3, 1, [1, 1, 1, 1], 7, 6),
            (3, 2, [0, 1, 0, 1], 8, 8),
            (5, 2, [1, 2, 1, 2], 8, 10),
            (5, 1, [2, 2, 2, 2], 5, 5),
            (3, 2, [1, 1, 1, 1], 7, 9),
            // Maps smaller than the kernel (Lite's last stages at small input sizes).
            (5, 1, [2, 2, 2, 2], 1, 1),
            (5, 1, [2, 2, 2, 2], 2, 1),
        ] {
            let (n, c) = (2, 3);
            let x = Var::from_tensor(&tensor((n, c, h, w), 1)).unwrap();
            let k = Var::from_tensor(&tensor((c, 1, kernel, kernel), 7)).unwrap();
            let conv = Depthwise {
                kernel,
                stride,
                pad,
            };

            let ours = conv.apply(x.as_tensor(), k.as_tensor()).unwrap();
            let padded = x
                .as_tensor()
                .pad_with_zeros(2, pad[0], pad[1])
                .unwrap()
                .pad_with_zeros(3, pad[2], pad[3])
                .unwrap();
            let reference = padded.conv2d(k.as_tensor(), 0, stride, 1, c).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(max_diff(&ours, &reference) < 1e-5);

            // A non-uniform upstream gradient: weight each output by its position.
            let weights = tensor(ours.dims4().unwrap(), 3);
            let g_ours = ours
                .mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g_ref = reference
                .mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for var in [&x, &k] {
                let (a, b) = (g_ours.get(var).unwrap(), g_ref.get(var).unwrap());
                assert!(
                    max_diff(a, b) < 1e-4,
                    "k{kernel} s{stride} {pad:?}: {}",
                    max_diff(a, b)
                );
            }
        }
    }

    #[test]
    fn constant_kernel_gets_no_gradient() {
        let x = Var::from_tensor(&tensor((1, 2, 5, 5), 1)).unwrap();
        let k = tensor((2, 1, 3, 3), 2);
        let conv = Depthwise {
            kernel: 3,
            stride: 1,
            pad: [1; 4],
        };
        let grads = conv
            .apply(x.as_tensor(), &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_some());
        assert!(grads.get(&k).is_none());
    }
}

//! A dense convolution for the CPU: im2col + GEMM with the bias and the activation fused in,
//! and a backward pass that gives the input gradient only.
//!
//! candle's CPU `conv2d` copies through im2col, runs the GEMM image-major and transposes the
//! result back; its backward computes the input gradient with a plain-loop `conv_transpose2d`
//! and always computes the kernel gradient too, which input gradients never use. Here each image
//! (for maps of 7×7 or smaller, the whole batch) is one GEMM `out = W · col(x)` (1×1 stride-1
//! convolutions use the image itself as `col`), the bias and activation follow in one pass, and
//! the backward is `dcol = Wᵀ · (grad ⊙ act'(out))` followed by col2im. Weights must be constants (BatchNorm is
//! folded at load time and never trained); `ConvBn` uses candle's own `conv2d` otherwise.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::kernel::{
    self, dispatch, widest_simd_loop, with_scratch, zeros, Activation, Float, SimdLoop,
};

/// Geometry and activation of a convolution with per-side zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    pub kernel: usize,
    pub stride: usize,
    /// Zero padding: top, bottom, left, right.
    pub pad: [usize; 4],
    pub activation: Activation,
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    /// Rows of the im2col matrix: one per (input channel, tap).
    fn taps(&self, kernel: usize) -> usize {
        self.c_in * kernel * kernel
    }
    fn in_plane(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn out_pixels(&self) -> usize {
        self.oh * self.ow
    }
    fn out_plane(&self) -> usize {
        self.c_out * self.out_pixels()
    }
}

impl Conv {
    /// `activation(conv(x, weight) + bias)`: `x` is `(N, C, H, W)`, `weight` `(O, C, K, K)`,
    /// `bias` has `O` elements.
    pub fn apply(&self, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        x.contiguous()?
            .apply_op3(&weight.contiguous()?, &bias.contiguous()?, *self)
    }

    /// ∂loss/∂x from ∂loss/∂out (`grad`), the op's output `out` and the transposed weight
    /// (`transposed_weight`), for an input of shape `x` (the manual backward path). `out` is
    /// not read when the activation is the identity; pass `grad` there.
    pub fn input_grad(
        &self,
        x: &Shape,
        grad: &Tensor,
        out: &Tensor,
        weight_t: &Tensor,
    ) -> Result<Tensor> {
        let (taps, c_out) = weight_t.dims2()?;
        let (_, c_in, _, _) = x.dims4()?;
        if taps != c_in * self.kernel * self.kernel {
            candle_core::bail!("conv: transposed weight {weight_t:?} does not fit input {x:?}");
        }
        let weight_shape = Shape::from((c_out, c_in, self.kernel, self.kernel));
        let geometry = self.geometry(x, &weight_shape)?;
        grad.contiguous()?.apply_op3_no_bwd(
            &out.contiguous()?,
            &weight_t.contiguous()?,
            &InputGrad {
                conv: *self,
                geometry,
            },
        )
    }

    /// `weight` `(O, C, K, K)` as the contiguous `(C·K·K, O)` matrix `input_grad` takes. The
    /// backward GEMM reads Wᵀ; read in place it strides by C·K·K floats, and at 4,608 (ResNet's
    /// last stage) that ran the GEMM at a third of its speed on a Xeon (L1 set conflicts).
    /// Callers with constant weights build it once (`ConvBn` does, on the first gradient).
    pub fn transposed_weight(weight: &Tensor) -> Result<Tensor> {
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        weight.reshape((c_out, c_in * kh * kw))?.t()?.contiguous()
    }

    /// 1×1, stride 1, no padding: the image itself is the im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad == [0; 4]
    }

    fn geometry(&self, x: &Shape, weight: &Shape) -> Result<Geometry> {
        let (n, c_in, h, w) = x.dims4()?;
        let (c_out, wc, kh, kw) = weight.dims4()?;
        if wc != c_in || kh != self.kernel || kw != self.kernel {
            candle_core::bail!("conv: weight {weight:?} does not fit input {x:?}");
        }
        let [top, bottom, left, right] = self.pad;
        let (hp, wp) = (h + top + bottom, w + left + right);
        if hp < self.kernel || wp < self.kernel || self.stride == 0 {
            candle_core::bail!("conv: input {h}x{w} smaller than kernel {}", self.kernel);
        }
        Ok(Geometry {
            n,
            c_in,
            h,
            w,
            c_out,
            oh: (hp - self.kernel) / self.stride + 1,
            ow: (wp - self.kernel) / self.stride + 1,
        })
    }

    /// `(y0, y1)`: the output rows whose input row is inside the image.
    fn valid_rows(&self, ky: usize, h: usize, oh: usize) -> (usize, usize) {
        kernel::valid_cols(self.stride, self.pad[0], ky, h, oh)
    }

    /// `(x0, x1)`: the output columns whose input column is inside the image.
    fn valid_cols(&self, kx: usize, w: usize, ow: usize) -> (usize, usize) {
        kernel::valid_cols(self.stride, self.pad[2], kx, w, ow)
    }

    /// Splits an im2col row index into (input channel, tap row, tap column).
    fn tap(&self, row: usize) -> (usize, usize, usize) {
        let k = self.kernel;
        (row / (k * k), (row / k) % k, row % k)
    }

    /// With stride 1 and an output as wide as the input, output pixel `j` of tap (`ky`, `kx`)
    /// reads input pixel `j + shift` wherever it reads inside the image: its im2col row is the
    /// plane shifted by a constant, border columns aside. One long copy per row then replaces
    /// one short copy per output row (a libc call each, 16 floats long at 16×16).
    fn shift(&self, g: &Geometry, (ky, kx): (usize, usize)) -> Option<isize> {
        let [top, _, left, _] = self.pad;
        (self.stride == 1 && g.ow == g.w)
            .then(|| (ky * g.w + kx) as isize - (top * g.w + left) as isize)
    }

    /// The values of an im2col row (`out_pixels` long) of tap row `ky` that lie in valid
    /// output rows (those whose input row is inside the image).
    fn valid_block(&self, g: &Geometry, ky: usize) -> std::ops::Range<usize> {
        let (y0, y1) = self.valid_rows(ky, g.h, g.oh);
        y0 * g.ow..y1 * g.ow
    }

    /// In shifted mode, the values `span` of the valid block read or write the plane from
    /// `at` on: the block's range, clamped to the plane (which cuts border columns only).
    /// `None` when nothing of the block lies inside the plane.
    fn shifted_span(
        &self,
        g: &Geometry,
        block: &std::ops::Range<usize>,
        shift: isize,
    ) -> Option<(std::ops::Range<usize>, usize)> {
        let base = block.start as isize + shift;
        let from = (-base).max(0);
        let to = ((g.h * g.w) as isize - base).min(block.len() as isize);
        (from < to).then(|| (from as usize..to as usize, (base + from) as usize))
    }

    /// Sets the border columns (output columns whose input column is padding) of the valid
    /// rows of one im2col row to zero. Column by column, so that no short memset call per
    /// row is emitted.
    #[inline(always)]
    fn zero_border_columns<T: Float>(&self, g: &Geometry, kx: usize, block: &mut [T]) {
        let (x0, x1) = self.valid_cols(kx, g.w, g.ow);
        for column in (0..x0).chain(x1..g.ow) {
            for v in block.iter_mut().skip(column).step_by(g.ow) {
                *v = T::ZERO;
            }
        }
    }

    /// Fills one im2col row (`out_pixels` values) for tap (`ky`, `kx`) of one input plane.
    #[inline(always)]
    fn fill_row<T: Float>(&self, g: &Geometry, plane: &[T], tap: (usize, usize), dst: &mut [T]) {
        let (ky, kx) = tap;
        let block = self.valid_block(g, ky);
        dst[..block.start].fill(T::ZERO);
        dst[block.end..].fill(T::ZERO);
        let inside = &mut dst[block.clone()];
        if let Some(shift) = self.shift(g, tap) {
            if let Some((span, at)) = self.shifted_span(g, &block, shift) {
                inside[span.clone()].copy_from_slice(&plane[at..at + span.len()]);
            }
            self.zero_border_columns(g, kx, inside);
            return;
        }
        let (s, top, left) = (self.stride, self.pad[0], self.pad[2]);
        let (x0, x1) = self.valid_cols(kx, g.w, g.ow);
        let first_row = block.start / g.ow.max(1);
        for (oy, row) in (first_row..).zip(inside.chunks_exact_mut(g.ow)) {
            let src = &plane[(oy * s + ky - top) * g.w..][..g.w];
            row[..x0].fill(T::ZERO);
            row[x1..].fill(T::ZERO);
            for (ox, d) in row.iter_mut().enumerate().take(x1).skip(x0) {
                *d = src[ox * s + kx - left];
            }
        }
    }

    /// Adds one im2col row (`out_pixels` values) of tap (`ky`, `kx`) back onto an input plane.
    /// In shifted mode the row's border columns must be zero (`zero_border_columns`): the one
    /// long add carries them onto neighbouring rows.
    #[inline(always)]
    fn add_row<T: Float>(&self, g: &Geometry, src: &[T], tap: (usize, usize), plane: &mut [T]) {
        let (ky, kx) = tap;
        let block = self.valid_block(g, ky);
        let inside = &src[block.clone()];
        if let Some(shift) = self.shift(g, tap) {
            if let Some((span, at)) = self.shifted_span(g, &block, shift) {
                let dst = &mut plane[at..at + span.len()];
                for (d, &v) in dst.iter_mut().zip(&inside[span]) {
                    *d += v;
                }
            }
            return;
        }
        let (s, top, left) = (self.stride, self.pad[0], self.pad[2]);
        let (x0, x1) = self.valid_cols(kx, g.w, g.ow);
        let first_row = block.start / g.ow.max(1);
        for (oy, row) in (first_row..).zip(inside.chunks_exact(g.ow)) {
            let dst = &mut plane[(oy * s + ky - top) * g.w..][..g.w];
            for (ox, &v) in row.iter().enumerate().take(x1).skip(x0) {
                dst[ox * s + kx - left] += v;
            }
        }
    }

    /// im2col of one image into `col` (`taps × out_pixels`). When the GEMM runs on every
    /// thread (a batch smaller than the thread count), so does this, split by input channel;
    /// otherwise it runs on this thread.
    fn im2col<T: Float>(&self, g: &Geometry, image: &[T], col: &mut [T], gemm: Parallelism) {
        let (plane, rows) = (g.h * g.w, self.kernel * self.kernel * g.out_pixels());
        let channels = channels_per_task(g.c_in);
        if matches!(gemm, Parallelism::None) || plane == 0 || channels == g.c_in {
            return widest_simd_loop(Im2col {
                conv: self,
                g,
                image,
                col,
            });
        }
        image
            .par_chunks(plane * channels)
            .zip(col.par_chunks_mut(rows * channels))
            .for_each(|(image, col)| {
                widest_simd_loop(Im2col {
                    conv: self,
                    g,
                    image,
                    col,
                })
            });
    }

    /// Adds `col` (`taps × out_pixels`, overwritten) back onto one image's gradient `dx`,
    /// split by input channel like `im2col`.
    fn col2im<T: Float>(&self, g: &Geometry, col: &mut [T], dx: &mut [T], gemm: Parallelism) {
        let (plane, rows) = (g.h * g.w, self.kernel * self.kernel * g.out_pixels());
        let channels = channels_per_task(g.c_in);
        if matches!(gemm, Parallelism::None) || plane == 0 || channels == g.c_in {
            return widest_simd_loop(Col2im {
                conv: self,
                g,
                col,
                dx,
            });
        }
        col.par_chunks_mut(rows * channels)
            .zip(dx.par_chunks_mut(plane * channels))
            .for_each(|(col, dx)| {
                widest_simd_loop(Col2im {
                    conv: self,
                    g,
                    col,
                    dx,
                })
            });
    }

    /// Small feature maps (ResNet's last stages, 64-pixel inputs) make per-image GEMMs too thin
    /// to run fast; there the whole batch becomes one GEMM over `N × out_pixels` columns.
    fn batched(&self, g: &Geometry) -> bool {
        g.n > 1 && g.out_pixels() <= BATCHED_MAX_PIXELS
    }

    /// `forward` as one GEMM for the batch: `col` is `taps × (N · out_pixels)`.
    fn forward_batched<T: Float>(&self, g: Geometry, x: &[T], weight: &[T], bias: &[T]) -> Vec<T> {
        let (taps, pixels) = (g.taps(self.kernel), g.out_pixels());
        let columns = g.n * pixels;
        let sources = TapSources::new(self, &g);
        let plane = g.h * g.w;
        with_scratch(taps * columns, |col: &mut [T]| {
            col.par_chunks_mut(columns)
                .enumerate()
                .with_min_len(rows_per_task(taps))
                .for_each(|(r, row)| {
                    let (c, ky, kx) = self.tap(r);
                    let sources = sources.of(ky, kx);
                    let images = x.chunks_exact(g.in_plane());
                    for (image, dst) in images.zip(row.chunks_exact_mut(pixels)) {
                        let src = &image[c * plane..][..plane];
                        for (d, q) in dst.iter_mut().zip(sources) {
                            *d = q.map_or(T::ZERO, |q| src[q]);
                        }
                    }
                });
            with_scratch(g.c_out * columns, |product: &mut [T]| {
                let w = Matrix::row_major(weight, g.c_out, taps);
                let c = Matrix::row_major(col, taps, columns);
                gemm_into(product, false, w, c, all_threads());
                let mut out = zeros(g.n * g.out_plane());
                out.par_chunks_mut(pixels).enumerate().for_each(|(j, o)| {
                    let (i, co) = (j / g.c_out, j % g.c_out);
                    let src = &product[co * columns + i * pixels..][..pixels];
                    self.activation.apply_slice(src, bias[co], o);
                });
                out
            })
        })
    }

    /// `input_grad_kernel` as one GEMM for the batch.
    fn input_grad_batched<T: Float>(
        &self,
        g: Geometry,
        grad: &[T],
        out: &[T],
        weight_t: &[T],
    ) -> Vec<T> {
        let (taps, pixels) = (g.taps(self.kernel), g.out_pixels());
        let columns = g.n * pixels;
        // The masked gradient, channel-major: `c_out × (N · out_pixels)`.
        with_scratch(g.c_out * columns, |masked: &mut [T]| {
            masked
                .par_chunks_mut(pixels)
                .enumerate()
                .for_each(|(j, dst)| {
                    let (co, i) = (j / g.n, j % g.n);
                    let at = i * g.out_plane() + co * pixels;
                    let range = at..at + pixels;
                    self.activation
                        .mask_slice(&grad[range.clone()], &out[range], dst);
                });
            with_scratch(taps * columns, |dcol: &mut [T]| {
                let wt = Matrix::row_major(weight_t, taps, g.c_out);
                let d = Matrix::row_major(masked, g.c_out, columns);
                gemm_into(dcol, false, wt, d, all_threads());
                let sources = TapSources::new(self, &g);
                let plane = g.h * g.w;
                let mut dx = zeros(g.n * g.in_plane());
                dx.par_chunks_mut(g.in_plane())
                    .enumerate()
                    .for_each(|(i, dx)| {
                        for r in 0..taps {
                            let (c, ky, kx) = self.tap(r);
                            let src = &dcol[r * columns + i * pixels..][..pixels];
                            let dst = &mut dx[c * plane..][..plane];
                            for (&v, q) in src.iter().zip(sources.of(ky, kx)) {
                                if let Some(q) = *q {
                                    dst[q] += v;
                                }
                            }
                        }
                    });
                dx
            })
        })
    }

    fn forward<T: Float>(&self, g: Geometry, x: &[T], weight: &[T], bias: &[T]) -> Vec<T> {
        if self.batched(&g) {
            return self.forward_batched(g, x, weight, bias);
        }
        let (taps, pixels) = (g.taps(self.kernel), g.out_pixels());
        let mut out = zeros(g.n * g.out_plane());
        for_each_image(&mut out, g.out_plane(), |i, out, parallelism| {
            let image = &x[i * g.in_plane()..(i + 1) * g.in_plane()];
            let gemm = |col: &[T], out: &mut [T]| {
                let w = Matrix::row_major(weight, g.c_out, taps);
                let c = Matrix::row_major(col, taps, pixels);
                gemm_into(out, false, w, c, parallelism);
            };
            if self.is_pointwise() {
                gemm(image, out);
            } else {
                with_scratch(taps * pixels, |col: &mut [T]| {
                    self.im2col(&g, image, col, parallelism);
                    gemm(col, out);
                });
            }
            // Bias and activation in one pass after the GEMM, on every thread when the GEMM
            // ran on every thread.
            let bias_act = |(row, &b): (&mut [T], &T)| self.activation.apply_bias_in_place(row, b);
            if matches!(parallelism, Parallelism::None) {
                out.chunks_mut(pixels).zip(bias).for_each(bias_act);
            } else {
                out.par_chunks_mut(pixels).zip(bias).for_each(bias_act);
            }
        });
        out
    }

    fn input_grad_kernel<T: Float>(
        &self,
        g: Geometry,
        grad: &[T],
        out: &[T],
        weight_t: &[T],
    ) -> Vec<T> {
        if self.batched(&g) {
            return self.input_grad_batched(g, grad, out, weight_t);
        }
        let (taps, pixels) = (g.taps(self.kernel), g.out_pixels());
        let mut dx = zeros(g.n * g.in_plane());
        for_each_image(&mut dx, g.in_plane(), |i, dx, parallelism| {
            let range = i * g.out_plane()..(i + 1) * g.out_plane();
            // `dx += Wᵀ · grad` through im2col, or straight into `dx` for a pointwise conv.
            let backward = |grad: &[T], dx: &mut [T]| {
                let wt = Matrix::row_major(weight_t, taps, g.c_out);
                let d = Matrix::row_major(grad, g.c_out, pixels);
                if self.is_pointwise() {
                    gemm_into(dx, false, wt, d, parallelism);
                } else {
                    with_scratch(taps * pixels, |dcol: &mut [T]| {
                        gemm_into(dcol, false, wt, d, parallelism);
                        self.col2im(&g, dcol, dx, parallelism);
                    });
                }
            };
            if self.activation == Activation::Identity {
                return backward(&grad[range], dx);
            }
            with_scratch(range.len(), |masked: &mut [T]| {
                let (grad, out) = (&grad[range.clone()], &out[range]);
                if matches!(parallelism, Parallelism::None) {
                    self.activation.mask_slice(grad, out, masked);
                } else {
                    masked
                        .par_chunks_mut(pixels)
                        .zip(grad.par_chunks(pixels).zip(out.par_chunks(pixels)))
                        .for_each(|(m, (g, o))| self.activation.mask_slice(g, o, m));
                }
                backward(masked, dx);
            });
        });
        dx
    }
}

/// Output pixels per image at or below which a batch runs as one GEMM (7×7 and smaller).
/// Measured on a 2-core Xeon, resnet18 @64 batch 16: at 8×8 and 16×16 one GEMM per image,
/// images in parallel, ran 1.5–2× faster than the batch's one GEMM (whose im2col matrix no
/// longer fits in L2); at 4×4 and 2×2 the per-image GEMMs are too thin and ran 1.3–3× slower.
const BATCHED_MAX_PIXELS: usize = 49;

/// Input channels per rayon task when one image's im2col or col2im is split over the threads.
fn channels_per_task(channels: usize) -> usize {
    channels
        .div_ceil(4 * rayon::current_num_threads().max(1))
        .max(1)
}

/// im2col rows per rayon task in the batched path: a few tasks per thread, so that threads
/// share the work evenly without one task per row.
fn rows_per_task(taps: usize) -> usize {
    (taps / (4 * rayon::current_num_threads().max(1))).max(1)
}

/// For each tap (`ky`, `kx`) and output pixel, the input pixel of one plane it reads, or
/// `None` where it reads padding. The batched path's maps are 7×7 or smaller, where per-row
/// copies cost more in bookkeeping than in copying; with this table each (row, image) is one
/// short loop.
struct TapSources {
    pixels: usize,
    kernel: usize,
    sources: Vec<Option<usize>>,
}

impl TapSources {
    fn new(conv: &Conv, g: &Geometry) -> Self {
        let (k, s, top, left) = (conv.kernel, conv.stride, conv.pad[0], conv.pad[2]);
        let pixels = g.out_pixels();
        let mut sources = vec![None; k * k * pixels];
        for (t, tap) in sources.chunks_exact_mut(pixels).enumerate() {
            let (ky, kx) = (t / k, t % k);
            let (y0, y1) = conv.valid_rows(ky, g.h, g.oh);
            let (x0, x1) = conv.valid_cols(kx, g.w, g.ow);
            for oy in y0..y1 {
                for ox in x0..x1 {
                    tap[oy * g.ow + ox] = Some((oy * s + ky - top) * g.w + ox * s + kx - left);
                }
            }
        }
        Self {
            pixels,
            kernel: k,
            sources,
        }
    }

    fn of(&self, ky: usize, kx: usize) -> &[Option<usize>] {
        let t = ky * self.kernel + kx;
        &self.sources[t * self.pixels..][..self.pixels]
    }
}

/// im2col of one `C × H × W` image (or some of its channels) into `col` (their
/// `C·K·K × out_pixels` rows).
struct Im2col<'a, T> {
    conv: &'a Conv,
    g: &'a Geometry,
    image: &'a [T],
    col: &'a mut [T],
}

impl<T: Float> SimdLoop for Im2col<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self {
            conv,
            g,
            image,
            col,
        } = self;
        let plane = g.h * g.w;
        for (r, row) in col.chunks_exact_mut(g.out_pixels()).enumerate() {
            let (c, ky, kx) = conv.tap(r);
            conv.fill_row(g, &image[c * plane..][..plane], (ky, kx), row);
        }
    }
}

/// Adds every row of `col` (the `C·K·K × out_pixels` rows of some input channels,
/// overwritten: border columns are zeroed first, see `add_row`) back onto their planes of one
/// image's gradient `dx`.
struct Col2im<'a, T> {
    conv: &'a Conv,
    g: &'a Geometry,
    col: &'a mut [T],
    dx: &'a mut [T],
}

impl<T: Float> SimdLoop for Col2im<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self { conv, g, col, dx } = self;
        let plane = g.h * g.w;
        for (r, row) in col.chunks_exact_mut(g.out_pixels()).enumerate() {
            let (c, ky, kx) = conv.tap(r);
            if conv.shift(g, (ky, kx)).is_some() {
                let block = conv.valid_block(g, ky);
                conv.zero_border_columns(g, kx, &mut row[block]);
            }
            conv.add_row(g, row, (ky, kx), &mut dx[c * plane..][..plane]);
        }
    }
}

fn all_threads() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        threads => Parallelism::Rayon(threads),
    }
}

/// A strided view of a matrix.
#[derive(Clone, Copy)]
struct Matrix<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> Matrix<'a, T> {
    fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// One past the largest index the view reads.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `dst` is row-major.
///
/// With several threads and enough columns, the columns are split into one block per thread,
/// each a single-threaded GEMM. `gemm`'s own threading synchronises inside the product, and
/// for the thin products of one image (64 rows: ResNet's early 1×1 and 3×3 convolutions) it
/// reached 90–100 GF/s on a 2-core Xeon where column blocks reached 135–141 GF/s; products
/// with fewer columns keep `gemm`'s threading, which served them better.
fn gemm_into<T: Float>(
    dst: &mut [T],
    accumulate: bool,
    lhs: Matrix<T>,
    rhs: Matrix<T>,
    parallelism: Parallelism,
) {
    assert_eq!(lhs.cols, rhs.rows, "gemm: inner dimensions differ");
    assert!(
        dst.len() >= lhs.rows * rhs.cols,
        "gemm: destination too small"
    );
    assert!(lhs.data.len() >= lhs.extent() && rhs.data.len() >= rhs.extent());
    let n = rhs.cols;
    let threads = match parallelism {
        Parallelism::Rayon(threads) => threads,
        _ => 1,
    };
    let product = |dst: &SharedMut<T>, columns: std::ops::Range<usize>, parallelism| {
        // SAFETY: the asserts above keep every index gemm touches inside the three slices;
        // `dst` is exclusively borrowed, so it aliases neither input, and concurrent calls
        // write disjoint column ranges of it.
        unsafe {
            gemm::gemm(
                lhs.rows,
                columns.len(),
                lhs.cols,
                dst.0.add(columns.start),
                1,
                n as isize,
                accumulate,
                lhs.data.as_ptr(),
                lhs.col_stride as isize,
                lhs.row_stride as isize,
                rhs.data.as_ptr().add(columns.start * rhs.col_stride),
                rhs.col_stride as isize,
                rhs.row_stride as isize,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                parallelism,
            )
        }
    };
    let dst = SharedMut(dst.as_mut_ptr());
    if threads > 1 && n / threads >= MIN_COLUMNS_PER_THREAD {
        // Blocks of whole 16-column panels, so that no block ends in a ragged microkernel.
        let block = n.div_ceil(threads).next_multiple_of(16);
        (0..n.div_ceil(block)).into_par_iter().for_each(|b| {
            let start = b * block;
            product(&dst, start..(start + block).min(n), Parallelism::None)
        });
    } else {
        product(&dst, 0..n, parallelism);
    }
}

/// Columns per thread from which `gemm_into` splits a product by columns itself.
const MIN_COLUMNS_PER_THREAD: usize = 256;

/// The destination of `gemm_into`, shared by the threads that write disjoint column blocks.
struct SharedMut<T>(*mut T);

// SAFETY: only `gemm_into` builds one, and its threads write disjoint parts of it.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

/// Runs `f(image, its output chunk, gemm parallelism)` for every image. With at least as
/// many images as threads, images run in parallel and each GEMM on one thread (no
/// synchronisation inside a GEMM); a smaller batch runs image by image with parallel GEMMs.
fn for_each_image<T: Send>(
    out: &mut [T],
    plane: usize,
    f: impl Fn(usize, &mut [T], Parallelism) + Sync,
) {
    if plane == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let images = out.len() / plane;
    if threads > 1 && images >= threads {
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(i, o)| f(i, o, Parallelism::None));
    } else {
        let parallelism = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        for (i, o) in out.chunks_mut(plane).enumerate() {
            f(i, o, parallelism);
        }
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(l1.shape(), l2.shape())?;
        if l3.shape().elem_count() != g.c_out {
            candle_core::bail!(
                "conv: bias {:?} does not fit {} outputs",
                l3.shape(),
                g.c_out
            );
        }
        let out = dispatch(
            "conv",
            [(s1, l1), (s2, l2), (s3, l3)],
            |[x, w, b]| self.forward(g, x, w, b),
            |[x, w, b]| self.forward(g, x, w, b),
        )?;
        Ok((out, Shape::from((g.n, g.c_out, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if weight.track_op() || bias.track_op() {
            candle_core::bail!(
                "conv: this op gives input gradients only; its weights must be constants"
            );
        }
        let grad_x = self.input_grad(x.shape(), grad, res, &Self::transposed_weight(weight)?)?;
        Ok((Some(grad_x), None, None))
    }
}

/// ∂loss/∂x from (∂loss/∂out, out, weight).
struct InputGrad {
    conv: Conv,
    geometry: Geometry,
}

impl CustomOp3 for InputGrad {
    fn name(&self) -> &'static str {
        "conv2d-bias-act-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, g) = (&self.conv, self.geometry);
        let out = dispatch(
            "conv input grad",
            [(s1, l1), (s2, l2), (s3, l3)],
            |[d, o, w]| c.input_grad_kernel(g, d, o, w),
            |[d, o, w]| c.input_grad_kernel(g, d, o, w),
        )?;
        Ok((out, Shape::from((g.n, g.c_in, g.h, g.w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn tensor(shape: (usize, usize, usize, usize), seed: usize, dtype: DType) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let data: Vec<f64> = (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.5 - 1.0)
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// candle's own ops: `conv2d` (explicit zero padding when it is not symmetric), bias,
    /// activation.
    fn reference(conv: &Conv, x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let [top, bottom, left, right] = conv.pad;
        let (x, p) = if conv.pad == [top; 4] {
            (x.clone(), top)
        } else {
            let padded = x
                .pad_with_zeros(2, top, bottom)
                .unwrap()
                .pad_with_zeros(3, left, right)
                .unwrap();
            (padded, 0)
        };
        let y = x
            .conv2d(w, p, conv.stride, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, (), 1, 1)).unwrap())
            .unwrap();
        match conv.activation {
            Activation::Identity => y,
            Activation::Relu => y.relu().unwrap(),
            Activation::Relu6 => y.clamp(0.0, 6.0).unwrap(),
        }
    }

    /// Forward output and input gradient of `sum(out * weights)` equal candle's within `tol`.
    fn check(conv: Conv, n: usize, c: usize, h: usize, w: usize, out: usize, dtype: DType) {
        let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
        let x = Var::from_tensor(&tensor((n, c, h, w), 1, dtype)).unwrap();
        let weight = (tensor((out, c, conv.kernel, conv.kernel), 2, dtype) * 0.5).unwrap();
        let bias = tensor((1, out, 1, 1), 3, dtype).flatten_all().unwrap();
        let ours = conv.apply(x.as_tensor(), &weight, &bias).unwrap();
        let theirs = reference(&conv, x.as_tensor(), &weight, &bias);
        assert_eq!(ours.dims(), theirs.dims(), "{conv:?}");
        assert!(max_diff(&ours, &theirs) < tol, "forward {conv:?}");
        let probe = tensor(ours.dims4().unwrap(), 4, dtype);
        let grad = |y: &Tensor| {
            y.mul(&probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
                .get(&x)
                .unwrap()
                .clone()
        };
        let diff = max_diff(&grad(&ours), &grad(&theirs));
        assert!(diff < tol, "input gradient {conv:?}: {diff}");
    }

    #[test]
    fn matches_candle_forward_and_input_gradient() {
        use Activation::*;
        for dtype in [DType::F32, DType::F64] {
            // (kernel, stride, pad, activation, batch, channels, height, width, outputs)
            for (k, s, pad, act, n, c, h, w, o) in [
                (3, 1, [1, 1, 1, 1], Relu, 2, 3, 9, 7, 4),
                (3, 2, [1, 1, 1, 1], Identity, 3, 4, 8, 8, 5),
                (3, 2, [0, 1, 0, 1], Relu6, 1, 3, 8, 8, 4),
                (7, 2, [3, 3, 3, 3], Relu, 2, 3, 15, 13, 6),
                (1, 1, [0, 0, 0, 0], Relu6, 3, 6, 5, 4, 7),
                (1, 2, [0, 0, 0, 0], Identity, 2, 6, 7, 7, 3),
                (5, 1, [2, 2, 2, 2], Identity, 1, 2, 3, 3, 2),
                // Maps smaller than the kernel.
                (5, 1, [2, 2, 2, 2], Relu, 1, 2, 1, 1, 3),
                (3, 1, [1, 1, 1, 1], Relu6, 2, 2, 1, 2, 3),
                // Stride 1 with an output as wide as the input (shifted im2col rows), with
                // asymmetric padding and with a kernel wider than the map.
                (3, 1, [0, 2, 2, 0], Relu, 2, 3, 5, 6, 4),
                (5, 1, [1, 3, 3, 1], Identity, 2, 2, 4, 3, 3),
                // Above BATCHED_MAX_PIXELS: one GEMM per image, images in parallel.
                (3, 1, [1, 1, 1, 1], Relu, 3, 3, 17, 16, 4),
                (3, 1, [1, 1, 1, 1], Identity, 2, 4, 8, 8, 5),
                (3, 2, [1, 1, 1, 1], Relu6, 2, 3, 16, 16, 4),
                (3, 1, [2, 0, 0, 2], Relu, 2, 2, 9, 8, 3),
                // One image with enough columns that `gemm_into` splits them over threads.
                (3, 1, [1, 1, 1, 1], Relu, 1, 3, 24, 25, 5),
                (1, 1, [0, 0, 0, 0], Relu6, 1, 4, 32, 21, 6),
                (1, 1, [0, 0, 0, 0], Relu6, 2, 5, 20, 15, 3),
            ] {
                let conv = Conv {
                    kernel: k,
                    stride: s,
                    pad,
                    activation: act,
                };
                check(conv, n, c, h, w, o, dtype);
            }
        }
    }

    #[test]
    fn refuses_a_weight_that_does_not_fit() {
        let conv = Conv {
            kernel: 3,
            stride: 1,
            pad: [1; 4],
            activation: Activation::Identity,
        };
        let x = tensor((1, 3, 5, 5), 1, DType::F32);
        let w = tensor((4, 2, 3, 3), 2, DType::F32);
        let b = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        let err = conv.apply(&x, &w, &b).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn trainable_weights_are_refused_in_backward() {
        let conv = Conv {
            kernel: 1,
            stride: 1,
            pad: [0; 4],
            activation: Activation::Relu,
        };
        let x = tensor((1, 2, 3, 3), 1, DType::F32);
        let w = Var::from_tensor(&tensor((2, 2, 1, 1), 2, DType::F32)).unwrap();
        let b = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let y = conv.apply(&x, w.as_tensor(), &b).unwrap();
        let err = y.sum_all().unwrap().backward().unwrap_err().to_string();
        assert!(err.contains("input gradients only"), "{err}");
    }
}

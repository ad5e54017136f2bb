//! Saliency maps: where in the picture the head's log-probability of one class is sensitive.
//!
//! The map is |∂ log p_c / ∂x| summed over the three channels at the backbone's input
//! resolution, smoothed (three box blurs, close to a Gaussian) and normalised per image by its
//! 99th percentile (clipped to 1), so one hot pixel cannot wash the rest out. p is the trained
//! head's softmax over the dataset's classes: the prediction and the label the dashboard shows.
//! The dashboard and `reason explain` both draw it with [`overlay`] (the one blend) or
//! [`heatmap`].

use candle_core::Tensor;
use image::{Rgb, RgbImage, Rgba, RgbaImage};

use crate::data::preprocess::Preprocess;
use crate::error::{Error, Result};
use crate::model::backbone::Backbone;
use crate::model::head::LinearHead;

/// Share of pixels at or below the value that maps to full heat.
const NORMALISE_PERCENTILE: f32 = 0.99;

/// A saliency map of one class at the network's input resolution, values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Saliency {
    /// Side of the (square) map: the backbone's input size.
    pub size: u32,
    /// The head class whose log-probability was differentiated.
    pub class: u16,
    /// `size × size`, row-major.
    pub values: Vec<f32>,
}

impl Saliency {
    /// The value at a fractional map position (bilinear, clamped at the edges).
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let n = self.size as usize;
        if n == 0 {
            return 0.0;
        }
        let last = (n - 1) as f32;
        let (x, y) = ((x - 0.5).clamp(0.0, last), (y - 0.5).clamp(0.0, last));
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let v = |x: usize, y: usize| self.values[y * n + x];
        let top = v(x0, y0) * (1.0 - fx) + v(x1, y0) * fx;
        let bottom = v(x0, y1) * (1.0 - fx) + v(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// `(x, y)` of the largest value (the first one, in row order).
    pub fn peak(&self) -> (u32, u32) {
        let mut best = 0;
        for (i, v) in self.values.iter().enumerate() {
            if *v > self.values[best] {
                best = i;
            }
        }
        let n = self.size.max(1) as usize;
        ((best % n) as u32, (best / n) as u32)
    }
}

/// ∂ log p_class / ∂x of the head's softmax, for one preprocessed image `(1, 3, S, S)`.
pub fn class_input_gradient(
    backbone: &Backbone,
    head: &LinearHead,
    input: &Tensor,
    class: u16,
) -> Result<Tensor> {
    if class as usize >= head.classes {
        return Err(Error::Weights(format!(
            "class {class} is not one of the head's {} classes",
            head.classes
        )));
    }
    backbone.input_gradient(input, |out| {
        let logits = head
            .logits_tensor(&out.embedding)
            .map_err(candle_core::Error::wrap)?;
        candle_nn::ops::log_softmax(&logits, 1)?
            .narrow(1, class as usize, 1)?
            .sum_all()
    })
}

/// The saliency of `class` for `image` (decoded RGB, any size): preprocessed the backbone's
/// way, one forward and backward pass, then [`from_gradient`].
pub fn compute(
    backbone: &Backbone,
    head: &LinearHead,
    image: &RgbImage,
    class: u16,
) -> Result<Saliency> {
    let pre = backbone.kind.preprocess();
    let input = pre.batch_tensor(&[pre.apply(image)], backbone.device())?;
    let grad = class_input_gradient(backbone, head, &input, class)?;
    let grad: Vec<f32> = grad
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    Ok(from_gradient(&grad, pre.size, class))
}

/// |gradient| summed over channels (CHW, `3 × size × size`), smoothed and normalised.
pub fn from_gradient(grad: &[f32], size: u32, class: u16) -> Saliency {
    let n = size as usize;
    let plane = n * n;
    let mut values: Vec<f32> = (0..plane)
        .map(|i| {
            (0..grad.len() / plane.max(1))
                .map(|c| grad[c * plane + i].abs())
                .sum::<f32>()
        })
        .collect();
    // A box radius of 1/56 of the side: 4 px at 224, about the size of the network's smallest
    // features, so the map shows regions rather than the pixel noise of raw gradients.
    let radius = (n / 56).max(1);
    for _ in 0..3 {
        box_blur(&mut values, n, radius);
    }
    normalise(&mut values);
    Saliency {
        size,
        class,
        values,
    }
}

/// One separable box blur of radius `r` over an `n × n` map (edges clamp).
fn box_blur(values: &mut [f32], n: usize, r: usize) {
    if n == 0 {
        return;
    }
    let mut tmp = vec![0f32; values.len()];
    let width = (2 * r + 1) as f32;
    let blur_line = |get: &dyn Fn(usize) -> f32, put: &mut dyn FnMut(usize, f32)| {
        for i in 0..n {
            let mut sum = 0.0;
            for d in 0..=2 * r {
                let j = (i + d).saturating_sub(r).min(n - 1);
                sum += get(j);
            }
            put(i, sum / width);
        }
    };
    for y in 0..n {
        blur_line(&|x| values[y * n + x], &mut |x, v| tmp[y * n + x] = v);
    }
    for x in 0..n {
        blur_line(&|y| tmp[y * n + x], &mut |y, v| values[y * n + x] = v);
    }
}

/// Divides by the 99th percentile and clips to [0, 1]; an all-zero (or non-finite) map stays 0.
fn normalise(values: &mut [f32]) {
    for v in values.iter_mut() {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let at = ((sorted.len() as f32 - 1.0) * NORMALISE_PERCENTILE).round() as usize;
    let scale = sorted.get(at).copied().unwrap_or(0.0);
    let scale = if scale > 0.0 {
        scale
    } else {
        sorted.last().copied().unwrap_or(0.0)
    };
    for v in values.iter_mut() {
        *v = if scale > 0.0 {
            (*v / scale).min(1.0)
        } else {
            0.0
        };
    }
}

/// The heat colour of a value in [0, 1]: black, purple, red, orange, pale yellow (an
/// "inferno"-like ramp that reads on light and dark pictures and in grey).
pub fn colour(v: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 4.0],
        [87.0, 16.0, 110.0],
        [188.0, 55.0, 84.0],
        [249.0, 142.0, 9.0],
        [252.0, 255.0, 164.0],
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let t = v * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let mix = |c: usize| (STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// Opacity of the heat colour over the picture: the hot parts cover it, the cold ones only
/// darken it a little.
fn opacity(v: f32) -> f32 {
    0.2 + 0.6 * v
}

/// The map as an RGBA image (`size × size`): heat colour, opacity rising with the value.
pub fn heatmap(saliency: &Saliency) -> RgbaImage {
    let n = saliency.size;
    RgbaImage::from_fn(n, n, |x, y| {
        let v = saliency.values[(y * n + x) as usize];
        let [r, g, b] = colour(v);
        Rgba([r, g, b, (opacity(v) * 255.0).round() as u8])
    })
}

/// `image` (the original picture) with the map blended over the square the network saw;
/// outside that square (cropped away by preprocessing) the picture is dimmed, so the user
/// sees what the model did not.
pub fn overlay(image: &RgbImage, saliency: &Saliency, preprocess: &Preprocess) -> RgbImage {
    let (w, h) = image.dimensions();
    let [cx, cy, cw, ch] = preprocess.crop_in_source(w, h);
    let scale_x = saliency.size as f32 / cw.max(1e-6);
    let scale_y = saliency.size as f32 / ch.max(1e-6);
    RgbImage::from_fn(w, h, |x, y| {
        let p = image.get_pixel(x, y).0;
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let inside = fx >= cx && fx <= cx + cw && fy >= cy && fy <= cy + ch;
        if !inside {
            return Rgb(p.map(|c| c / 3));
        }
        let v = saliency.at((fx - cx) * scale_x, (fy - cy) * scale_y);
        let heat = colour(v);
        let a = opacity(v);
        Rgb([0, 1, 2].map(|c| (p[c] as f32 * (1.0 - a) + heat[c] as f32 * a).round() as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_peaks_where_the_gradient_is_and_is_normalised() {
        let n = 56usize;
        let mut grad = vec![0f32; 3 * n * n];
        // Evidence in the bottom-right corner, on two channels, of both signs.
        for y in 44..52 {
            for x in 40..50 {
                grad[y * n + x] = -2.0;
                grad[2 * n * n + y * n + x] = 1.0;
            }
        }
        // A single hot pixel elsewhere is smoothed away, not the peak.
        grad[5 * n + 5] = 20.0;
        let s = from_gradient(&grad, n as u32, 3);
        let (px, py) = s.peak();
        assert!(
            (40..50).contains(&px) && (44..52).contains(&py),
            "{px} {py}"
        );
        assert!(s.values.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(s.values.iter().cloned().fold(0.0, f32::max), 1.0);
        // Far from both, nothing.
        assert_eq!(s.values[25 * n + 25], 0.0);
        assert_eq!(s.class, 3);
    }

    #[test]
    fn a_flat_gradient_gives_a_zero_map() {
        let s = from_gradient(&[0.0; 3 * 16], 4, 0);
        assert!(s.values.iter().all(|&v| v == 0.0));
        let nan = from_gradient(&[f32::NAN; 3 * 16], 4, 0);
        assert!(nan.values.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_colour_ramp_rises_in_brightness() {
        let lum = |v: f32| colour(v).iter().map(|&c| c as u32).sum::<u32>();
        let steps: Vec<u32> = (0..=10).map(|i| lum(i as f32 / 10.0)).collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
        assert_eq!(colour(f32::NAN), colour(0.0));
    }

    #[test]
    fn the_overlay_heats_the_seen_square_and_dims_the_cropped_sides() {
        // 40x10 picture; the network saw the centre 10x10 (x 15..25).
        let image = RgbImage::from_pixel(40, 10, Rgb([90, 90, 90]));
        let mut values = vec![0f32; 64];
        values[3 * 8 + 3] = 1.0;
        let s = Saliency {
            size: 8,
            class: 0,
            values,
        };
        let pre = Preprocess {
            size: 8,
            crop_pct: 1.0,
            mean: [0.5; 3],
            std: [0.5; 3],
        };
        let out = overlay(&image, &s, &pre);
        assert_eq!(out.dimensions(), (40, 10));
        assert_eq!(out.get_pixel(2, 5).0, [30, 30, 30]);
        // Map cell (3, 3) sits at source x = 15 + 3.5 * 10 / 8 ≈ 19.4, y ≈ 4.4: hot.
        let hot = out.get_pixel(19, 4).0;
        let cold = out.get_pixel(24, 9).0;
        assert!(hot[0] > cold[0] + 40, "{hot:?} {cold:?}");
        assert_eq!(heatmap(&s).dimensions(), (8, 8));
    }
}

//! Per-backbone preprocessing: resize the shorter side, centre crop, normalise to CHW floats.
//!
//! Stored images may or may not keep their aspect ratio (the shared Imagenette copy is squashed
//! to 224x224, the official 160/320 releases are not), so nothing here assumes either.

use candle_core::{Device, Tensor};
use image::{imageops, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Side of the square network input.
    pub size: u32,
    /// The shorter side is resized to `size / crop_pct` before the centre crop. 1.0 (the default)
    /// means "resize to the input size, crop only the longer side", which leaves a 224x224 image
    /// untouched for a 224 backbone.
    pub crop_pct: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// Resized and centre-cropped RGB image of `size x size`.
    pub fn resize_and_crop(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = img.dimensions();
        let target_short = ((self.size as f32 / self.crop_pct).round() as u32).max(self.size);
        let (new_w, new_h) = if w <= h {
            (target_short, scale(h, target_short, w))
        } else {
            (scale(w, target_short, h), target_short)
        };
        let resized = if (new_w, new_h) == (w, h) {
            img.clone()
        } else {
            imageops::resize(img, new_w, new_h, imageops::FilterType::CatmullRom)
        };
        let x = (new_w - self.size) / 2;
        let y = (new_h - self.size) / 2;
        imageops::crop_imm(&resized, x, y, self.size, self.size).to_image()
    }

    /// The square the network sees, in the source image's pixel coordinates:
    /// `(x, y, width, height)` of the region [`Preprocess::resize_and_crop`] keeps (a saliency
    /// map at the input resolution covers exactly this region of the original picture).
    pub fn crop_in_source(&self, width: u32, height: u32) -> [f32; 4] {
        let target_short = ((self.size as f32 / self.crop_pct).round() as u32).max(self.size);
        let (new_w, new_h) = if width <= height {
            (target_short, scale(height, target_short, width))
        } else {
            (scale(width, target_short, height), target_short)
        };
        let sx = width as f32 / new_w as f32;
        let sy = height as f32 / new_h as f32;
        let x = ((new_w - self.size) / 2) as f32;
        let y = ((new_h - self.size) / 2) as f32;
        [x * sx, y * sy, self.size as f32 * sx, self.size as f32 * sy]
    }

    /// Normalised CHW floats of an image already `size x size`.
    pub fn normalise(&self, img: &RgbImage) -> Vec<f32> {
        let plane = (self.size * self.size) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (p.0[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    /// Full preprocessing of one image to CHW floats.
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        self.normalise(&self.resize_and_crop(img))
    }

    /// Stacks preprocessed images into an `(N, 3, size, size)` tensor.
    pub fn batch_tensor(&self, images: &[Vec<f32>], device: &Device) -> Result<Tensor> {
        let s = self.size as usize;
        let flat: Vec<f32> = images.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (images.len(), 3, s, s), device)?)
    }
}

/// `long * target / short`, rounded, at least `target`.
fn scale(long: u32, target: u32, short: u32) -> u32 {
    ((long as u64 * target as u64 + short as u64 / 2) / short as u64).max(target as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn pre(size: u32) -> Preprocess {
        Preprocess {
            size,
            crop_pct: 1.0,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }

    #[test]
    fn square_image_of_input_size_is_untouched() {
        let img = RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8 * 30, y as u8 * 30, 7]));
        assert_eq!(pre(8).resize_and_crop(&img), img);
    }

    #[test]
    fn wide_and_tall_images_are_centre_cropped_to_a_square() {
        // 40x10: left quarter black, middle white, right quarter black. After resizing to 32x8
        // and cropping the centre 8x8, only white remains.
        let wide = RgbImage::from_fn(40, 10, |x, _| {
            if (10..30).contains(&x) {
                Rgb([255; 3])
            } else {
                Rgb([0; 3])
            }
        });
        let out = pre(8).resize_and_crop(&wide);
        assert_eq!(out.dimensions(), (8, 8));
        assert!(out.pixels().all(|p| p.0[0] > 240), "{out:?}");
        let tall = RgbImage::new(5, 17);
        assert_eq!(pre(8).resize_and_crop(&tall).dimensions(), (8, 8));
        let tiny = RgbImage::new(1, 1);
        assert_eq!(pre(8).resize_and_crop(&tiny).dimensions(), (8, 8));
    }

    #[test]
    fn the_crop_in_source_coordinates_is_the_kept_centre_square() {
        // 40x10 resized to 32x8, centre 8x8 kept: x from 12 to 20 of 32, i.e. 15..25 of 40.
        assert_eq!(pre(8).crop_in_source(40, 10), [15.0, 0.0, 10.0, 10.0]);
        assert_eq!(pre(8).crop_in_source(8, 8), [0.0, 0.0, 8.0, 8.0]);
        let [x, y, w, h] = pre(8).crop_in_source(10, 40);
        assert_eq!((x, w), (0.0, 10.0));
        assert!(
            (y - 15.0).abs() < 1e-4 && (h - 10.0).abs() < 1e-4,
            "{y} {h}"
        );
    }

    #[test]
    fn normalisation_is_channel_planar() {
        let p = Preprocess {
            size: 1,
            crop_pct: 1.0,
            mean: [0.0, 0.5, 1.0],
            std: [1.0, 0.5, 0.25],
        };
        let img = RgbImage::from_pixel(1, 1, Rgb([255, 255, 0]));
        assert_eq!(p.apply(&img), vec![1.0, 1.0, -4.0]);
    }
}

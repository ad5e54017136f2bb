//! Batched decoding overlapped with compute: one thread decodes and preprocesses the next batch
//! (in parallel, with rayon) while the caller runs the network on the current one.

use std::sync::mpsc::sync_channel;

use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;

use crate::data::dataset::Sample;
use crate::data::imageio::decode;
use crate::data::preprocess::Preprocess;
use crate::error::Result;

/// Batches decoded ahead of the one being computed.
const PREFETCH: usize = 2;

/// A batch ready for the network.
pub struct Batch {
    /// Indices (into the sample slice) of the images in `input`, in order.
    pub indices: Vec<usize>,
    /// Whether each image of `indices` came from a truncated file (its missing part filled in
    /// by the decoder), in the same order.
    pub truncated: Vec<bool>,
    /// `(len, 3, size, size)`, on the CPU; `None` when every image of the batch failed.
    pub input: Option<Tensor>,
    /// Images that could not be used: sample index and reason.
    pub failures: Vec<(usize, String)>,
}

/// Decodes `samples` in batches of `batch_size` and hands each to `consume`, in order.
/// Images that fail to decode are reported in `Batch::failures` and never abort the run.
pub fn for_each_batch(
    samples: &[Sample],
    preprocess: &Preprocess,
    batch_size: usize,
    consume: impl FnMut(Batch) -> Result<()>,
) -> Result<()> {
    for_each_batch_transformed(samples, preprocess, batch_size, None, consume)
}

/// A change applied to each decoded image before preprocessing (e.g. a corruption).
pub type ImageTransform = dyn Fn(&Sample, RgbImage) -> RgbImage + Sync;

/// [`for_each_batch`] with an optional transform of every decoded image.
pub fn for_each_batch_transformed(
    samples: &[Sample],
    preprocess: &Preprocess,
    batch_size: usize,
    transform: Option<&ImageTransform>,
    mut consume: impl FnMut(Batch) -> Result<()>,
) -> Result<()> {
    let batch_size = batch_size.max(1);
    let (tx, rx) = sync_channel::<Result<Batch>>(PREFETCH);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (chunk_index, chunk) in samples.chunks(batch_size).enumerate() {
                let batch = decode_batch(chunk, chunk_index * batch_size, preprocess, transform);
                if tx.send(batch).is_err() {
                    return; // the consumer stopped early
                }
            }
        });
        for batch in rx {
            consume(batch?)?;
        }
        Ok(())
    })
}

fn decode_batch(
    chunk: &[Sample],
    offset: usize,
    preprocess: &Preprocess,
    transform: Option<&ImageTransform>,
) -> Result<Batch> {
    let decoded: Vec<std::result::Result<(Vec<f32>, bool), String>> = chunk
        .par_iter()
        .map(|s| {
            decode(&s.path)
                .map(|d| {
                    let img = match transform {
                        Some(t) => t(s, d.image),
                        None => d.image,
                    };
                    (preprocess.apply(&img), d.truncated)
                })
                .map_err(|e| e.to_string())
        })
        .collect();
    let mut indices = Vec::new();
    let mut truncated = Vec::new();
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for (i, result) in decoded.into_iter().enumerate() {
        match result {
            Ok((chw, cut)) => {
                indices.push(offset + i);
                truncated.push(cut);
                images.push(chw);
            }
            Err(reason) => failures.push((offset + i, reason)),
        }
    }
    let input = if images.is_empty() {
        None
    } else {
        Some(preprocess.batch_tensor(&images, &Device::Cpu)?)
    };
    Ok(Batch {
        indices,
        truncated,
        input,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_images_are_reported_truncated_ones_flagged_and_the_rest_arrive_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut samples = Vec::new();
        for i in 0..5 {
            let path = dir.path().join(format!("{i}.png"));
            if i == 2 {
                std::fs::write(&path, b"broken").unwrap();
            } else if i == 3 {
                // A JPEG without its end marker: decoded (the decoder fills in), but flagged.
                let jpeg = dir.path().join("whole.jpg");
                image::RgbImage::from_fn(64, 64, |x, y| {
                    image::Rgb([(x * y) as u8, x as u8, y as u8])
                })
                .save(&jpeg)
                .unwrap();
                let bytes = std::fs::read(&jpeg).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
            } else {
                image::RgbImage::from_pixel(4, 6, image::Rgb([i as u8; 3]))
                    .save(&path)
                    .unwrap();
            }
            samples.push(Sample {
                id: format!("{i}.png"),
                path,
                label: None,
            });
        }
        let pre = Preprocess {
            size: 4,
            crop_pct: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let mut seen = Vec::new();
        let mut truncated = Vec::new();
        let mut failed = Vec::new();
        for_each_batch(&samples, &pre, 2, |batch| {
            if let Some(input) = &batch.input {
                assert_eq!(input.dims4()?, (batch.indices.len(), 3, 4, 4));
            }
            assert_eq!(batch.truncated.len(), batch.indices.len());
            truncated.extend(batch.truncated);
            seen.extend(batch.indices);
            failed.extend(batch.failures.into_iter().map(|(i, _)| i));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![0, 1, 3, 4]);
        assert_eq!(truncated, vec![false, false, true, false]);
        assert_eq!(failed, vec![2]);
    }
}

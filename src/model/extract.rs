//! Backbone passes over samples: embeddings (forward only), or embeddings together with the
//! gradient sensitivity ‖∂ log p_ŷ / ∂x‖₂ (forward + backward in one pass). Both are cached.
//!
//! The gradient is taken through the backbone's own ImageNet classifier, with ŷ its predicted
//! class (never the label). It therefore depends on the image and the weights only, not on any
//! trained head: one pass per image serves every head, fold and retraining, and the features of
//! training rows and of new images come from the same function.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::data::corrupt::{self, CorruptionSpec};
use crate::data::dataset::Sample;
use crate::data::imageio;
use crate::error::Result;
use crate::model::backbone::{one_hot, Backbone};
use crate::model::cache::{self, CacheKey};
use crate::model::pipeline::{for_each_batch_transformed, ImageTransform};

/// Per-sample backbone outputs for the samples that decoded.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// Index (into the slice given) of each row.
    pub rows: Vec<usize>,
    pub dim: usize,
    /// `rows.len() × dim`, row-major.
    pub embeddings: Vec<f32>,
    /// Gradient sensitivity per row (only when a head was given).
    pub grad_norms: Vec<f32>,
    /// Whether each row's file was truncated (decoded with its missing part filled in).
    pub truncated: Vec<bool>,
    /// (sample id, reason) of the samples that could not be used.
    pub skipped: Vec<(String, String)>,
    /// Whether this came from the on-disk cache instead of the backbone.
    pub from_cache: bool,
}

impl Extracted {
    pub fn embedding(&self, row: usize) -> &[f32] {
        &self.embeddings[row * self.dim..(row + 1) * self.dim]
    }
}

/// What determines the images the backbone sees.
pub struct ExtractSpec<'a> {
    pub backbone: &'a Backbone,
    pub weights_sha256: &'a str,
    pub corruption: Option<CorruptionSpec>,
    pub seed: u64,
    pub batch_size: usize,
    /// Read and write the on-disk cache (off for benchmarks, which must do the work).
    pub use_cache: bool,
}

impl ExtractSpec<'_> {
    fn key(&self, kind: &str, samples: &[Sample]) -> CacheKey {
        let pre = serde_json::to_string(&self.backbone.kind.preprocess()).unwrap_or_default();
        CacheKey::new(kind)
            .part("backbone", self.backbone.kind.name())
            .part("weights", self.weights_sha256)
            .part("preprocess", pre)
            .part(
                "corruption",
                self.corruption.map(|c| c.to_string()).unwrap_or_default(),
            )
            .part("seed", self.seed.to_le_bytes())
            .samples(&samples.iter().collect::<Vec<_>>())
    }

    fn transform(&self) -> Option<Box<ImageTransform>> {
        let spec = self.corruption?;
        let seed = self.seed;
        Some(Box::new(move |s: &Sample, img| {
            corrupt::apply(&img, &spec, &s.id, seed).0
        }))
    }

    /// Embeddings of `samples` (forward passes only).
    pub fn embeddings(
        &self,
        samples: &[Sample],
        progress: &dyn Fn(usize, usize),
    ) -> Result<Extracted> {
        self.run(samples, false, progress)
    }

    /// [`ExtractSpec::with_gradients`] in cache entries of `chunk` samples, so a long run that
    /// stops keeps what it finished and a rerun resumes from there.
    pub fn with_gradients_chunked(
        &self,
        samples: &[Sample],
        chunk: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Extracted> {
        let mut all = Extracted {
            dim: self.backbone.kind.embedding_dim(),
            from_cache: true,
            ..Default::default()
        };
        let chunk = chunk.max(1);
        for (c, part) in samples.chunks(chunk).enumerate() {
            let base = c * chunk;
            let out = self.with_gradients(part, &|done, _| progress(base + done, samples.len()))?;
            all.rows.extend(out.rows.iter().map(|r| r + base));
            all.embeddings.extend(out.embeddings);
            all.grad_norms.extend(out.grad_norms);
            all.truncated.extend(out.truncated);
            all.skipped.extend(out.skipped);
            all.from_cache &= out.from_cache;
        }
        Ok(all)
    }

    /// Embeddings and gradient sensitivity, in one forward + backward pass.
    pub fn with_gradients(
        &self,
        samples: &[Sample],
        progress: &dyn Fn(usize, usize),
    ) -> Result<Extracted> {
        self.run(samples, true, progress)
    }

    fn run(
        &self,
        samples: &[Sample],
        gradients: bool,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Extracted> {
        // "grad-imagenet": gradients through the backbone's classifier (older caches took
        // them through a trained head and are not reused).
        let key = self.key(if gradients { "grad-imagenet" } else { "embed" }, samples);
        if let Some((mut hit, knows_truncation)) = load(&key).filter(|_| self.use_cache) {
            if !knows_truncation {
                // An entry written before truncation was recorded: the flag is a function of
                // the file's bytes (which the key pins), so read it from the files once and
                // keep it, instead of recomputing the backbone passes.
                hit.truncated = hit
                    .rows
                    .iter()
                    .map(|&r| imageio::file_truncated(&samples[r].path))
                    .collect();
                store_sidecar(&key, &hit)?;
            }
            progress(samples.len(), samples.len());
            return Ok(hit);
        }
        let device = self.backbone.device().clone();
        let transform = self.transform();
        let mut out = Extracted {
            dim: self.backbone.kind.embedding_dim(),
            ..Default::default()
        };
        let mut done = 0;
        for_each_batch_transformed(
            samples,
            &self.backbone.kind.preprocess(),
            self.batch_size,
            transform.as_deref(),
            |batch| {
                for (i, reason) in batch.failures {
                    out.skipped.push((samples[i].id.clone(), reason));
                }
                done += batch.indices.len();
                if let Some(input) = batch.input {
                    let input = input.to_device(&device)?;
                    let (embedding, norms) = if gradients {
                        gradient_pass(self.backbone, &input)?
                    } else {
                        (self.backbone.embed(&input)?, Vec::new())
                    };
                    out.embeddings
                        .extend(embedding.flatten_all()?.to_vec1::<f32>()?);
                    out.grad_norms.extend(norms);
                    out.rows.extend(batch.indices);
                    out.truncated.extend(batch.truncated);
                }
                progress(done + out.skipped.len(), samples.len());
                Ok(())
            },
        )?;
        if self.use_cache {
            store(&key, &out)?;
        }
        Ok(out)
    }
}

/// One forward + backward pass: embeddings and ‖∂ log p_ŷ / ∂x‖₂ per image, where ŷ is the
/// backbone classifier's prediction (never the label). `input` is on the backbone's device.
pub fn gradient_pass(backbone: &Backbone, input: &Tensor) -> Result<(Tensor, Vec<f32>)> {
    let (out, g) = backbone.forward_with_input_gradient(input, |out| {
        let logits = &out.logits;
        let predicted: Vec<u32> = logits.argmax(1)?.to_vec1()?;
        let mask = one_hot(&predicted, logits.dim(1)?, input.device())
            .map_err(candle_core::Error::wrap)?;
        candle_nn::ops::log_softmax(logits, 1)?
            .mul(&mask)?
            .sum_all()
    })?;
    let norms = g.sqr()?.sum((1, 2, 3))?.sqrt()?.to_vec1::<f32>()?;
    Ok((out.embedding, norms))
}

fn store(key: &CacheKey, e: &Extracted) -> Result<()> {
    let d = candle_core::Device::Cpu;
    let n = e.rows.len();
    let mut t = HashMap::new();
    t.insert(
        "rows".to_string(),
        Tensor::from_vec(e.rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), n, &d)?,
    );
    t.insert(
        "embeddings".to_string(),
        Tensor::from_slice(&e.embeddings, (n, e.dim), &d)?,
    );
    if !e.grad_norms.is_empty() {
        t.insert(
            "grad_norms".to_string(),
            Tensor::from_slice(&e.grad_norms, n, &d)?,
        );
    }
    if n > 0 {
        cache::store_tensors(key, &t)?;
    }
    store_sidecar(key, e)
}

/// The JSON beside the tensors of a cache entry.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Sidecar {
    Current {
        skipped: Vec<(String, String)>,
        /// Per row, as `Extracted::truncated`.
        truncated: Vec<bool>,
    },
    /// Entries written before truncation was recorded: the skipped list alone.
    Skipped(Vec<(String, String)>),
}

fn store_sidecar(key: &CacheKey, e: &Extracted) -> Result<()> {
    cache::store_json(
        key,
        &Sidecar::Current {
            skipped: e.skipped.clone(),
            truncated: e.truncated.clone(),
        },
    )
}

/// A cache entry, and whether it records truncation.
fn load(key: &CacheKey) -> Option<(Extracted, bool)> {
    let (skipped, truncated) = match cache::load_json(key)? {
        Sidecar::Current { skipped, truncated } => (skipped, Some(truncated)),
        Sidecar::Skipped(skipped) => (skipped, None),
    };
    let t = cache::load_tensors(key).unwrap_or_default();
    let rows: Vec<u32> = t
        .get("rows")
        .and_then(|r| r.to_vec1().ok())
        .unwrap_or_default();
    let embeddings = t.get("embeddings");
    let dim = embeddings.and_then(|e| e.dim(1).ok()).unwrap_or(0);
    // A flag list that does not fit the rows is as good as none.
    let truncated = truncated.filter(|t| t.len() == rows.len());
    let knows_truncation = truncated.is_some();
    let extracted = Extracted {
        rows: rows.into_iter().map(|r| r as usize).collect(),
        truncated: truncated.unwrap_or_default(),
        dim,
        embeddings: embeddings
            .and_then(|e| e.flatten_all().ok()?.to_vec1().ok())
            .unwrap_or_default(),
        grad_norms: t
            .get("grad_norms")
            .and_then(|g| g.to_vec1().ok())
            .unwrap_or_default(),
        skipped,
        from_cache: true,
    };
    Some((extracted, knows_truncation))
}

#[cfg(test)]
mod tests {
    use super::Sidecar;

    #[test]
    fn cache_sidecars_of_both_ages_read() {
        let old: Sidecar = serde_json::from_str(r#"[["a.jpg","cannot decode"]]"#).unwrap();
        assert!(matches!(old, Sidecar::Skipped(s) if s[0].0 == "a.jpg"));
        let new = serde_json::to_string(&Sidecar::Current {
            skipped: vec![],
            truncated: vec![false, true],
        })
        .unwrap();
        let back: Sidecar = serde_json::from_str(&new).unwrap();
        assert!(matches!(back, Sidecar::Current { truncated, .. } if truncated == [false, true]));
    }
}

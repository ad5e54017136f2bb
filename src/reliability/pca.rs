//! PCA of penultimate embeddings (fitted with `linfa-reduction`, applied here in f32).

use linfa::traits::Fit;
use linfa::DatasetBase;
use ndarray::Array2;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    pub mean: Vec<f32>,
    /// `components × dim`, row-major, orthonormal rows.
    pub components: Vec<f32>,
    pub dim: usize,
    /// Share of the total variance each component explains (of all dimensions, not only the
    /// kept ones).
    pub explained_variance_ratio: Vec<f32>,
}

impl Pca {
    /// Fits `components` principal axes of an `n × dim` row-major matrix.
    pub fn fit(data: &[f32], dim: usize, components: usize) -> Result<Self> {
        let n = data.len() / dim;
        let matrix = Array2::from_shape_vec((n, dim), data.iter().map(|&v| v as f64).collect())
            .map_err(|e| Error::Weights(format!("PCA input: {e}")))?;
        let total_variance: f64 = {
            let mean = matrix.mean_axis(ndarray::Axis(0)).expect("n > 0");
            (&matrix - &mean).mapv(|v| v * v).sum() / (n as f64 - 1.0).max(1.0)
        };
        let model = linfa_reduction::Pca::params(components)
            .fit(&DatasetBase::from(matrix))
            .map_err(|e| Error::Weights(format!("PCA fit failed: {e}")))?;
        let explained = model.explained_variance();
        Ok(Self {
            mean: model.mean().iter().map(|&v| v as f32).collect(),
            components: model.components().iter().map(|&v| v as f32).collect(),
            dim,
            explained_variance_ratio: explained
                .iter()
                .map(|v| (v / total_variance) as f32)
                .collect(),
        })
    }

    pub fn n_components(&self) -> usize {
        self.components.len() / self.dim
    }

    pub fn transform(&self, row: &[f32]) -> Vec<f32> {
        self.components
            .chunks(self.dim)
            .map(|axis| {
                axis.iter()
                    .zip(row)
                    .zip(&self.mean)
                    .map(|((a, v), m)| a * (v - m))
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_dominant_axis() {
        // 12 dimensions: a strong signal along (1, 1, 0, ...), small noise everywhere.
        let dim = 12;
        let mut data = Vec::new();
        for i in 0..400 {
            let t = i as f32 / 20.0 - 10.0;
            for j in 0..dim {
                let noise = (((i * 37 + j * 101) % 23) as f32 - 11.0) / 200.0;
                data.push(noise + if j < 2 { t + j as f32 } else { 0.0 });
            }
        }
        let pca = Pca::fit(&data, dim, 3).unwrap();
        let axis = &pca.components[..dim];
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (axis[0].abs() - s).abs() < 1e-2 && (axis[1].abs() - s).abs() < 1e-2,
            "{axis:?}"
        );
        assert!(
            pca.explained_variance_ratio[0] > 0.99,
            "{:?}",
            pca.explained_variance_ratio
        );
        let projected = pca.transform(&data[..dim]);
        assert_eq!(projected.len(), 3);
        assert!((projected[0].abs() - 14.14).abs() < 0.3, "{projected:?}");
    }
}

//! Whether a prediction can be trusted: meta-features, PCA, k-NN, the MetaNet, the baselines it
//! is compared with, training, the certified threshold, scoring and the saved artifacts.

pub mod artifacts;
pub mod baselines;
pub mod certify;
pub mod embedded;
pub mod explain;
pub mod features;
pub mod knn;
pub mod label_issues;
pub mod metanet;
pub mod neighbours;
pub mod pca;
pub mod prediction;
pub mod records;
pub mod scoring;
pub mod train;

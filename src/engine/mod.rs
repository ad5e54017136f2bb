//! The UI-free half of REASON: data, models, metrics, downloads.

pub mod artifacts;
pub mod backbone;
pub mod baselines;
pub mod cache;
pub mod certify;
pub mod classify;
pub mod corrupt;
pub mod dataset;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod extract;
pub mod features;
pub mod fetch;
pub mod head;
pub mod imageio;
pub mod imagenet;
pub mod knn;
pub mod metanet;
pub mod metrics;
pub mod paths;
pub mod pca;
pub mod pipeline;
pub mod plots;
pub mod preprocess;
pub mod records;
pub mod scoring;
pub mod session;
pub mod train;

pub use error::{Error, Result};

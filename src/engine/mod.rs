//! The UI-free half of REASON: data, models, metrics, downloads.

pub mod artifacts;
pub mod backbone;
pub mod cache;
pub mod classify;
pub mod corrupt;
pub mod dataset;
pub mod device;
pub mod error;
pub mod export;
pub mod fetch;
pub mod evaluate;
pub mod extract;
pub mod features;
pub mod imageio;
pub mod knn;
pub mod imagenet;
pub mod head;
pub mod metrics;
pub mod metanet;
pub mod paths;
pub mod pca;
pub mod pipeline;
pub mod plots;
pub mod preprocess;
pub mod scoring;
pub mod records;
pub mod train;
pub mod session;

pub use error::{Error, Result};

//! The UI-free half of REASON: data, models, metrics, downloads.

pub mod backbone;
pub mod classify;
pub mod dataset;
pub mod device;
pub mod error;
pub mod fetch;
pub mod fetch_tmp;
pub mod imageio;
pub mod imagenet;
pub mod metrics;
pub mod paths;
pub mod pipeline;
pub mod preprocess;
pub mod records;
pub mod session;

pub use error::{Error, Result};

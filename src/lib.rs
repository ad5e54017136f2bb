//! REASON: tells whether an image classifier's prediction can be trusted.
//!
//! The folders follow the data's way through the program (ARCHITECTURE.md has the whole map):
//!
//! - [`data`]: datasets, decoding, preprocessing, corruptions, downloads;
//! - [`model`]: backbones, the base head, devices, batched passes and their cache;
//! - [`reliability`]: meta-features, PCA, k-NN, the MetaNet, training, scoring, artifacts;
//! - [`report`]: metrics, the evaluation table, plots, exports;
//! - the instruments on top: [`dashboard`] (the terminal UI), [`serve`] (the HTTP API and its
//!   page) and [`cli`].
//!
//! Each layer imports only the layers before it; the engine (the first four) never imports an
//! instrument. `tests/architecture.rs` checks both rules.

pub mod cli;
pub mod dashboard;
pub mod data;
pub mod error;
pub mod metrics;
pub mod model;
pub mod reliability;
pub mod report;
pub mod serve;
pub mod support;

pub use error::{Error, Result};

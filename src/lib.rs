//! REASON: tells whether an image classifier's prediction can be trusted.
//!
//! `engine` holds everything that computes (data, models, meta-features, metrics, artifacts);
//! `cli` is the command-line edge. The engine never imports the UI.

pub mod cli;
pub mod engine;
pub mod tui;

//! Typed errors of the engine. The CLI wraps them with `anyhow` at the edge.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {reason}")]
    Dataset { path: PathBuf, reason: String },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },

    #[error("unknown backbone `{name}` (known: {known})")]
    UnknownBackbone { name: String, known: String },

    #[error("weights {source_desc} do not fit backbone `{backbone}`: {reason}")]
    WeightsMismatch {
        backbone: String,
        source_desc: String,
        reason: String,
    },

    #[error("{0}")]
    Weights(String),

    #[error("device: {0}")]
    Device(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

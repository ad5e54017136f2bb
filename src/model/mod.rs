//! The base classifier: backbones and their CPU kernels, the linear head, device choice,
//! batched passes over a dataset and the cache that lets a second run skip them.

pub mod backbone;
pub mod cache;
pub mod classify;
pub mod cpu;
pub mod device;
pub mod extract;
pub mod head;
pub mod pipeline;
pub mod saliency;

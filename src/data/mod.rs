//! Where samples come from and how they become tensors: datasets, decoding, preprocessing,
//! corruptions, the ImageNet class list, default locations and downloads.

pub mod corrupt;
pub mod dataset;
pub mod download;
pub mod imageio;
pub mod imagenet;
pub mod labels;
pub mod paths;
pub mod preprocess;

//! Small pieces every layer uses, each written once: atomic file writes and file hashes,
//! seeded per-sample hashing, a float ordering key, softmax and top-k, and escaping text for
//! the terminal. Nothing here knows about images, models or the UI.

pub mod files;
pub mod hash;
pub mod math;
pub mod order;
pub mod text;

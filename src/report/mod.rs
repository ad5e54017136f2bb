//! What the numbers say: the evaluation table (every score with its baseline, chance level and
//! interval), plots, and the per-sample exports it can be recomputed from.

pub mod evaluate;
pub mod explain;
pub mod export;
pub mod plots;
pub mod scores;

//! What the numbers say: the evaluation table (every score with its baseline, chance level and
//! interval), plots, the per-sample exports it can be recomputed from, and the scored table
//! (`reason score`'s file, also the dashboard's records cache).

pub mod evaluate;
pub mod explain;
pub mod export;
pub mod plots;
pub mod records_cache;
pub mod scores;

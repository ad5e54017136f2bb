//! What the numbers say: metrics with their intervals, the evaluation table, plots and the
//! per-sample exports they can be recomputed from.

pub mod evaluate;
pub mod export;
pub mod metrics;
pub mod plots;

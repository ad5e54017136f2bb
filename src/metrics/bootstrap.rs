//! Paired bootstrap of metric differences between two scores on the same rows, by row or by
//! group of rows (all views of one source image move together).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::support::hash::splitmix64;
use crate::support::order::score_key;

use super::groups::*;

/// Bootstrap of one difference metric(a) − metric(b).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// metric(a) − metric(b) on the original rows (`None` if undefined there).
    pub estimate: Option<f64>,
    /// 2.5 % and 97.5 % percentiles of the resampled differences (linear interpolation between
    /// order statistics at position q·(B_used − 1)); `None` if no resample was usable.
    pub interval: Option<(f64, f64)>,
    /// Resamples that entered the interval.
    pub resamples_used: usize,
    /// Resamples skipped because the metric was undefined on them.
    pub resamples_skipped: usize,
}

/// Paired bootstrap of two scores on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    pub resamples: usize,
    pub seed: u64,
    /// What was resampled: `None` = rows (every row independent); `Some(G)` = G clusters of
    /// rows (e.g. source images), each drawn with all its rows.
    #[serde(default)]
    pub groups: Option<usize>,
    /// AUROC(a) − AUROC(b): positive means `a` ranks better. Resamples with only one class
    /// are skipped.
    pub auroc: PairedDifference,
    /// AURC(a) − AURC(b): negative means `a` is better. Every resample is usable (N > 0).
    pub aurc: PairedDifference,
}

/// Scores pre-sorted once for the bootstrap: row order, and where each tie group starts.
pub(super) struct Presorted {
    pub(super) order: Vec<u32>,
    /// Start of each group in `order`, plus `order.len()` at the end.
    pub(super) bounds: Vec<usize>,
    pub(super) scores: Vec<f32>,
}

impl Presorted {
    pub(super) fn new(scores: &[f32]) -> Self {
        let mut rows: Vec<(u32, u32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (score_key(s), i as u32))
            .collect();
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let mut bounds = Vec::new();
        let mut group_scores = Vec::new();
        for (pos, &(key, _)) in rows.iter().enumerate() {
            if pos == 0 || rows[pos - 1].0 != key {
                bounds.push(pos);
                group_scores.push(key_score(key));
            }
        }
        bounds.push(rows.len());
        Presorted {
            order: rows.into_iter().map(|(_, i)| i).collect(),
            bounds,
            scores: group_scores,
        }
    }

    /// Tie groups of the rows repeated `weights[i]` times.
    pub(super) fn groups(&self, correct: &[bool], weights: &[u32]) -> Groups {
        let mut out = Groups::default();
        for (w, &score) in self.bounds.windows(2).zip(&self.scores) {
            let mut g = Group {
                score,
                pos: 0,
                neg: 0,
            };
            for &i in &self.order[w[0]..w[1]] {
                let i = i as usize;
                if correct[i] {
                    g.pos += weights[i] as u64;
                } else {
                    g.neg += weights[i] as u64;
                }
            }
            out.push(g);
        }
        out
    }
}

/// Percentile by linear interpolation between order statistics (position q·(n−1)).
pub(super) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

pub(super) fn summarize(
    estimate: Option<f64>,
    diffs: impl Iterator<Item = Option<f64>>,
) -> PairedDifference {
    let mut used = Vec::new();
    let mut skipped = 0;
    for d in diffs {
        match d {
            Some(d) => used.push(d),
            None => skipped += 1,
        }
    }
    used.sort_unstable_by(f64::total_cmp);
    PairedDifference {
        estimate,
        interval: (!used.is_empty()).then(|| (percentile(&used, 0.025), percentile(&used, 0.975))),
        resamples_used: used.len(),
        resamples_skipped: skipped,
    }
}

/// Paired bootstrap of AUROC(a) − AUROC(b) and AURC(a) − AURC(b) over rows (`b` is usually
/// MSP): [`paired_bootstrap_grouped`] with every row its own group.
///
/// # Panics
/// If the three slices differ in length.
pub fn paired_bootstrap(
    a: &[f32],
    b: &[f32],
    correct: &[bool],
    resamples: usize,
    seed: u64,
) -> PairedBootstrap {
    paired_bootstrap_grouped(a, b, correct, None, resamples, seed)
}

/// (order key of score a, order key of score b, correct).
pub(super) type CanonRow = (u32, u32, bool);

/// Rows in a canonical order with the canonical index of each row's group.
pub(super) struct Canonical {
    pub(super) a: Vec<f32>,
    pub(super) b: Vec<f32>,
    pub(super) correct: Vec<bool>,
    /// Canonical group of each canonical row; groups are numbered 0..groups.
    pub(super) group_of: Vec<u32>,
    pub(super) groups: usize,
}

impl Canonical {
    /// Rows sorted by (score a, score b, correctness); without `groups`, each row is its own
    /// group, numbered in that order. With `groups`, clusters are ordered by their content
    /// (the sorted list of their rows), so neither the row order nor the group labels change
    /// the result; clusters with identical content are interchangeable.
    pub(super) fn new(a: &[f32], b: &[f32], correct: &[bool], groups: Option<&[u32]>) -> Self {
        let n = correct.len();
        let row = |i: usize| (score_key(a[i]), score_key(b[i]), correct[i]);
        match groups {
            None => {
                let mut rows: Vec<CanonRow> = (0..n).map(row).collect();
                rows.sort_unstable();
                Canonical::from_rows(&rows, (0..n as u32).collect(), n)
            }
            Some(ids) => {
                // Rows gathered by label with each cluster's rows sorted, then clusters
                // ordered by content.
                let mut labelled: Vec<(u32, CanonRow)> = (0..n).map(|i| (ids[i], row(i))).collect();
                labelled.sort_unstable();
                let mut clusters: Vec<&[(u32, CanonRow)]> =
                    labelled.chunk_by(|x, y| x.0 == y.0).collect();
                clusters.sort_unstable_by(|x, y| x.iter().map(|r| r.1).cmp(y.iter().map(|r| r.1)));
                let mut rows = Vec::with_capacity(n);
                let mut group_of = Vec::with_capacity(n);
                for (g, cluster) in clusters.iter().enumerate() {
                    for r in cluster.iter() {
                        rows.push(r.1);
                        group_of.push(g as u32);
                    }
                }
                Canonical::from_rows(&rows, group_of, clusters.len())
            }
        }
    }

    pub(super) fn from_rows(rows: &[CanonRow], group_of: Vec<u32>, groups: usize) -> Self {
        Canonical {
            a: rows.iter().map(|r| key_score(r.0)).collect(),
            b: rows.iter().map(|r| key_score(r.1)).collect(),
            correct: rows.iter().map(|r| r.2).collect(),
            group_of,
            groups,
        }
    }
}

/// Paired bootstrap of AUROC(a) − AUROC(b) and AURC(a) − AURC(b) (`b` is usually MSP), with
/// an optional cluster structure.
///
/// * `groups = None`: each resample draws N rows with replacement (row bootstrap).
/// * `groups = Some(ids)`: `ids[i]` names the cluster of row i (e.g. the source image when a
///   source appears several times under repeated corruption draws). Each resample draws G
///   clusters with replacement out of the G distinct ids, and every row of a drawn cluster
///   enters with the cluster's multiplicity (cluster bootstrap; Davison & Hinkley, *Bootstrap
///   Methods and their Application*, 1997, §3.8). Rows of one source are correlated, so
///   resampling them independently would give intervals that are too narrow.
///
/// Each resample uses its own `StdRng::seed_from_u64(mix(seed, resample index))`, so the result
/// does not depend on the number of threads (resamples run in parallel with rayon). Rows and
/// clusters are first put in a canonical order (rows by score a, score b, correctness;
/// clusters by their sorted rows), so the result depends neither on row order nor on the
/// values of the cluster labels. Resampled rows keep their ties (a duplicated row ties with
/// itself). With one row per cluster the result equals the row bootstrap bit for bit
/// (apart from the `groups` field).
///
/// # Panics
/// If the slices (including `groups`) differ in length.
pub fn paired_bootstrap_grouped(
    a: &[f32],
    b: &[f32],
    correct: &[bool],
    groups: Option<&[u32]>,
    resamples: usize,
    seed: u64,
) -> PairedBootstrap {
    assert_same_len(a.len(), correct.len());
    assert_same_len(b.len(), correct.len());
    if let Some(ids) = groups {
        assert_eq!(
            ids.len(),
            correct.len(),
            "metrics: {} group ids but {} rows",
            ids.len(),
            correct.len()
        );
    }
    let n = correct.len();
    let canon = Canonical::new(a, b, correct, groups);
    let n_groups = canon.groups;

    let sorted_a = Presorted::new(&canon.a);
    let sorted_b = Presorted::new(&canon.b);
    let ones = vec![1u32; n];
    let c_c = &canon.correct;
    let (ga, gb) = (sorted_a.groups(c_c, &ones), sorted_b.groups(c_c, &ones));
    let diff = |x: Option<f64>, y: Option<f64>| Some(x? - y?);
    let auroc_estimate = diff(ga.auroc(), gb.auroc());
    let aurc_estimate = diff(ga.aurc(), gb.aurc());

    let draws: Vec<(Option<f64>, Option<f64>)> = if n == 0 {
        vec![(None, None); resamples]
    } else {
        (0..resamples)
            .into_par_iter()
            .map(|r| {
                let mut rng = StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(r as u64)));
                let mut drawn = vec![0u32; n_groups];
                for _ in 0..n_groups {
                    drawn[rng.random_range(0..n_groups)] += 1;
                }
                let weights: Vec<u32> = canon.group_of.iter().map(|&g| drawn[g as usize]).collect();
                let ga = sorted_a.groups(c_c, &weights);
                let gb = sorted_b.groups(c_c, &weights);
                (diff(ga.auroc(), gb.auroc()), diff(ga.aurc(), gb.aurc()))
            })
            .collect()
    };

    PairedBootstrap {
        resamples,
        seed,
        groups: groups.map(|_| n_groups),
        auroc: summarize(auroc_estimate, draws.iter().map(|d| d.0)),
        aurc: summarize(aurc_estimate, draws.iter().map(|d| d.1)),
    }
}

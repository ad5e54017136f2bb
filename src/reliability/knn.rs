//! k-NN distances and the trust score against a bank of reference (training) embeddings in PCA
//! space, with `kiddo` k-d trees. A bank sample queried against its own bank is never its own
//! neighbour.

use std::num::NonZero;

use kiddo::immutable::float::kdtree::ImmutableKdTree;
use kiddo::SquaredEuclidean;

/// Dimension of the space the bank lives in (PCA components): kiddo needs it at compile time.
pub const DIM: usize = 32;
pub const K: usize = 10;

type Tree = ImmutableKdTree<f32, u64, DIM, 32>;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KnnStats {
    /// Mean Euclidean distance to the k nearest bank samples.
    pub mean_distance: f32,
    /// Distance to the k-th nearest.
    pub kth_distance: f32,
    /// Distance to the nearest bank sample of the predicted class.
    pub predicted_class_distance: f32,
    /// Nearest other class over nearest predicted class (Jiang et al.'s trust score, unfiltered).
    pub trust_score: f32,
}

pub struct KnnBank {
    points: Vec<[f32; DIM]>,
    labels: Vec<u16>,
    tree: Tree,
    /// Per class: its tree and the bank indices of its members.
    class_trees: Vec<(Tree, Vec<usize>)>,
}

impl KnnBank {
    pub fn new(points: Vec<[f32; DIM]>, labels: Vec<u16>, classes: usize) -> Self {
        let tree = Tree::new_from_slice(&points);
        let class_trees = (0..classes)
            .map(|c| {
                let members: Vec<usize> = (0..points.len())
                    .filter(|&i| labels[i] as usize == c)
                    .collect();
                let class_points: Vec<[f32; DIM]> = members.iter().map(|&i| points[i]).collect();
                (Tree::new_from_slice(&class_points), members)
            })
            .collect();
        Self {
            points,
            labels,
            tree,
            class_trees,
        }
    }

    pub fn points(&self) -> &[[f32; DIM]] {
        &self.points
    }

    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The `k` nearest bank samples of `point`: (bank index, Euclidean distance), nearest first.
    pub fn nearest(&self, point: &[f32; DIM], k: usize) -> Vec<(usize, f32)> {
        let Some(k) = NonZero::new(k.min(self.points.len())) else {
            return Vec::new();
        };
        self.tree
            .nearest_n::<SquaredEuclidean>(point, k)
            .into_iter()
            .map(|n| (n.item as usize, n.distance.max(0.0).sqrt()))
            .collect()
    }

    /// Statistics of `point` predicted as `predicted`; `exclude` is the point's own bank index
    /// when it belongs to the bank.
    pub fn query(&self, point: &[f32; DIM], predicted: u16, exclude: Option<usize>) -> KnnStats {
        let wanted = K + usize::from(exclude.is_some());
        let distances: Vec<f32> = self
            .tree
            .nearest_n::<SquaredEuclidean>(point, NonZero::new(wanted).expect("k > 0"))
            .into_iter()
            .filter(|n| Some(n.item as usize) != exclude)
            .take(K)
            .map(|n| n.distance.max(0.0).sqrt())
            .collect();
        let mean_distance = distances.iter().sum::<f32>() / distances.len().max(1) as f32;
        let kth_distance = distances.last().copied().unwrap_or(f32::INFINITY);

        let nearest_in = |class: usize| -> f32 {
            let (tree, members) = &self.class_trees[class];
            if members.is_empty() {
                return f32::INFINITY;
            }
            tree.nearest_n::<SquaredEuclidean>(point, NonZero::new(2).expect("2 > 0"))
                .into_iter()
                .find(|n| Some(members[n.item as usize]) != exclude)
                .map_or(f32::INFINITY, |n| n.distance.max(0.0).sqrt())
        };
        let predicted_class_distance = nearest_in(predicted as usize);
        let other = (0..self.class_trees.len())
            .filter(|&c| c != predicted as usize)
            .map(nearest_in)
            .fold(f32::INFINITY, f32::min);
        // Bounded, so an exact duplicate in the predicted class cannot produce infinity.
        let trust_score = other / (predicted_class_distance + 1e-6);
        KnnStats {
            mean_distance,
            kth_distance,
            predicted_class_distance,
            trust_score: if trust_score.is_finite() {
                trust_score
            } else {
                1e6
            },
        }
    }
}

/// Distances of a query to the training rows its prediction shares: the ones the
/// out-of-fold heads predicted *correctly* as that class, and the ones they predicted *wrongly*
/// as it (a class-aware distance in the spirit of Jiang et al.'s trust score, with outcomes in
/// place of labels).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClassKnnStats {
    /// Mean distance to the k nearest rows predicted as ŷ and right.
    pub correct_distance: f32,
    /// Mean distance to the k nearest rows predicted as ŷ and wrong (any wrong row when there
    /// are none predicted as ŷ).
    pub wrong_distance: f32,
}

impl ClassKnnStats {
    /// ln(d_wrong / d_correct): higher = nearer the right predictions than the wrong ones.
    pub fn score(&self) -> f32 {
        ((self.wrong_distance as f64 + 1e-6).ln() - (self.correct_distance as f64 + 1e-6).ln())
            as f32
    }
}

/// Training rows (clean and corrupted views) with what their out-of-fold head predicted and
/// whether it was right. Rows of one source image (its views) never serve as each other's
/// neighbours: `group` names the source.
pub struct OutcomeBank {
    points: Vec<[f32; DIM]>,
    predicted: Vec<u16>,
    correct: Vec<bool>,
    group: Vec<u32>,
    /// Per predicted class: (right rows, wrong rows), each a tree with its bank indices.
    trees: Vec<[(Tree, Vec<usize>); 2]>,
    /// Every wrong row, for classes no wrong row was predicted as.
    all_wrong: (Tree, Vec<usize>),
    /// The largest number of rows in one group: how many extra neighbours a query excluding its
    /// own group must ask for.
    max_group: usize,
}

impl OutcomeBank {
    pub fn new(
        points: Vec<[f32; DIM]>,
        predicted: Vec<u16>,
        correct: Vec<bool>,
        group: Vec<u32>,
        classes: usize,
    ) -> Self {
        let subset = |keep: &dyn Fn(usize) -> bool| -> (Tree, Vec<usize>) {
            let members: Vec<usize> = (0..points.len()).filter(|&i| keep(i)).collect();
            let pts: Vec<[f32; DIM]> = members.iter().map(|&i| points[i]).collect();
            (Tree::new_from_slice(&pts), members)
        };
        let trees = (0..classes)
            .map(|c| {
                [true, false]
                    .map(|outcome| subset(&|i| predicted[i] as usize == c && correct[i] == outcome))
            })
            .collect();
        let all_wrong = subset(&|i| !correct[i]);
        let mut counts = std::collections::HashMap::new();
        for g in &group {
            *counts.entry(*g).or_insert(0usize) += 1;
        }
        Self {
            max_group: counts.values().copied().max().unwrap_or(0),
            points,
            predicted,
            correct,
            group,
            trees,
            all_wrong,
        }
    }

    pub fn points(&self) -> &[[f32; DIM]] {
        &self.points
    }
    pub fn predicted(&self) -> &[u16] {
        &self.predicted
    }
    pub fn correct(&self) -> &[bool] {
        &self.correct
    }
    pub fn group(&self) -> &[u32] {
        &self.group
    }

    /// Distances of `point`, predicted as `predicted`; `exclude_group` is the query's own
    /// source when it is a training row.
    pub fn query(
        &self,
        point: &[f32; DIM],
        predicted: u16,
        exclude_group: Option<u32>,
    ) -> ClassKnnStats {
        let mean_of = |(tree, members): &(Tree, Vec<usize>)| -> Option<f32> {
            if members.is_empty() {
                return None;
            }
            let extra = if exclude_group.is_some() {
                self.max_group
            } else {
                0
            };
            let wanted = (K + extra).min(members.len());
            let d: Vec<f32> = tree
                .nearest_n::<SquaredEuclidean>(point, NonZero::new(wanted.max(1)).expect("> 0"))
                .into_iter()
                .filter(|n| Some(self.group[members[n.item as usize]]) != exclude_group)
                .take(K)
                .map(|n| n.distance.max(0.0).sqrt())
                .collect();
            (!d.is_empty()).then(|| d.iter().sum::<f32>() / d.len() as f32)
        };
        let [right, wrong] = match self.trees.get(predicted as usize) {
            Some(t) => t,
            None => return ClassKnnStats::default(),
        };
        // No right row for this class (degenerate training data): as far as the farthest
        // possible, so the score says "untrusted" rather than inventing a distance.
        let correct_distance = mean_of(right).unwrap_or(f32::MAX.sqrt());
        let wrong_distance = mean_of(wrong)
            .or_else(|| mean_of(&self.all_wrong))
            .unwrap_or(f32::MAX.sqrt());
        ClassKnnStats {
            correct_distance,
            wrong_distance,
        }
    }
}

/// A PCA vector as the fixed-size array kiddo needs (padded with zeros when shorter).
pub fn to_point(v: &[f32]) -> [f32; DIM] {
    let mut p = [0f32; DIM];
    for (a, b) in p.iter_mut().zip(v) {
        *a = *b;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(x: f32, y: f32) -> [f32; DIM] {
        to_point(&[x, y])
    }

    #[test]
    fn own_point_is_never_its_neighbour_and_trust_compares_classes() {
        // Class 0 on the x axis at 0..20, class 1 at y = 10.
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for i in 0..20 {
            points.push(point(i as f32, 0.0));
            labels.push(0);
            points.push(point(i as f32, 10.0));
            labels.push(1);
        }
        let bank = KnnBank::new(points.clone(), labels, 2);
        // Bank sample 0 = (0, 0): without itself, its nearest are (1,0), (2,0), ... (10,0).
        let own = bank.query(&points[0], 0, Some(0));
        assert!((own.kth_distance - 10.0).abs() < 1e-5, "{own:?}");
        assert!((own.mean_distance - 5.5).abs() < 1e-5);
        assert!((own.predicted_class_distance - 1.0).abs() < 1e-5);
        assert!((own.trust_score - 10.0).abs() < 1e-3);
        // The same point not excluded finds itself at distance 0.
        let with_self = bank.query(&points[0], 0, None);
        assert_eq!(with_self.predicted_class_distance, 0.0);
        // Predicting the wrong class gives a low trust score.
        let wrong = bank.query(&point(5.0, 1.0), 1, None);
        assert!(wrong.trust_score < 0.2, "{wrong:?}");
    }

    #[test]
    fn outcome_bank_separates_right_from_wrong_and_skips_the_own_group() {
        // Predicted class 0: right rows near x = 0, wrong rows near x = 100.
        let mut points = Vec::new();
        let (mut predicted, mut correct, mut group) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..30 {
            points.push(point(i as f32 * 0.1, 0.0));
            predicted.push(0);
            correct.push(true);
            group.push(i);
            points.push(point(100.0 + i as f32 * 0.1, 0.0));
            predicted.push(0);
            correct.push(false);
            group.push(100 + i);
        }
        let bank = OutcomeBank::new(points, predicted, correct, group, 2);
        let near_right = bank.query(&point(1.0, 0.0), 0, None);
        let near_wrong = bank.query(&point(99.0, 0.0), 0, None);
        assert!(near_right.score() > 3.0, "{near_right:?}");
        assert!(near_wrong.score() < -3.0, "{near_wrong:?}");
        // A query excluding group 0 never sees the row at the origin.
        let own = bank.query(&point(0.0, 0.0), 0, Some(0));
        let expected = (1..=K).map(|i| i as f32 * 0.1).sum::<f32>() / K as f32;
        assert!((own.correct_distance - expected).abs() < 1e-4, "{own:?}");
        // Class 1 has no rows predicted as it: the wrong distance falls back to all wrong rows.
        let other = bank.query(&point(99.0, 0.0), 1, None);
        assert!(other.wrong_distance < 2.0);
        assert!(other.correct_distance > 1e10);
    }

    #[test]
    fn duplicate_points_do_not_break_the_tree() {
        let points = vec![point(1.0, 1.0); 100];
        let labels = vec![0u16; 100];
        let bank = KnnBank::new(points, labels, 2);
        let s = bank.query(&point(1.0, 1.0), 0, Some(3));
        assert_eq!(s.mean_distance, 0.0);
        assert_eq!(s.trust_score, 1e6);
    }
}

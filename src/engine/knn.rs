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
    fn duplicate_points_do_not_break_the_tree() {
        let points = vec![point(1.0, 1.0); 100];
        let labels = vec![0u16; 100];
        let bank = KnnBank::new(points, labels, 2);
        let s = bank.query(&point(1.0, 1.0), 0, Some(3));
        assert_eq!(s.mean_distance, 0.0);
        assert_eq!(s.trust_score, 1e6);
    }
}

//! The list's filters: what each keeps, its name, the `f` order, and which changes (threshold,
//! annotations) make the view stale. The session stores the current one.

use serde::{Deserialize, Serialize};

use crate::dashboard::derived::RowFacts;

/// Which samples the list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Filter {
    #[default]
    All,
    /// Labelled and mispredicted.
    Wrong,
    /// P(correct) below the threshold.
    Rejected,
    /// Accepted at the threshold but wrong.
    ConfidentWrong,
    /// Rejected at the threshold but right.
    RejectedRight,
    /// One class, by its identifier: the true label, or the prediction for unlabelled samples.
    Class(String),
    /// Any tag, verdict or note.
    Annotated,
    /// Carries this tag.
    Tag(String),
    /// Confident learning puts it off the diagonal: a confident prediction disagrees with the
    /// label (`reliability::label_issues`).
    SuspectedLabelError,
    /// One cell of the confusion matrix: this label (class identifier) predicted as this class.
    Cell { label: String, pred: String },
}

impl Filter {
    /// How many kinds `f` / `F` cycle through.
    pub const KINDS: usize = 9;

    /// Position in the `f` order.
    pub fn kind(&self) -> usize {
        match self {
            Filter::All => 0,
            Filter::Wrong => 1,
            Filter::Rejected => 2,
            Filter::ConfidentWrong => 3,
            Filter::RejectedRight => 4,
            Filter::Class(_) => 5,
            Filter::Annotated => 6,
            Filter::Tag(_) => 7,
            Filter::SuspectedLabelError => 8,
            // Chosen in the confusion matrix (`c`), not by `f`: it steps on like a class filter.
            Filter::Cell { .. } => 5,
        }
    }

    /// The filter of kind `kind` in the `f` order; class and tag filters take `class` / `tag`
    /// (none: there is no such filter now, and `f` skips it).
    pub fn of_kind(
        kind: usize,
        class: impl FnOnce() -> Option<String>,
        tag: impl FnOnce() -> Option<String>,
    ) -> Option<Filter> {
        match kind {
            0 => Some(Filter::All),
            1 => Some(Filter::Wrong),
            2 => Some(Filter::Rejected),
            3 => Some(Filter::ConfidentWrong),
            4 => Some(Filter::RejectedRight),
            5 => class().map(Filter::Class),
            6 => Some(Filter::Annotated),
            7 => tag().map(Filter::Tag),
            _ => Some(Filter::SuspectedLabelError),
        }
    }

    /// Human-readable name; `class_name` turns a class identifier into its display name.
    pub fn label(&self, class_name: impl Fn(&str) -> String) -> String {
        match self {
            Filter::All => "all".into(),
            Filter::Wrong => "wrong".into(),
            Filter::Rejected => "rejected".into(),
            Filter::ConfidentWrong => "confident but wrong".into(),
            Filter::RejectedRight => "rejected but right".into(),
            Filter::Class(c) => format!("class {}", class_name(c)),
            Filter::Annotated => "annotated".into(),
            Filter::Tag(t) => format!("tag {t}"),
            Filter::SuspectedLabelError => "suspected label errors".into(),
            Filter::Cell { label, pred } => {
                format!("label {} → pred {}", class_name(label), class_name(pred))
            }
        }
    }

    /// Whether what it keeps depends on the threshold.
    pub fn uses_threshold(&self) -> bool {
        matches!(
            self,
            Filter::Rejected | Filter::ConfidentWrong | Filter::RejectedRight
        )
    }

    /// Whether what it keeps depends on annotations.
    pub fn uses_annotations(&self) -> bool {
        matches!(self, Filter::Annotated | Filter::Tag(_))
    }

    /// Whether it needs labelled samples to keep anything.
    pub fn needs_labels(&self) -> bool {
        matches!(
            self,
            Filter::Wrong
                | Filter::ConfidentWrong
                | Filter::RejectedRight
                | Filter::SuspectedLabelError
                | Filter::Cell { .. }
        )
    }

    /// The entries of `order` (record indices, sorted) that it keeps. `rows` holds each
    /// entry's facts in the same order; `tags` gives an annotated record's tags (none: the
    /// record has no annotation).
    pub fn apply<'a>(
        &self,
        order: &[u32],
        rows: &[RowFacts],
        threshold: f32,
        classes: &[String],
        tags: impl Fn(u32) -> Option<&'a [String]>,
    ) -> Vec<u32> {
        let t = threshold;
        // Threshold filters run on every slider move: they read the compact row facts in
        // sort order, and the match is outside the loops so each loop is branch-free.
        match self {
            Filter::All => order.to_vec(),
            Filter::Wrong => select(order, rows, |row| row.correct == Some(false)),
            Filter::Rejected => select(order, rows, |row| row.p_correct < t),
            Filter::ConfidentWrong => select(order, rows, |row| {
                (row.p_correct >= t) & (row.correct == Some(false))
            }),
            Filter::RejectedRight => select(order, rows, |row| {
                (row.p_correct < t) & (row.correct == Some(true))
            }),
            Filter::Class(c) => match classes.iter().position(|x| x == c) {
                Some(class) => select(order, rows, |row| row.class as usize == class),
                None => Vec::new(),
            },
            Filter::Annotated => order
                .iter()
                .copied()
                .filter(|&i| tags(i).is_some())
                .collect(),
            Filter::SuspectedLabelError => select(order, rows, |row| row.suspect),
            Filter::Cell { label, pred } => {
                let index = |c: &str| classes.iter().position(|x| x == c);
                match (index(label), index(pred)) {
                    (Some(l), Some(p)) => select(order, rows, |row| {
                        row.correct.is_some() & (row.class as usize == l) & (row.pred as usize == p)
                    }),
                    _ => Vec::new(),
                }
            }
            Filter::Tag(tag) => order
                .iter()
                .copied()
                .filter(|&i| tags(i).is_some_and(|t| t.iter().any(|x| x == tag)))
                .collect(),
        }
    }
}

/// The entries of `order` whose row (`rows`, in the same order) `keep` accepts. Branch-free
/// (every entry is written, the length advances only for kept ones): several times faster
/// than `filter` when kept and dropped rows alternate unpredictably, as under a threshold.
fn select(order: &[u32], rows: &[RowFacts], keep: impl Fn(RowFacts) -> bool) -> Vec<u32> {
    let mut out = vec![0; order.len()];
    let mut kept = 0;
    for (&i, &row) in order.iter().zip(rows) {
        out[kept] = i;
        kept += usize::from(keep(row));
    }
    out.truncate(kept);
    out
}

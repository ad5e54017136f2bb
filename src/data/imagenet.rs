//! The 1000 ImageNet-1k classes in the standard index order (wnid and a readable name).
//!
//! The table comes from timm's `imagenet_synsets.txt` and the first lemma of
//! `imagenet_synset_to_lemma.txt` (Apache-2.0).

use std::collections::HashMap;
use std::sync::OnceLock;

const CLASSES_TSV: &str = include_str!("imagenet_classes.tsv");

pub struct ImagenetClass {
    pub wnid: &'static str,
    pub name: &'static str,
}

/// All 1000 classes, index = ImageNet-1k class index.
pub fn classes() -> &'static [ImagenetClass] {
    static CLASSES: OnceLock<Vec<ImagenetClass>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        CLASSES_TSV
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(wnid, name)| ImagenetClass { wnid, name })
            .collect()
    })
}

/// ImageNet-1k index of a wnid such as `n01440764`.
pub fn index_of(wnid: &str) -> Option<usize> {
    static INDEX: OnceLock<HashMap<&'static str, usize>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            classes()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.wnid, i))
                .collect()
        })
        .get(wnid)
        .copied()
}

/// A readable name for a wnid, if it is an ImageNet-1k class.
pub fn name_of(wnid: &str) -> Option<&'static str> {
    index_of(wnid).map(|i| classes()[i].name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_imagenette_classes_at_their_published_indices() {
        assert_eq!(classes().len(), 1000);
        assert_eq!(index_of("n01440764"), Some(0));
        assert_eq!(index_of("n02102040"), Some(217));
        assert_eq!(index_of("n03888257"), Some(701));
        assert_eq!(name_of("n03445777"), Some("golf ball"));
        assert_eq!(index_of("n99999999"), None);
    }
}

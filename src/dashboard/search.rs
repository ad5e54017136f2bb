//! The list's search: which records' paths contain the query, ignoring ASCII case.
//!
//! A keystroke searches every path again, a million of them in a big table, so the paths are
//! lowercased once per data change (when the first search after it needs them) into one buffer,
//! which memchr's SIMD substring search scans in parallel slices. Scanning a record's path and
//! its neighbours in one call, instead of one call per record, is what makes it fast.

use memchr::memmem::Finder;
use rayon::prelude::*;

/// Records per slice searched by one rayon task.
const SLICE: usize = 1 << 15;

/// Every record's path, ASCII-lowercased, end to end.
#[derive(Debug, Clone, Default)]
pub struct SearchIndex {
    text: Vec<u8>,
    /// Where record `i`'s path starts in `text` (`starts[i]..starts[i + 1]`), and the end.
    starts: Vec<usize>,
}

impl SearchIndex {
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> SearchIndex {
        let mut text = Vec::new();
        let mut starts = vec![0];
        for id in ids {
            text.extend_from_slice(id.as_bytes());
            starts.push(text.len());
        }
        // One pass over the whole buffer (vectorised), not a byte at a time per path.
        text.make_ascii_lowercase();
        SearchIndex { text, starts }
    }

    /// Records indexed.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For each record, whether its path contains `query`, ignoring ASCII case: the same
    /// answer as [`contains_ignore_case`] on every path.
    pub fn matches(&self, query: &str) -> Vec<bool> {
        let needle = query.to_ascii_lowercase();
        let finder = Finder::new(needle.as_bytes());
        let mut hits = vec![needle.is_empty(); self.len()];
        if needle.is_empty() {
            return hits;
        }
        hits.par_chunks_mut(SLICE)
            .enumerate()
            .for_each(|(slice, hits)| {
                let first = slice * SLICE;
                self.search_slice(&finder, first, hits);
            });
        hits
    }

    /// Marks in `hits` the records `first..first + hits.len()` whose path contains the needle.
    fn search_slice(&self, finder: &Finder, first: usize, hits: &mut [bool]) {
        let len = finder.needle().len();
        let end = self.starts[first + hits.len()];
        let mut record = first;
        let mut at = self.starts[first];
        while let Some(found) = finder.find(&self.text[at..end]) {
            let pos = at + found;
            while self.starts[record + 1] <= pos {
                record += 1;
            }
            let path_end = self.starts[record + 1];
            if pos + len <= path_end {
                // Inside this path: it matches; go on from the next path.
                hits[record - first] = true;
                at = path_end;
            } else {
                // Across the end of this path into the next: not a match, try one byte on.
                at = pos + 1;
            }
            if at >= end {
                break;
            }
        }
    }
}

/// ASCII-case-insensitive substring test, without allocating: the reference [`SearchIndex`]
/// answers like.
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ignore_case(
            "n01440764/ILSVRC_val.JPEG",
            "val.jpeg"
        ));
        assert!(!contains_ignore_case("abc", "abcd"));
        assert!(contains_ignore_case("abc", ""));
    }

    /// A small deterministic generator (no dependency on the test's order or a seed crate).
    fn next(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn the_index_answers_like_the_naive_search() {
        // Mixed case, non-ASCII letters whose case ASCII folding leaves alone (É/é, Σ/σ),
        // multi-byte characters, empty paths and paths shorter than the query.
        let alphabet = [
            "a", "A", "b", "B", "é", "É", "σ", "Σ", "/", "_", ".", "0", "日", "ß", "SS", "k", "K",
        ];
        let mut state = 7;
        let ids: Vec<String> = (0..3 * SLICE + 17)
            .map(|_| {
                let len = next(&mut state) % 9;
                (0..len)
                    .map(|_| alphabet[next(&mut state) as usize % alphabet.len()])
                    .collect()
            })
            .collect();
        let index = SearchIndex::new(ids.iter().map(String::as_str));
        assert_eq!(index.len(), ids.len());
        let mut queries: Vec<String> = [
            "", "a", "A", "ab", "Ab", "é", "É", "σΣ", "ss", "SS", "ß", "日a", "a/B", "k.", "zzz",
        ]
        .iter()
        .map(|q| q.to_string())
        .collect();
        // Queries cut from the paths themselves, with their case flipped.
        for id in ids.iter().step_by(997).filter(|id| id.len() > 2) {
            let flipped: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            queries.push(flipped);
        }
        for query in &queries {
            let hits = index.matches(query);
            let mut found = 0;
            for (id, &hit) in ids.iter().zip(&hits) {
                assert_eq!(hit, contains_ignore_case(id, query), "{id:?} / {query:?}");
                found += usize::from(hit);
            }
            if query.is_empty() {
                assert_eq!(found, ids.len());
            }
        }
        // The queries were not all trivial: some match some paths and miss others.
        let partial = queries
            .iter()
            .filter(|q| {
                let hits = index.matches(q);
                hits.iter().any(|&h| h) && !hits.iter().all(|&h| h)
            })
            .count();
        assert!(partial >= 10, "{partial}");
    }

    #[test]
    fn a_match_never_spans_two_paths() {
        let index = SearchIndex::new(["xa", "bx", "ab", ""]);
        assert_eq!(index.matches("ab"), [false, false, true, false]);
        assert_eq!(index.matches("AB"), [false, false, true, false]);
        assert_eq!(index.matches("xab"), [false; 4]);
        assert_eq!(index.matches("x"), [true, true, false, false]);
        let empty = SearchIndex::new([]);
        assert!(empty.is_empty());
        assert!(empty.matches("a").is_empty());
    }
}

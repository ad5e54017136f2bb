//! Building the list the user sees from the records: sort order, filter, search, and keeping
//! the cursor on the same sample through all of it. Called by `update` after a change.

use crate::reliability::label_issues::issue_score;
use crate::reliability::records::SampleRecord;
use crate::support::order::score_key;

use super::app::{App, SaveUrgency};
use super::derived::Derived;
use super::search::SearchIndex;
use super::session::{Sort, SortKey};

impl App {
    /// After records changed: metrics, threshold table, order and view.
    pub(crate) fn refresh_data(&mut self) {
        self.derived = Derived::compute(&self.data.records);
        // Rebuilt by the next search that needs it: the first frame does not wait for it.
        self.search_index = None;
        self.stats = self.derived.table.at(self.threshold);
        self.refresh_order();
    }

    /// After the sort changed.
    pub(crate) fn refresh_order(&mut self) {
        self.order = sort_order(&self.data.records, self.sort);
        let rows = &self.derived.rows;
        self.order_rows = self.order.iter().map(|&i| rows[i as usize]).collect();
        self.refresh_view();
    }

    /// After the filter, the search or (for threshold-dependent filters) the threshold changed.
    /// The cursor stays on the same sample when it is still shown.
    pub(crate) fn refresh_view(&mut self) {
        let records = &self.data.records;
        let mut view = self.filter.apply(
            &self.order,
            &self.order_rows,
            self.threshold,
            &self.data.classes,
            |i| {
                self.session
                    .annotations
                    .get(records[i as usize].id.as_str())
                    .map(|a| a.tags.as_slice())
            },
        );
        if !self.search.is_empty() {
            let index = self
                .search_index
                .get_or_insert_with(|| SearchIndex::new(records.iter().map(|r| r.id.as_str())));
            let hits = index.matches(&self.search);
            view.retain(|&i| hits[i as usize]);
        }
        self.view = view;
        self.place_cursor();
    }

    /// Puts the cursor on the pending session cursor when it has arrived, else on the anchor
    /// when shown, else at the same position (clamped).
    fn place_cursor(&mut self) {
        let records = &self.data.records;
        let pending = self
            .pending_cursor
            .as_deref()
            .and_then(|id| self.view.iter().position(|&i| records[i as usize].id == id));
        if let Some(pos) = pending {
            self.selected = pos;
            self.pending_cursor = None;
            self.anchor = self.view.get(pos).copied();
        } else if let Some(pos) = self
            .anchor
            .and_then(|k| self.view.iter().position(|&i| i == k))
        {
            self.selected = pos;
        } else {
            self.selected = self.selected.min(self.view.len().saturating_sub(1));
        }
        self.scroll_to_cursor();
    }

    /// Keeps the cursor inside the list's window and the window filled.
    pub(crate) fn scroll_to_cursor(&mut self) {
        let rows = self.list_rows();
        if self.selected < self.list_offset {
            self.list_offset = self.selected;
        } else if self.selected >= self.list_offset + rows {
            self.list_offset = self.selected + 1 - rows;
        }
        self.list_offset = self.list_offset.min(self.view.len().saturating_sub(rows));
    }

    /// The user moved the cursor: the session's cursor no longer applies.
    pub(crate) fn cursor_moved(&mut self) {
        self.pending_cursor = None;
        self.anchor = self.view.get(self.selected).copied();
        self.scroll_to_cursor();
        self.mark_unsaved(SaveUrgency::Debounced);
    }
}

/// All record indices sorted by `sort` (ties by dataset order, so the order is deterministic).
fn sort_order(records: &[SampleRecord], sort: Sort) -> Vec<u32> {
    use rayon::slice::ParallelSliceMut;
    let key = |r: &SampleRecord| -> f32 {
        match sort.key {
            SortKey::Path => 0.0,
            SortKey::PCorrect => r.p_correct,
            SortKey::Msp => r.diagnostics.msp,
            SortKey::GradSensitivity => r.diagnostics.grad_sensitivity,
            SortKey::KnnDistance => r.diagnostics.knn_distance,
            // Unlabelled rows have no score: NaN, ranked last.
            SortKey::LabelIssue => issue_score(&r.probs, r.label).unwrap_or(f32::NAN),
        }
    };
    if sort.key == SortKey::Path {
        let mut order: Vec<u32> = (0..records.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| {
            let ord = records[a as usize].id.cmp(&records[b as usize].id);
            let ord = if sort.descending { ord.reverse() } else { ord };
            ord.then(a.cmp(&b))
        });
        return order;
    }
    // Sorting (key, index) pairs is several times faster than comparing through the records,
    // and a stable radix sort by key keeps ties in index order, like sorting the pairs would.
    let mut keyed: Vec<(u32, u32)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let k = score_key(key(r));
            (if sort.descending { !k } else { k }, i as u32)
        })
        .collect();
    radsort::sort_by_key(&mut keyed, |&(key, _)| key);
    keyed.into_iter().map(|(_, i)| i).collect()
}

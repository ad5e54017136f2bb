//! The dashboard's state and the queries the widgets make of it.
//!
//! Everything that costs O(N) or more (threshold table, metrics, curves, sort order, filtered
//! view) is computed when the data, the sort or the filter change, never per frame; a slider
//! move is one binary search (plus a re-filter when the filter depends on the threshold).

use ratatui::layout::Rect;

use crate::dashboard::session::{Annotation, Filter, Session, Sort};
use crate::metrics::{ThresholdStats, ThresholdTable};
use crate::reliability::records::{RecordSet, SampleRecord};

use super::derived::{Derived, RowFacts};
use super::layout::{Screen, SidePanel};
use super::preview::{PreviewCache, PreviewKey, NEIGHBOURS};
use super::search::SearchIndex;
use super::theme::Theme;

/// What keys currently do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    /// Typing a search query; `previous` comes back on Esc.
    Search {
        previous: String,
    },
    /// Editing the tags of sample `id` (comma-separated).
    Tags {
        id: String,
        input: String,
    },
    /// Editing the note of sample `id`.
    Note {
        id: String,
        input: String,
    },
    /// The confusion matrix over the list (`c`); `App::confusion_cursor` is its cell cursor.
    Confusion,
}

impl Mode {
    /// A popup covers part of the screen (images are hidden under it).
    pub fn has_popup(&self) -> bool {
        matches!(
            self,
            Mode::Help | Mode::Tags { .. } | Mode::Note { .. } | Mode::Confusion
        )
    }
}

/// Where the records come from, and how far along that is.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadState {
    /// Every record is here.
    Ready,
    /// The background worker is scoring.
    Scoring(Progress),
    /// The worker stopped with this error (the records so far stay usable).
    Failed(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Samples the run will score, once it has said.
    pub expected: Option<usize>,
    /// The current stage and its count, e.g. ("features", 128, 3925).
    pub stage: Option<(String, usize, usize)>,
}

/// How soon the session should be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SaveUrgency {
    /// Cursor, threshold, filter or sort moved: write once things settle.
    Debounced,
    /// An annotation changed: write now.
    Now,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// Rounds a threshold to the slider's resolution and into [0, 1].
pub fn clean_threshold(t: f32) -> f32 {
    if t.is_nan() {
        return 0.5;
    }
    ((t.clamp(0.0, 1.0) * 1000.0).round() / 1000.0).clamp(0.0, 1.0)
}

/// The dashboard state. Mutated only by `update`; read by `draw`.
pub struct App {
    pub title: String,
    /// The scoring device and why it was chosen (title bar); set by the caller.
    pub device: Option<super::ScoringDevice>,
    pub data: RecordSet,
    pub load: LoadState,
    pub skipped: usize,
    pub derived: Derived,
    /// Live annotations; the session's other fields are filled in by [`App::session_snapshot`].
    pub session: Session,
    pub threshold: f32,
    /// Whether `threshold` came from the session, the data or the user (not the placeholder
    /// used while waiting for the scoring run to start).
    pub threshold_known: bool,
    pub stats: ThresholdStats,
    pub filter: Filter,
    pub sort: Sort,
    /// Path substring the list is narrowed to (case-insensitive); empty = no search.
    pub search: String,
    /// All record indices in sort order.
    pub(super) order: Vec<u32>,
    /// `derived.rows` in the same order, so threshold filters read memory sequentially.
    pub(super) order_rows: Vec<RowFacts>,
    /// The lowercased paths the search scans; `None` until a search after a data change.
    pub(super) search_index: Option<SearchIndex>,
    /// Record indices shown: `order` narrowed by filter and search.
    pub view: Vec<u32>,
    /// Position of the cursor in `view`.
    pub selected: usize,
    /// First `view` position the list shows.
    pub list_offset: usize,
    /// A sample to put the cursor on once it arrives (the session's cursor while scoring).
    pub(super) pending_cursor: Option<String>,
    /// The record the user last put the cursor on. A filter that hides it moves the cursor
    /// elsewhere, but the cursor comes back to it when a later view shows it again.
    pub(super) anchor: Option<u32>,
    pub mode: Mode,
    pub side_panel: SidePanel,
    /// The terminal size.
    pub area: Rect,
    pub previews: PreviewCache,
    pub theme: Theme,
    pub notice: Option<Notice>,
    pub unsaved: Option<SaveUrgency>,
    /// Counts session changes, so the autosave can tell when changes have stopped.
    pub revision: u64,
    pub quit: bool,
    pub export_requested: bool,
    /// The saliency overlay and the neighbours (`inspect.rs`).
    pub inspect: super::inspect::Inspect,
    pub confusion_cursor: ConfusionCursor,
}

/// The confusion matrix's cursor: a cell of the grid, or a line of the most-confused pairs
/// (when there are too many classes for a grid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfusionCursor {
    pub label: u16,
    pub pred: u16,
    pub pair: usize,
}

impl App {
    /// A dashboard over records that are all here.
    pub fn new(data: RecordSet, session: Session, theme: Theme, title: impl Into<String>) -> App {
        let threshold = session.threshold.unwrap_or(data.threshold);
        let mut app = Self::empty(session, theme, title.into(), LoadState::Ready);
        app.threshold = clean_threshold(threshold);
        app.threshold_known = true;
        app.data = data;
        app.refresh_data();
        app
    }

    /// A dashboard waiting for a scoring worker's records.
    pub fn scoring(session: Session, theme: Theme, title: impl Into<String>) -> App {
        let mut app = Self::empty(
            session,
            theme,
            title.into(),
            LoadState::Scoring(Progress::default()),
        );
        if let Some(t) = app.session.threshold {
            app.threshold = clean_threshold(t);
            app.threshold_known = true;
        }
        app.refresh_data();
        app
    }

    fn empty(session: Session, theme: Theme, title: String, load: LoadState) -> App {
        App {
            title,
            device: None,
            data: RecordSet::default(),
            load,
            skipped: 0,
            derived: Derived::default(),
            threshold: 0.5,
            threshold_known: false,
            stats: ThresholdTable::default().at(0.5),
            filter: session.filter.clone(),
            sort: session.sort,
            search: String::new(),
            order: Vec::new(),
            order_rows: Vec::new(),
            search_index: None,
            view: Vec::new(),
            selected: 0,
            list_offset: 0,
            pending_cursor: session.cursor.clone(),
            anchor: None,
            session,
            mode: Mode::Normal,
            side_panel: SidePanel::default(),
            area: Rect::default(),
            previews: PreviewCache::default(),
            theme,
            notice: None,
            unsaved: None,
            revision: 0,
            quit: false,
            export_requested: false,
            inspect: Default::default(),
            confusion_cursor: ConfusionCursor::default(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Queries
    // -----------------------------------------------------------------------------------------

    pub fn screen(&self) -> Option<Screen> {
        Screen::compute(self.area, self.side_panel)
    }

    /// Sample rows the list shows at the current size (at least 1).
    pub fn list_rows(&self) -> usize {
        self.screen().map_or(1, |s| s.list_rows().max(1))
    }

    pub fn record(&self, view_position: usize) -> Option<&SampleRecord> {
        let index = *self.view.get(view_position)?;
        self.data.records.get(index as usize)
    }

    pub fn selected_record(&self) -> Option<&SampleRecord> {
        self.record(self.selected)
    }

    pub fn accepted(&self, record: &SampleRecord) -> bool {
        record.p_correct >= self.threshold
    }

    pub fn annotation(&self, id: &str) -> Option<&Annotation> {
        self.session.annotation(id)
    }

    /// Readable name of a class index (the readable name, else the identifier, else `#i`).
    pub fn class_name(&self, class: u16) -> String {
        let i = class as usize;
        self.data
            .class_names
            .get(i)
            .filter(|n| !n.is_empty())
            .or_else(|| self.data.classes.get(i))
            .cloned()
            .unwrap_or_else(|| format!("#{class}"))
    }

    pub fn is_scoring(&self) -> bool {
        matches!(self.load, LoadState::Scoring(_))
    }

    /// The session as it should be saved now.
    pub fn session_snapshot(&self) -> Session {
        Session {
            threshold: self.threshold_known.then_some(self.threshold),
            filter: self.filter.clone(),
            sort: self.sort,
            cursor: self
                .pending_cursor
                .clone()
                .or_else(|| self.selected_record().map(|r| r.id.clone())),
            ..self.session.clone()
        }
    }

    /// The preview the selected sample needs at the current size, if the panel is on screen.
    pub fn preview_key(&self) -> Option<PreviewKey> {
        self.preview_key_at(self.selected)
    }

    fn preview_key_at(&self, view_position: usize) -> Option<PreviewKey> {
        let area = self.screen()?.preview_image();
        if area.width == 0 || area.height == 0 {
            return None;
        }
        Some(PreviewKey {
            id: self.record(view_position)?.id.clone(),
            width: area.width,
            height: area.height,
        })
    }

    /// Previews to have ready, most wanted first: the selection, then its neighbours.
    pub fn wanted_previews(&self) -> Vec<PreviewKey> {
        let mut positions = vec![self.selected];
        for d in 1..=NEIGHBOURS {
            positions.push(self.selected + d);
            if let Some(p) = self.selected.checked_sub(d) {
                positions.push(p);
            }
        }
        positions
            .into_iter()
            .filter_map(|p| self.preview_key_at(p))
            .collect()
    }

    /// Human-readable name of the current filter.
    pub fn filter_label(&self) -> String {
        self.filter.label(|c| {
            self.data
                .classes
                .iter()
                .position(|x| x == c)
                .map(|i| self.class_name(i as u16))
                .unwrap_or_else(|| c.to_string())
        })
    }

    pub fn sort_label(&self) -> String {
        let arrow = if self.sort.descending { "↓" } else { "↑" };
        format!("{} {arrow}", self.sort.key.label())
    }

    pub(crate) fn mark_unsaved(&mut self, urgency: SaveUrgency) {
        self.revision += 1;
        self.unsaved = Some(self.unsaved.map_or(urgency, |u| u.max(urgency)));
    }

    pub(crate) fn notify(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: false,
        });
    }

    pub(crate) fn warn(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_rounded_and_clamped() {
        assert_eq!(clean_threshold(0.1 + 0.2), 0.3);
        assert_eq!(clean_threshold(1.7), 1.0);
        assert_eq!(clean_threshold(-0.2), 0.0);
        assert_eq!(clean_threshold(f32::NAN), 0.5);
    }
}

//! The dashboard's state and the queries the widgets make of it.
//!
//! Everything that costs O(N) or more (threshold table, metrics, curves, sort order, filtered
//! view) is computed when the data, the sort or the filter change, never per frame; a slider
//! move is one binary search (plus a re-filter when the filter depends on the threshold).

use ratatui::layout::Rect;

use crate::dashboard::session::{Annotation, Filter, Session, Sort, SortKey};
use crate::metrics::{
    aurc, aurc_oracle, auroc, risk_coverage_curve, ThresholdStats, ThresholdTable,
};
use crate::reliability::records::{RecordSet, SampleRecord};
use crate::support::order::score_key;

use super::layout::{Screen, SidePanel};
use super::preview::{PreviewCache, PreviewKey, NEIGHBOURS};
use super::theme::Theme;

/// Bins of the P(correct) histogram over [0, 1].
pub const HISTOGRAM_BINS: usize = 10;

/// Most points a risk–coverage curve keeps for drawing.
const CURVE_POINTS: usize = 400;

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
}

impl Mode {
    /// A popup covers part of the screen (images are hidden under it).
    pub fn has_popup(&self) -> bool {
        matches!(self, Mode::Help | Mode::Tags { .. } | Mode::Note { .. })
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

/// Correctness metrics of P(correct) and of the MSP baseline on the labelled rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub labelled: usize,
    pub accuracy: f64,
    pub auroc_p_correct: Option<f64>,
    pub auroc_msp: Option<f64>,
    pub aurc_p_correct: Option<f64>,
    pub aurc_msp: Option<f64>,
    /// AURC of the oracle ranking of the same rows.
    pub aurc_optimal: f64,
}

/// What the filters need of a record, 8 bytes a row, so re-filtering a million rows on a
/// slider move stays within a few milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFacts {
    pub p_correct: f32,
    pub correct: Option<bool>,
    /// The label, or the prediction when unlabelled (what the class filter matches).
    pub class: u16,
}

/// Everything computed once per data change.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// One entry per record, in record order.
    pub rows: Vec<RowFacts>,
    pub table: ThresholdTable,
    /// Rows with a label.
    pub labelled: usize,
    /// `None` without labelled rows.
    pub summary: Option<Summary>,
    /// Risk–coverage of P(correct) and of MSP on the labelled rows (thinned for drawing).
    pub risk_p_correct: Vec<(f64, f64)>,
    pub risk_msp: Vec<(f64, f64)>,
    /// P(correct) of labelled rows in [`HISTOGRAM_BINS`] bins, for correct and wrong rows.
    pub histogram_correct: [usize; HISTOGRAM_BINS],
    pub histogram_wrong: [usize; HISTOGRAM_BINS],
}

impl Derived {
    pub fn compute(records: &[SampleRecord]) -> Derived {
        let p_correct: Vec<f32> = records.iter().map(|r| r.p_correct).collect();
        let correct: Vec<Option<bool>> = records.iter().map(SampleRecord::correct).collect();
        let table = ThresholdTable::new(&p_correct, &correct);
        let rows = records
            .iter()
            .map(|r| RowFacts {
                p_correct: r.p_correct,
                correct: r.correct(),
                class: r.label.unwrap_or(r.pred),
            })
            .collect();

        let labelled: Vec<&SampleRecord> = records.iter().filter(|r| r.label.is_some()).collect();
        let pc: Vec<f32> = labelled.iter().map(|r| r.p_correct).collect();
        let msp: Vec<f32> = labelled.iter().map(|r| r.diagnostics.msp).collect();
        let ok: Vec<bool> = labelled.iter().map(|r| r.label == Some(r.pred)).collect();

        let mut histogram_correct = [0; HISTOGRAM_BINS];
        let mut histogram_wrong = [0; HISTOGRAM_BINS];
        for (&p, &right) in pc.iter().zip(&ok) {
            let bin = histogram_bin(p);
            if right {
                histogram_correct[bin] += 1;
            } else {
                histogram_wrong[bin] += 1;
            }
        }

        let summary = (!labelled.is_empty()).then(|| {
            let ((auroc_p_correct, aurc_p_correct), (auroc_msp, aurc_msp)) = rayon::join(
                || (auroc(&pc, &ok), aurc(&pc, &ok)),
                || (auroc(&msp, &ok), aurc(&msp, &ok)),
            );
            let accuracy = ok.iter().filter(|&&c| c).count() as f64 / ok.len() as f64;
            Summary {
                labelled: labelled.len(),
                accuracy,
                auroc_p_correct,
                auroc_msp,
                aurc_p_correct,
                aurc_msp,
                aurc_optimal: aurc_oracle(&ok).unwrap_or(0.0),
            }
        });
        let (risk_p_correct, risk_msp) = rayon::join(
            || thin(risk_coverage_curve(&pc, &ok)),
            || thin(risk_coverage_curve(&msp, &ok)),
        );
        Derived {
            rows,
            table,
            labelled: labelled.len(),
            summary,
            risk_p_correct,
            risk_msp,
            histogram_correct,
            histogram_wrong,
        }
    }
}

/// Histogram bin of a probability (clamped; NaN in the first bin).
pub fn histogram_bin(p: f32) -> usize {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    ((p * HISTOGRAM_BINS as f32) as usize).min(HISTOGRAM_BINS - 1)
}

/// At most [`CURVE_POINTS`] evenly spaced points of a curve, the last one kept.
fn thin(curve: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if curve.len() <= CURVE_POINTS {
        return curve;
    }
    let last = curve.len() - 1;
    (0..CURVE_POINTS)
        .map(|i| curve[i * last / (CURVE_POINTS - 1)])
        .collect()
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
    order: Vec<u32>,
    /// `derived.rows` in the same order, so threshold filters read memory sequentially.
    order_rows: Vec<RowFacts>,
    /// Record indices shown: `order` narrowed by filter and search.
    pub view: Vec<u32>,
    /// Position of the cursor in `view`.
    pub selected: usize,
    /// First `view` position the list shows.
    pub list_offset: usize,
    /// A sample to put the cursor on once it arrives (the session's cursor while scoring).
    pending_cursor: Option<String>,
    /// The record the user last put the cursor on. A filter that hides it moves the cursor
    /// elsewhere, but the cursor comes back to it when a later view shows it again.
    anchor: Option<u32>,
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

    // -----------------------------------------------------------------------------------------
    // Recomputation (called by `update`)
    // -----------------------------------------------------------------------------------------

    /// After records changed: metrics, threshold table, order and view.
    pub(crate) fn refresh_data(&mut self) {
        self.derived = Derived::compute(&self.data.records);
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
            },
        );
        if !self.search.is_empty() {
            view.retain(|&i| contains_ignore_case(&records[i as usize].id, &self.search));
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
    // Sorting (key, index) pairs is several times faster than comparing through the records.
    let mut keyed: Vec<(u32, u32)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let k = score_key(key(r));
            (if sort.descending { !k } else { k }, i as u32)
        })
        .collect();
    keyed.par_sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// ASCII-case-insensitive substring test, without allocating.
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

    #[test]
    fn thresholds_are_rounded_and_clamped() {
        assert_eq!(clean_threshold(0.1 + 0.2), 0.3);
        assert_eq!(clean_threshold(1.7), 1.0);
        assert_eq!(clean_threshold(-0.2), 0.0);
        assert_eq!(clean_threshold(f32::NAN), 0.5);
    }

    #[test]
    fn curves_are_thinned_keeping_the_ends() {
        let curve: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 0.0)).collect();
        let t = thin(curve);
        assert_eq!(t.len(), CURVE_POINTS);
        assert_eq!(t[0].0, 0.0);
        assert_eq!(t[CURVE_POINTS - 1].0, 9999.0);
    }
}

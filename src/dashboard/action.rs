//! Everything that can happen to the dashboard, as data: keys and mouse events are mapped to
//! these (see `keys`), worker messages arrive as these, and `update` applies them.

use crate::reliability::records::ScoringEvent;

use super::inspect::InspectResult;
use super::preview::PreviewResult;

/// Small and big threshold steps (`h/l`, `H/L`).
pub const THRESHOLD_STEP: f32 = 0.01;
pub const THRESHOLD_BIG_STEP: f32 = 0.1;

#[derive(Debug)]
pub enum Action {
    /// The terminal has this size (sent at start and on every resize).
    Resize {
        width: u16,
        height: u16,
    },
    /// Move the cursor by this many rows (negative = up).
    MoveBy(isize),
    /// Move the cursor by this many pages.
    PageBy(isize),
    First,
    Last,
    /// Select this row of the list (a position in the filtered, sorted view).
    Select(usize),
    /// Move the threshold by this amount.
    ThresholdBy(f32),
    SetThreshold(f32),
    NextFilter,
    PrevFilter,
    /// Next / previous class or tag of a class or tag filter.
    NextFilterValue,
    PrevFilterValue,
    NextSort,
    ReverseSort,
    StartSearch,
    /// Drop the search query (Esc in the list).
    ClearSearch,
    /// Open the tag editor for the selected sample.
    EditTags,
    /// Open the note editor for the selected sample.
    EditNote,
    CycleVerdict,
    /// Text typed into the open input (search, tags or note).
    Input(char),
    InputBackspace,
    InputSubmit,
    InputCancel,
    ToggleHelp,
    /// Open or close the confusion matrix.
    ToggleConfusion,
    /// Move the confusion matrix's cursor by rows (labels) and columns (predictions).
    ConfusionMove {
        rows: isize,
        cols: isize,
    },
    /// Filter the list to the confusion matrix's cell under the cursor.
    ConfusionSelect,
    /// Next side panel of the compact layout.
    NextPanel,
    Export,
    Quit,
    /// A message from the scoring worker.
    Scoring(ScoringEvent),
    /// An encoded (or failed) preview from the preview worker.
    PreviewReady(PreviewResult),
    /// Preview overlay: off → saliency of the predicted class → of the labelled class.
    CycleOverlay,
    /// Show the nearest training images (or go back to the preview and details).
    ToggleNeighbours,
    /// An overlay, a neighbour list or a status from the inspection worker.
    InspectReady(InspectResult),
    /// Show a message in the status bar.
    Notify {
        text: String,
        is_error: bool,
    },
}

//! The terminal dashboard: threshold tuning and failure inspection over a scored data set.
//!
//! Shape (the Elm-like one of ARCHITECTURE.md): [`App`] holds the state, [`Action`] is everything that can happen,
//! [`update`] is the pure reducer, [`draw`] renders `&App` (one file per widget under
//! `widgets/`), `event_loop` selects over input, worker and preview messages, `terminal`
//! sets the terminal up and always restores it. Slow work (scoring, image decoding and
//! encoding) runs on worker threads; the UI thread only applies their results.

pub mod action;
pub mod app;
pub mod derived;
pub mod draw;
mod event_loop;
pub mod filter;
pub mod inspect;
pub mod keys;
pub mod layout;
pub mod preview;
pub mod search;
pub mod session;
pub mod terminal;
pub mod theme;
pub mod update;
pub mod view;
pub mod widgets;

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::reliability::records::{RecordSet, ScoringEvent};

pub use action::Action;
pub use app::App;
pub use draw::draw;
pub use theme::Theme;
pub use update::update;

/// Where the dashboard's records come from.
pub enum RecordSource {
    /// Already computed (a cache hit): opens at once.
    Ready(RecordSet),
    /// Computed by a background worker: the closure runs on the worker thread (the one thread
    /// that owns device and models) and sends events. It should return when a send fails
    /// (the dashboard has closed).
    Compute(Box<dyn FnOnce(Sender<ScoringEvent>) + Send>),
}

/// How previews are drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageProtocol {
    /// Ask the terminal (works over SSH); half-blocks when it does not answer.
    #[default]
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    /// Unicode half-blocks: works in every terminal, no query.
    Halfblocks,
}

pub struct TuiConfig {
    /// Images are read from `dataset_root.join(record.id)`.
    pub dataset_root: PathBuf,
    /// `sessions/<name>.json`: read at start, autosaved, written on quit.
    pub session_path: PathBuf,
    /// A theme name: built in, or `<name>.toml` in `$REASON_THEMES` or `./themes`.
    pub theme: String,
    pub image_protocol: ImageProtocol,
    /// How long `auto` waits for the terminal to answer its query (a slow SSH link needs more
    /// than a local terminal) before falling back to half-blocks.
    pub image_query_timeout: Duration,
    /// Shown in the title bar (e.g. the data set).
    pub title: String,
    /// The device the scoring runs on and why, shown in the title bar (none: no device used).
    pub device: Option<ScoringDevice>,
    /// The models the saliency overlay and the neighbours panel load on first use (none: the
    /// panels say they are unavailable).
    pub inspect: Option<inspect::InspectSource>,
}

/// Where the scoring runs (`cpu`, `cuda:0`) and why it was chosen, for the title bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoringDevice {
    pub label: String,
    pub reason: String,
}

/// Opens the dashboard and returns when the user quits. Errors before the terminal is taken
/// over (unknown theme, unreadable or newer session file) leave the terminal untouched; the
/// session is saved on the way out.
pub fn run(config: TuiConfig, source: RecordSource) -> anyhow::Result<()> {
    event_loop::run(config, source)
}

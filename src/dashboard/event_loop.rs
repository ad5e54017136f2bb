//! The event loop: one channel carries terminal input, scoring-worker messages and encoded
//! previews; a timeout gives the tick (autosave debounce). Every pending message is applied
//! before the next frame is drawn, and consecutive record batches are merged, so a fast
//! worker costs one recomputation per frame, not one per batch.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event};
use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use ratatui_image::picker::cap_parser::QueryStdioOptions;
use ratatui_image::picker::{Picker, ProtocolType};

use super::app::{App, SaveUrgency};
use super::inspect::{self, InspectRequester, InspectResult};
use super::preview::{self, PreviewRequester, PreviewResult};
use super::terminal::TerminalGuard;
use super::{draw, keys, update, Action, ImageProtocol, RecordSource, Theme, TuiConfig};
use crate::dashboard::session::{export_annotations, Session};
use crate::reliability::records::ScoringEvent;

/// Longest wait without a message (the autosave check runs at least this often).
const TICK: Duration = Duration::from_millis(250);
/// Quiet time after a cursor, threshold, filter or sort change before the session is saved.
const SAVE_DEBOUNCE: Duration = Duration::from_millis(750);
/// Most messages applied between two frames, so a fast worker cannot starve the screen.
const MAX_BATCH: usize = 4096;
/// How often the input thread checks whether to stop.
const INPUT_POLL: Duration = Duration::from_millis(100);

enum Message {
    Input(Event),
    InputFailed(io::Error),
    Scoring(ScoringEvent),
    Preview(PreviewResult),
    Inspect(InspectResult),
}

pub fn run(config: TuiConfig, source: RecordSource) -> anyhow::Result<()> {
    // Everything that can fail on the user's input fails here, before the terminal changes.
    let theme = Theme::load(&config.theme)?;
    let session = Session::load(&config.session_path)?.unwrap_or_default();
    let (mut app, compute) = match source {
        RecordSource::Ready(records) => (App::new(records, session, theme, &config.title), None),
        RecordSource::Compute(compute) => {
            (App::scoring(session, theme, &config.title), Some(compute))
        }
    };
    app.device = config.device.clone();

    let mut guard = TerminalGuard::enter().context("cannot set up the terminal")?;
    // The terminal is queried before the input thread exists, so the answer is not eaten by it.
    let picker = choose_picker(config.image_protocol, config.image_query_timeout, &mut app);

    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx.clone(), stop.clone())?;
    let previews = spawn_previews(picker.clone(), &config, tx.clone())?;
    let inspector = spawn_inspector(picker.clone(), &config, tx.clone())?;
    app.inspect.available = config.inspect.is_some();
    if let Some(compute) = compute {
        spawn_scoring(compute, tx.clone())?;
    }
    drop(tx);

    let looped = event_loop(
        &mut guard,
        &mut app,
        &rx,
        (previews, inspector),
        &picker,
        &config,
    );
    stop.store(true, Ordering::SeqCst);
    let saved = app.session_snapshot().save(&config.session_path);
    drop(guard);
    let _ = input.join();
    looped?;
    saved.with_context(|| "the session could not be saved on quit")?;
    Ok(())
}

fn event_loop(
    guard: &mut TerminalGuard,
    app: &mut App,
    rx: &Receiver<Message>,
    (mut previews, mut inspector): (PreviewRequester, InspectRequester),
    picker: &Picker,
    config: &TuiConfig,
) -> anyhow::Result<()> {
    let size = guard.terminal().size()?;
    update(
        app,
        Action::Resize {
            width: size.width,
            height: size.height,
        },
    );
    let graphics = picker.protocol_type() != ProtocolType::Halfblocks;
    let mut had_popup = false;
    let mut saver = Autosave::default();
    loop {
        request_previews(app, &mut previews);
        if !app.mode.has_popup() {
            inspector.request(app.inspect.missing(app.wanted_inspection()));
        }
        draw_frame(guard, app)?;

        let first = match rx.recv_timeout(TICK) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let mut clear_screen = false;
        for pending in merge(first.into_iter().chain(rx.try_iter().take(MAX_BATCH)))? {
            // Keys are mapped when applied: what a key does depends on the mode the keys
            // before it left.
            let action = match pending {
                Pending::Event(event) => keys::action_for_event(app, &event),
                Pending::Action(action) => Some(action),
            };
            let Some(action) = action else { continue };
            if let Action::Scoring(ScoringEvent::Failed(_)) = action {
                // A crashing worker may have printed over the screen.
                clear_screen = true;
            }
            update(app, action);
            if app.quit {
                return Ok(());
            }
        }
        if app.export_requested {
            app.export_requested = false;
            let text = match export_annotations(
                &app.session_snapshot(),
                &app.data,
                &config.session_path,
            ) {
                Ok(paths) => Action::Notify {
                    text: format!(
                        "exported {} annotated samples to {} and {}",
                        app.session.annotations.len(),
                        paths.csv.display(),
                        paths.json.display()
                    ),
                    is_error: false,
                },
                Err(e) => Action::Notify {
                    text: e.to_string(),
                    is_error: true,
                },
            };
            update(app, text);
        }
        saver.tick(app, &config.session_path);

        // Graphics protocols draw outside ratatui's cells: repaint fully around popups.
        let has_popup = app.mode.has_popup();
        if (graphics && has_popup != had_popup) || clear_screen {
            // `resize` clears the screen and forces a full redraw without asking the terminal
            // for the cursor position (which `clear` does, and a terminal may not answer).
            let terminal = guard.terminal();
            let area = terminal.size()?.into();
            terminal.resize(area)?;
        }
        had_popup = has_popup;
    }
}

/// A terminal event (mapped to an action when applied) or an action.
enum Pending {
    Event(Event),
    Action(Action),
}

/// Turns messages into pending actions. Record batches are merged into the first batch of the
/// frame (across progress messages and keys, not across the start or end of the run), so
/// the metrics and the view are recomputed once per frame.
fn merge(messages: impl Iterator<Item = Message>) -> anyhow::Result<Vec<Pending>> {
    let mut out: Vec<Pending> = Vec::new();
    let mut records_at: Option<usize> = None;
    for message in messages {
        match message {
            Message::Input(event) => out.push(Pending::Event(event)),
            Message::InputFailed(e) => return Err(e).context("cannot read the terminal"),
            Message::Scoring(ScoringEvent::Records(batch)) => match records_at {
                Some(at) => {
                    if let Pending::Action(Action::Scoring(ScoringEvent::Records(records))) =
                        &mut out[at]
                    {
                        records.extend(batch);
                    }
                }
                None => {
                    records_at = Some(out.len());
                    out.push(Pending::Action(Action::Scoring(ScoringEvent::Records(
                        batch,
                    ))));
                }
            },
            Message::Scoring(event) => {
                if !matches!(
                    event,
                    ScoringEvent::Progress { .. } | ScoringEvent::Skipped { .. }
                ) {
                    records_at = None;
                }
                out.push(Pending::Action(Action::Scoring(event)));
            }
            Message::Preview(result) => out.push(Pending::Action(Action::PreviewReady(result))),
            Message::Inspect(result) => out.push(Pending::Action(Action::InspectReady(result))),
        }
    }
    Ok(out)
}

/// Asks the preview worker for the previews the screen will want that are not cached, and
/// keeps the wanted ones from being evicted.
fn request_previews(app: &mut App, previews: &mut PreviewRequester) {
    if app.mode.has_popup() {
        return;
    }
    let mut wanted = app.wanted_previews();
    wanted.extend(app.wanted_thumbnails());
    for key in &wanted {
        app.previews.touch(key);
    }
    let missing: Vec<_> = wanted
        .into_iter()
        .filter(|key| !app.previews.contains(key))
        .collect();
    previews.request(missing);
}

/// One frame, inside a synchronized update so the terminal shows it whole.
fn draw_frame(guard: &mut TerminalGuard, app: &App) -> io::Result<()> {
    crossterm::queue!(guard.terminal().backend_mut(), BeginSynchronizedUpdate)?;
    guard.terminal().draw(|frame| draw(frame, app))?;
    crossterm::execute!(guard.terminal().backend_mut(), EndSynchronizedUpdate)
}

/// Writes the session when an annotation changed, or once other changes have settled.
#[derive(Default)]
struct Autosave {
    seen_revision: u64,
    last_change: Option<Instant>,
}

impl Autosave {
    fn tick(&mut self, app: &mut App, path: &std::path::Path) {
        let Some(urgency) = app.unsaved else {
            return;
        };
        let now = Instant::now();
        if app.revision != self.seen_revision {
            self.seen_revision = app.revision;
            self.last_change = Some(now);
        }
        let settled = self
            .last_change
            .is_none_or(|at| now.duration_since(at) >= SAVE_DEBOUNCE);
        if urgency == SaveUrgency::Now || settled {
            match app.session_snapshot().save(path) {
                Ok(()) => app.unsaved = None,
                Err(e) => {
                    // Retry after the debounce rather than on every tick.
                    app.unsaved = Some(SaveUrgency::Debounced);
                    self.last_change = Some(now);
                    update(
                        app,
                        Action::Notify {
                            text: format!("autosave failed: {e}"),
                            is_error: true,
                        },
                    );
                }
            }
        }
    }
}

/// The picker for the requested protocol: queried from the terminal unless half-blocks were
/// asked for; half-blocks when the query fails.
fn choose_picker(choice: ImageProtocol, timeout: Duration, app: &mut App) -> Picker {
    if choice == ImageProtocol::Halfblocks {
        return Picker::halfblocks();
    }
    let options = QueryStdioOptions {
        timeout,
        ..QueryStdioOptions::default()
    };
    let mut picker = match Picker::from_query_stdio_with_options(options) {
        Ok(picker) => picker,
        Err(e) => {
            update(
                app,
                Action::Notify {
                    text: format!(
                        "image previews use half-blocks: the terminal query failed ({e})"
                    ),
                    is_error: true,
                },
            );
            return Picker::halfblocks();
        }
    };
    match choice {
        ImageProtocol::Kitty => picker.set_protocol_type(ProtocolType::Kitty),
        ImageProtocol::Sixel => picker.set_protocol_type(ProtocolType::Sixel),
        ImageProtocol::Iterm2 => picker.set_protocol_type(ProtocolType::Iterm2),
        ImageProtocol::Auto | ImageProtocol::Halfblocks => {}
    }
    picker
}

fn spawn_input(tx: Sender<Message>, stop: Arc<AtomicBool>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("reason-input".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let message = match event::poll(INPUT_POLL) {
                    Ok(false) => continue,
                    Ok(true) => match event::read() {
                        Ok(event) => Message::Input(event),
                        Err(e) => Message::InputFailed(e),
                    },
                    Err(e) => Message::InputFailed(e),
                };
                let failed = matches!(message, Message::InputFailed(_));
                if tx.send(message).is_err() || failed {
                    return;
                }
            }
        })
}

fn spawn_previews(
    picker: Picker,
    config: &TuiConfig,
    tx: Sender<Message>,
) -> io::Result<PreviewRequester> {
    let (requests, worker_requests) = mpsc::channel();
    let root = config.dataset_root.clone();
    thread::Builder::new()
        .name("reason-previews".into())
        .spawn(move || {
            preview::run_worker(picker, root, worker_requests, |result| {
                tx.send(Message::Preview(result)).is_ok()
            })
        })?;
    Ok(PreviewRequester::new(requests))
}

/// The inspection worker (saliency overlays, neighbours), when there are models to load.
fn spawn_inspector(
    picker: Picker,
    config: &TuiConfig,
    tx: Sender<Message>,
) -> io::Result<InspectRequester> {
    let Some(source) = config.inspect.clone() else {
        return Ok(InspectRequester::new(None));
    };
    let (requests, worker_requests) = mpsc::channel();
    let root = config.dataset_root.clone();
    thread::Builder::new()
        .name("reason-inspect".into())
        .spawn(move || {
            inspect::run_worker(source, picker, root, worker_requests, |result| {
                tx.send(Message::Inspect(result)).is_ok()
            })
        })?;
    Ok(InspectRequester::new(Some(requests)))
}

/// Runs the scoring closure on its own thread; a panic or an early end becomes a `Failed`
/// message, so the dashboard always learns how the run ended.
fn spawn_scoring(
    compute: Box<dyn FnOnce(Sender<ScoringEvent>) + Send>,
    tx: Sender<Message>,
) -> io::Result<()> {
    let (events, worker_events) = mpsc::channel::<ScoringEvent>();
    let crash_report = events.clone();
    thread::Builder::new()
        .name("reason-scoring".into())
        .spawn(move || {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| compute(events))) {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let _ =
                    crash_report.send(ScoringEvent::Failed(format!("the worker crashed: {what}")));
            }
        })?;
    thread::Builder::new()
        .name("reason-scoring-forward".into())
        .spawn(move || {
            let mut ended = false;
            for event in worker_events {
                ended |= matches!(event, ScoringEvent::Finished | ScoringEvent::Failed(_));
                if tx.send(Message::Scoring(event)).is_err() {
                    return;
                }
            }
            if !ended {
                let _ = tx.send(Message::Scoring(ScoringEvent::Failed(
                    "the worker stopped without finishing".into(),
                )));
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::records::{RecordSet, SampleRecord};

    fn records(n: usize) -> Message {
        let record = SampleRecord {
            id: String::new(),
            label: None,
            pred: 0,
            probs: vec![],
            p_correct: 0.5,
            diagnostics: Default::default(),
            meta: vec![],
            truncated: false,
        };
        Message::Scoring(ScoringEvent::Records(vec![record; n]))
    }

    fn progress() -> Message {
        Message::Scoring(ScoringEvent::Progress {
            stage: "s".into(),
            done: 0,
            total: 0,
        })
    }

    /// Shape of the merged list: record counts, `p` for progress, `S`/`F` for start/finish.
    fn shape(pending: &[Pending]) -> Vec<String> {
        pending
            .iter()
            .map(|p| match p {
                Pending::Action(Action::Scoring(ScoringEvent::Records(r))) => r.len().to_string(),
                Pending::Action(Action::Scoring(ScoringEvent::Progress { .. })) => "p".into(),
                Pending::Action(Action::Scoring(ScoringEvent::Started { .. })) => "S".into(),
                Pending::Action(Action::Scoring(ScoringEvent::Finished)) => "F".into(),
                _ => "?".into(),
            })
            .collect()
    }

    #[test]
    fn record_batches_merge_within_a_run_phase() {
        let started = Message::Scoring(ScoringEvent::Started {
            total: 9,
            header: RecordSet::default(),
        });
        let messages = vec![
            started,
            progress(),
            records(2),
            progress(),
            records(3),
            records(1),
            Message::Scoring(ScoringEvent::Finished),
            records(4),
        ];
        let merged = merge(messages.into_iter()).unwrap();
        assert_eq!(shape(&merged), vec!["S", "p", "6", "p", "F", "4"]);
    }
}

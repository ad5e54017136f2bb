//! The reducer: applies one [`Action`] to the [`App`]. No terminal, no files, no threads:
//! side effects are requested through flags the event loop acts on (`quit`, `unsaved`,
//! `export_requested`).

use ratatui::layout::Rect;

use crate::dashboard::session::{parse_tags, Annotation, Filter, SortKey, Verdict};
use crate::reliability::records::ScoringEvent;

use super::action::Action;
use super::app::{clean_threshold, App, LoadState, Mode, Progress, SaveUrgency};
use super::inspect::Overlay;
use super::layout::SidePanel;

pub fn update(app: &mut App, action: Action) {
    // A message stays until the user does something.
    if is_user_action(&action) {
        app.notice = None;
    }
    match action {
        Action::Resize { width, height } => {
            app.area = Rect::new(0, 0, width, height);
            app.scroll_to_cursor();
        }
        Action::MoveBy(delta) => move_cursor(app, delta),
        Action::PageBy(pages) => move_cursor(app, pages * app.list_rows() as isize),
        Action::First => move_cursor(app, isize::MIN / 2),
        Action::Last => move_cursor(app, isize::MAX / 2),
        Action::Select(position) => {
            if position < app.view.len() {
                app.selected = position;
                app.cursor_moved();
            }
        }
        Action::ThresholdBy(step) => set_threshold(app, app.threshold + step),
        Action::SetThreshold(t) => set_threshold(app, t),
        Action::NextFilter => cycle_filter(app, true),
        Action::PrevFilter => cycle_filter(app, false),
        Action::NextFilterValue => cycle_filter_value(app, true),
        Action::PrevFilterValue => cycle_filter_value(app, false),
        Action::NextSort => {
            let keys = SortKey::ALL;
            let at = keys.iter().position(|&k| k == app.sort.key).unwrap_or(0);
            app.sort.key = keys[(at + 1) % keys.len()];
            app.sort.descending = app.sort.key.default_descending();
            app.refresh_order();
            app.mark_unsaved(SaveUrgency::Debounced);
        }
        Action::ReverseSort => {
            app.sort.descending = !app.sort.descending;
            app.refresh_order();
            app.mark_unsaved(SaveUrgency::Debounced);
        }
        Action::StartSearch => {
            app.mode = Mode::Search {
                previous: app.search.clone(),
            };
        }
        Action::ClearSearch => {
            if !app.search.is_empty() {
                app.search.clear();
                app.refresh_view();
            }
        }
        Action::EditTags => match app.selected_record() {
            Some(r) => {
                let id = r.id.clone();
                let input = app
                    .annotation(&id)
                    .map(|a| a.tags.join(", "))
                    .unwrap_or_default();
                app.mode = Mode::Tags { id, input };
            }
            None => app.warn("no sample selected"),
        },
        Action::EditNote => match app.selected_record() {
            Some(r) => {
                let id = r.id.clone();
                let input = app
                    .annotation(&id)
                    .map(|a| a.note.clone())
                    .unwrap_or_default();
                app.mode = Mode::Note { id, input };
            }
            None => app.warn("no sample selected"),
        },
        Action::CycleVerdict => match app.selected_record() {
            Some(r) => {
                let id = r.id.clone();
                let mut annotation = app.annotation(&id).cloned().unwrap_or_default();
                annotation.verdict = Verdict::cycle(annotation.verdict);
                let shown = annotation.verdict.map_or("none", Verdict::label);
                app.notify(format!("verdict: {shown}"));
                annotate(app, &id, annotation);
            }
            None => app.warn("no sample selected"),
        },
        Action::Input(c) => edit_input(app, |input| input.push(c)),
        Action::InputBackspace => edit_input(app, |input| {
            input.pop();
        }),
        Action::InputSubmit => submit_input(app),
        Action::InputCancel => {
            if let Mode::Search { previous } = std::mem::replace(&mut app.mode, Mode::Normal) {
                app.search = previous;
                app.refresh_view();
            }
        }
        Action::ToggleHelp => {
            app.mode = if app.mode == Mode::Help {
                Mode::Normal
            } else {
                Mode::Help
            };
        }
        Action::ToggleConfusion => toggle_confusion(app),
        Action::ConfusionMove { rows, cols } => move_confusion_cursor(app, rows, cols),
        Action::ConfusionSelect => select_confusion_cell(app),
        Action::NextPanel => {
            app.side_panel = app.side_panel.next();
            app.scroll_to_cursor();
        }
        Action::Export => app.export_requested = true,
        Action::Quit => app.quit = true,
        Action::Scoring(event) => apply_scoring(app, event),
        Action::PreviewReady(result) => app.previews.insert(result.key, result.image),
        Action::CycleOverlay => cycle_overlay(app),
        Action::ToggleNeighbours => {
            app.side_panel = if app.side_panel == SidePanel::Neighbours {
                SidePanel::Inspect
            } else {
                SidePanel::Neighbours
            };
            app.scroll_to_cursor();
        }
        Action::InspectReady(result) => app.inspect.apply(result),
        Action::Notify { text, is_error } => {
            if is_error {
                app.warn(text);
            } else {
                app.notify(text);
            }
        }
    }
}

fn is_user_action(action: &Action) -> bool {
    !matches!(
        action,
        Action::Resize { .. }
            | Action::Scoring(_)
            | Action::PreviewReady(_)
            | Action::InspectReady(_)
            | Action::Notify { .. }
    )
}

/// Off → predicted class → labelled class → off; the labelled step is skipped (with a word)
/// when the selected sample has no label.
fn cycle_overlay(app: &mut App) {
    let mut next = app.inspect.overlay.next();
    let labelled = app.selected_record().and_then(|r| r.label).is_some();
    if next == Overlay::Labelled && !labelled {
        next = Overlay::Off;
        app.notify("saliency overlay off (this sample has no label to explain)");
    }
    app.inspect.overlay = next;
    let shown = app.selected_record().and_then(|r| next.class(r));
    if let Some(class) = shown {
        let role = if next == Overlay::Predicted {
            "predicted"
        } else {
            "labelled"
        };
        app.notify(format!(
            "saliency overlay: {} ({role} class)",
            app.class_name(class)
        ));
    } else if next == Overlay::Off && app.notice.is_none() {
        app.notify("saliency overlay off");
    }
}

fn move_cursor(app: &mut App, delta: isize) {
    if app.view.is_empty() {
        return;
    }
    let last = app.view.len() as isize - 1;
    let target = (app.selected as isize).saturating_add(delta).clamp(0, last) as usize;
    if target != app.selected {
        app.selected = target;
        app.cursor_moved();
    }
}

fn set_threshold(app: &mut App, t: f32) {
    let t = clean_threshold(t);
    app.threshold_known = true;
    if t == app.threshold {
        return;
    }
    app.threshold = t;
    app.stats = app.derived.table.at(t);
    if app.filter.uses_threshold() {
        app.refresh_view();
    }
    app.mark_unsaved(SaveUrgency::Debounced);
}

/// The filter kinds in `f` order; class and tag filters start from the selected sample.
fn cycle_filter(app: &mut App, forward: bool) {
    const KINDS: usize = Filter::KINDS;
    let mut k = app.filter.kind();
    // At most KINDS steps: class and tag are skipped when there are none, `All` always exists.
    for _ in 0..KINDS {
        k = if forward {
            (k + 1) % KINDS
        } else {
            (k + KINDS - 1) % KINDS
        };
        let next = Filter::of_kind(k, || first_class(app), || first_tag(app));
        if let Some(filter) = next {
            set_filter(app, filter);
            return;
        }
    }
}

/// The selected sample's class (label, else prediction), else the first class.
fn first_class(app: &App) -> Option<String> {
    let from_selection = app
        .selected_record()
        .and_then(|r| app.data.classes.get(r.label.unwrap_or(r.pred) as usize));
    from_selection.or(app.data.classes.first()).cloned()
}

/// The selected sample's first tag, else the first tag of all.
fn first_tag(app: &App) -> Option<String> {
    let from_selection = app
        .selected_record()
        .and_then(|r| app.annotation(&r.id))
        .and_then(|a| a.tags.first().cloned());
    from_selection.or_else(|| app.session.all_tags().into_iter().next())
}

fn cycle_filter_value(app: &mut App, forward: bool) {
    let step = |values: &[String], current: &str| -> Option<String> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let next = match values.iter().position(|v| v == current) {
            Some(i) if forward => (i + 1) % n,
            Some(i) => (i + n - 1) % n,
            None => 0,
        };
        Some(values[next].clone())
    };
    let next = match &app.filter {
        Filter::Class(c) => step(&app.data.classes, c).map(Filter::Class),
        Filter::Tag(t) => step(&app.session.all_tags(), t).map(Filter::Tag),
        _ => {
            app.warn("[ and ] change the class or tag of a class or tag filter (f)");
            return;
        }
    };
    if let Some(filter) = next {
        set_filter(app, filter);
    }
}

fn set_filter(app: &mut App, filter: Filter) {
    app.filter = filter;
    app.refresh_view();
    app.mark_unsaved(SaveUrgency::Debounced);
    if app.derived.labelled == 0 && app.filter.needs_labels() {
        app.warn("no labels: this filter needs labelled samples");
    }
}

fn edit_input(app: &mut App, edit: impl FnOnce(&mut String)) {
    match &mut app.mode {
        Mode::Search { .. } => {
            edit(&mut app.search);
            app.refresh_view();
        }
        Mode::Tags { input, .. } | Mode::Note { input, .. } => edit(input),
        Mode::Normal | Mode::Help | Mode::Confusion => {}
    }
}

fn submit_input(app: &mut App) {
    match std::mem::replace(&mut app.mode, Mode::Normal) {
        Mode::Tags { id, input } => {
            let mut annotation = app.annotation(&id).cloned().unwrap_or_default();
            annotation.tags = parse_tags(&input);
            annotate(app, &id, annotation);
        }
        Mode::Note { id, input } => {
            let mut annotation = app.annotation(&id).cloned().unwrap_or_default();
            annotation.note = input.trim().to_string();
            annotate(app, &id, annotation);
        }
        // Enter keeps the search (already applied while typing).
        Mode::Search { .. } => {}
        // No input open: nothing to submit.
        mode @ (Mode::Normal | Mode::Help | Mode::Confusion) => app.mode = mode,
    }
}

/// Opens the confusion matrix on the selected sample's cell, or closes it.
fn toggle_confusion(app: &mut App) {
    if app.mode == Mode::Confusion {
        app.mode = Mode::Normal;
        return;
    }
    let confusion = &app.derived.confusion;
    if confusion.total == 0 {
        app.warn("no labels: the confusion matrix needs labelled samples");
        return;
    }
    if let Some(r) = app.selected_record() {
        if let Some(label) = r.label.filter(|&l| (l as usize) < confusion.classes) {
            let pred = r.pred;
            let pair = confusion
                .confused
                .iter()
                .position(|&(l, p, _)| (l, p) == (label, pred));
            app.confusion_cursor.label = label;
            app.confusion_cursor.pred = pred;
            app.confusion_cursor.pair = pair.unwrap_or(0);
        }
    }
    app.mode = Mode::Confusion;
}

fn move_confusion_cursor(app: &mut App, rows: isize, cols: isize) {
    let confusion = &app.derived.confusion;
    let step = |at: usize, by: isize, len: usize| -> usize {
        (at as isize)
            .saturating_add(by)
            .clamp(0, len.max(1) as isize - 1) as usize
    };
    let cursor = &mut app.confusion_cursor;
    if confusion.is_grid() {
        cursor.label = step(cursor.label as usize, rows, confusion.classes) as u16;
        cursor.pred = step(cursor.pred as usize, cols, confusion.classes) as u16;
    } else {
        cursor.pair = step(cursor.pair, rows, confusion.confused.len());
    }
}

/// Filters the list to the cell under the cursor and closes the matrix.
fn select_confusion_cell(app: &mut App) {
    let confusion = &app.derived.confusion;
    let cursor = app.confusion_cursor;
    let cell = if confusion.is_grid() {
        Some((cursor.label, cursor.pred))
    } else {
        confusion.confused.get(cursor.pair).map(|&(l, p, _)| (l, p))
    };
    let class = |i: u16| app.data.classes.get(i as usize).cloned();
    let Some((Some(label), Some(pred))) = cell.map(|(l, p)| (class(l), class(p))) else {
        app.warn("no cell under the cursor");
        return;
    };
    app.mode = Mode::Normal;
    set_filter(app, Filter::Cell { label, pred });
}

fn annotate(app: &mut App, id: &str, annotation: Annotation) {
    app.session.set_annotation(id, annotation);
    app.mark_unsaved(SaveUrgency::Now);
    if app.filter.uses_annotations() {
        app.refresh_view();
    }
}

fn apply_scoring(app: &mut App, event: ScoringEvent) {
    match event {
        ScoringEvent::Started { total, header } => {
            app.data.classes = header.classes;
            app.data.class_names = header.class_names;
            app.data.layout = header.layout;
            app.data.threshold = header.threshold;
            if !app.threshold_known {
                app.threshold = clean_threshold(header.threshold);
                app.threshold_known = true;
            }
            if let LoadState::Scoring(progress) = &mut app.load {
                progress.expected = Some(total);
            } else {
                app.load = LoadState::Scoring(Progress {
                    expected: Some(total),
                    stage: None,
                });
            }
            app.data.records.extend(header.records);
            app.refresh_data();
        }
        ScoringEvent::Progress { stage, done, total } => {
            if let LoadState::Scoring(progress) = &mut app.load {
                progress.stage = Some((stage, done, total));
            }
        }
        ScoringEvent::Records(records) => {
            if !records.is_empty() {
                app.data.records.extend(records);
                app.refresh_data();
            }
        }
        ScoringEvent::Skipped { id, reason } => {
            app.skipped += 1;
            app.warn(format!("skipped {id}: {reason}"));
        }
        ScoringEvent::Finished => {
            app.load = LoadState::Ready;
            let skipped = match app.skipped {
                0 => String::new(),
                n => format!(", {n} skipped"),
            };
            app.notify(format!(
                "scored {} samples{skipped}",
                app.data.records.len()
            ));
        }
        ScoringEvent::Failed(message) => {
            app.warn(format!("scoring failed: {message}"));
            app.load = LoadState::Failed(message);
        }
    }
}

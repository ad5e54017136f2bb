//! Terminal input → [`Action`]: the key map, mouse hit-testing, and the help text that lists
//! every key.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Position;

use super::action::{Action, THRESHOLD_BIG_STEP, THRESHOLD_STEP};
use super::app::{App, Mode};
use super::layout::threshold_at_column;

/// Rows one mouse-wheel notch moves.
const WHEEL_ROWS: isize = 3;

/// Every key, as the help overlay lists them.
pub const HELP: &[(&str, &str)] = &[
    ("j ↓ / k ↑", "next / previous sample"),
    ("PgDn / PgUp", "next / previous page"),
    ("g Home / G End", "first / last sample"),
    ("l → / h ←", "raise / lower the threshold by 0.01"),
    ("L / H", "raise / lower the threshold by 0.1"),
    ("/", "search paths (Enter keeps, Esc cancels)"),
    ("Esc", "clear the search"),
    ("f / F", "next / previous filter"),
    ("] / [", "next / previous class or tag of the filter"),
    ("s", "next sort column"),
    ("S", "reverse the sort"),
    ("t", "edit tags (comma-separated)"),
    ("v", "cycle verdict"),
    ("n", "edit note"),
    ("e", "export annotations (CSV, JSON)"),
    ("Tab", "next side panel (below 120×36)"),
    ("?", "this help"),
    ("q Ctrl-C", "save and quit"),
    ("mouse", "click/wheel the list, click/drag the slider"),
];

/// The action for a terminal event, if any.
pub fn action_for_event(app: &App, event: &Event) -> Option<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => action_for_key(app, key),
        Event::Mouse(mouse) => action_for_mouse(app, mouse),
        Event::Resize(width, height) => Some(Action::Resize {
            width: *width,
            height: *height,
        }),
        _ => None,
    }
}

pub fn action_for_key(app: &App, key: &KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match &app.mode {
        Mode::Search { .. } | Mode::Tags { .. } | Mode::Note { .. } => match key.code {
            KeyCode::Enter => Some(Action::InputSubmit),
            KeyCode::Esc => Some(Action::InputCancel),
            KeyCode::Backspace => Some(Action::InputBackspace),
            KeyCode::Char(c) if !ctrl => Some(Action::Input(c)),
            _ => None,
        },
        Mode::Help => match key.code {
            KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => Some(Action::ToggleHelp),
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        },
        Mode::Normal => normal_key(key.code),
    }
}

fn normal_key(code: KeyCode) -> Option<Action> {
    Some(match code {
        KeyCode::Char('j') | KeyCode::Down => Action::MoveBy(1),
        KeyCode::Char('k') | KeyCode::Up => Action::MoveBy(-1),
        KeyCode::PageDown => Action::PageBy(1),
        KeyCode::PageUp => Action::PageBy(-1),
        KeyCode::Char('g') | KeyCode::Home => Action::First,
        KeyCode::Char('G') | KeyCode::End => Action::Last,
        KeyCode::Char('l') | KeyCode::Right => Action::ThresholdBy(THRESHOLD_STEP),
        KeyCode::Char('h') | KeyCode::Left => Action::ThresholdBy(-THRESHOLD_STEP),
        KeyCode::Char('L') => Action::ThresholdBy(THRESHOLD_BIG_STEP),
        KeyCode::Char('H') => Action::ThresholdBy(-THRESHOLD_BIG_STEP),
        KeyCode::Char('/') => Action::StartSearch,
        KeyCode::Esc => Action::ClearSearch,
        KeyCode::Char('f') => Action::NextFilter,
        KeyCode::Char('F') => Action::PrevFilter,
        KeyCode::Char(']') => Action::NextFilterValue,
        KeyCode::Char('[') => Action::PrevFilterValue,
        KeyCode::Char('s') => Action::NextSort,
        KeyCode::Char('S') => Action::ReverseSort,
        KeyCode::Char('t') => Action::EditTags,
        KeyCode::Char('v') => Action::CycleVerdict,
        KeyCode::Char('n') => Action::EditNote,
        KeyCode::Char('e') => Action::Export,
        KeyCode::Tab => Action::NextPanel,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('q') => Action::Quit,
        _ => return None,
    })
}

/// Clicks select list rows, the wheel scrolls the list, clicks and drags on the slider's row
/// set the threshold. Ignored while a popup is open.
pub fn action_for_mouse(app: &App, mouse: &MouseEvent) -> Option<Action> {
    if app.mode.has_popup() {
        return None;
    }
    let screen = app.screen()?;
    let at = Position::new(mouse.column, mouse.row);
    let track = screen.slider_track();
    match mouse.kind {
        MouseEventKind::Down(MouseButton::Left) if track.contains(at) => {
            threshold_at_column(track, mouse.column).map(Action::SetThreshold)
        }
        // A drag keeps following the pointer along the slider's row, past its ends too.
        MouseEventKind::Drag(MouseButton::Left) if mouse.row == track.y && track.width > 0 => {
            threshold_at_column(track, mouse.column).map(Action::SetThreshold)
        }
        MouseEventKind::Down(MouseButton::Left) if screen.list_body().contains(at) => {
            let row = (mouse.row - screen.list_body().y) as usize;
            let position = app.list_offset + row;
            (position < app.view.len()).then_some(Action::Select(position))
        }
        MouseEventKind::ScrollDown if screen.list.contains(at) => Some(Action::MoveBy(WHEEL_ROWS)),
        MouseEventKind::ScrollUp if screen.list.contains(at) => Some(Action::MoveBy(-WHEEL_ROWS)),
        _ => None,
    }
}

//! Terminal input → [`Action`]: the key map (which the help overlay lists), and mouse
//! hit-testing.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Position;

use super::action::{Action, THRESHOLD_BIG_STEP, THRESHOLD_STEP};
use super::app::{App, Mode};
use super::layout::threshold_at_column;

/// Rows one mouse-wheel notch moves.
const WHEEL_ROWS: isize = 3;

/// Keys and the action they trigger.
pub type KeysAction = (&'static [KeyCode], fn() -> Action);

/// One line of the normal-mode key map: the keys, what they do, and the help text. The key
/// handler and the help overlay both read [`NORMAL_KEYS`], so they cannot disagree.
pub struct Binding {
    pub keys: &'static [KeyCode],
    pub action: fn() -> Action,
    /// The opposite keys and action, on the same help line (`k ↑` for `j ↓`).
    pub back: Option<KeysAction>,
    /// `{step}` stands for the threshold step of the action.
    pub help: &'static str,
}

const fn key(keys: &'static [KeyCode], action: fn() -> Action, help: &'static str) -> Binding {
    Binding {
        keys,
        action,
        back: None,
        help,
    }
}

const fn pair(
    keys: &'static [KeyCode],
    action: fn() -> Action,
    back_keys: &'static [KeyCode],
    back: fn() -> Action,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        action,
        back: Some((back_keys, back)),
        help,
    }
}

use KeyCode::Char;

/// Every key of the list view (Ctrl-C also quits, in every mode).
pub const NORMAL_KEYS: &[Binding] = &[
    pair(
        &[Char('j'), KeyCode::Down],
        || Action::MoveBy(1),
        &[Char('k'), KeyCode::Up],
        || Action::MoveBy(-1),
        "next / previous sample",
    ),
    pair(
        &[KeyCode::PageDown],
        || Action::PageBy(1),
        &[KeyCode::PageUp],
        || Action::PageBy(-1),
        "next / previous page",
    ),
    pair(
        &[Char('g'), KeyCode::Home],
        || Action::First,
        &[Char('G'), KeyCode::End],
        || Action::Last,
        "first / last sample",
    ),
    pair(
        &[Char('l'), KeyCode::Right],
        || Action::ThresholdBy(THRESHOLD_STEP),
        &[Char('h'), KeyCode::Left],
        || Action::ThresholdBy(-THRESHOLD_STEP),
        "raise / lower the threshold by {step}",
    ),
    pair(
        &[Char('L')],
        || Action::ThresholdBy(THRESHOLD_BIG_STEP),
        &[Char('H')],
        || Action::ThresholdBy(-THRESHOLD_BIG_STEP),
        "raise / lower the threshold by {step}",
    ),
    key(
        &[Char('/')],
        || Action::StartSearch,
        "search paths (Enter keeps, Esc cancels)",
    ),
    key(&[KeyCode::Esc], || Action::ClearSearch, "clear the search"),
    pair(
        &[Char('f')],
        || Action::NextFilter,
        &[Char('F')],
        || Action::PrevFilter,
        "next / previous filter",
    ),
    pair(
        &[Char(']')],
        || Action::NextFilterValue,
        &[Char('[')],
        || Action::PrevFilterValue,
        "next / previous class or tag of the filter",
    ),
    // Pairs share a help line so that the whole help fits an 80×24 terminal.
    pair(
        &[Char('s')],
        || Action::NextSort,
        &[Char('S')],
        || Action::ReverseSort,
        "next sort column / reverse the sort",
    ),
    pair(
        &[Char('t')],
        || Action::EditTags,
        &[Char('n')],
        || Action::EditNote,
        "edit tags (comma-separated) / edit note",
    ),
    key(&[Char('v')], || Action::CycleVerdict, "cycle verdict"),
    key(
        &[Char('e')],
        || Action::Export,
        "export annotations (CSV, JSON)",
    ),
    key(
        &[KeyCode::Tab],
        || Action::NextPanel,
        "next side panel (below 120×36; neighbours at any size)",
    ),
    // Two keys on one help line, so the help still fits 80×24.
    pair(
        &[Char('x')],
        || Action::CycleOverlay,
        &[Char('N')],
        || Action::ToggleNeighbours,
        "saliency overlay (pred, label, off) / nearest training images",
    ),
    key(
        &[Char('c')],
        || Action::ToggleConfusion,
        "confusion matrix (Enter filters a cell)",
    ),
    key(&[Char('?')], || Action::ToggleHelp, "this help"),
    key(&[Char('q')], || Action::Quit, "save and quit (Ctrl-C too)"),
];

/// The mouse, as the help overlay describes it.
pub const MOUSE_HELP: (&str, &str) = ("mouse", "click/wheel the list, click/drag the slider");

impl Binding {
    /// `j ↓ / k ↑`: the keys as the help overlay shows them.
    pub fn keys_label(&self) -> String {
        let names = |keys: &[KeyCode]| keys.iter().map(key_name).collect::<Vec<_>>().join(" ");
        match &self.back {
            Some((back, _)) => format!("{} / {}", names(self.keys), names(back)),
            None => names(self.keys),
        }
    }

    /// The help text, with the threshold step filled in from the action itself.
    pub fn help_text(&self) -> String {
        match (self.action)() {
            Action::ThresholdBy(step) => self.help.replace("{step}", &format!("{}", step.abs())),
            _ => self.help.to_string(),
        }
    }

    fn action_for(&self, code: KeyCode) -> Option<Action> {
        if self.keys.contains(&code) {
            return Some((self.action)());
        }
        match &self.back {
            Some((keys, action)) if keys.contains(&code) => Some(action()),
            _ => None,
        }
    }
}

fn key_name(code: &KeyCode) -> String {
    match code {
        Char(c) => c.to_string(),
        KeyCode::Down => "↓".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::PageUp => "PgUp".into(),
        other => other.to_string(),
    }
}

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
        Mode::Confusion => confusion_key(key.code),
        Mode::Normal => normal_key(key.code),
    }
}

/// Keys inside the confusion matrix: arrows / hjkl move, Enter filters, Esc or `c` leaves.
fn confusion_key(code: KeyCode) -> Option<Action> {
    let by = |rows, cols| Some(Action::ConfusionMove { rows, cols });
    match code {
        KeyCode::Up | Char('k') => by(-1, 0),
        KeyCode::Down | Char('j') => by(1, 0),
        KeyCode::Left | Char('h') => by(0, -1),
        KeyCode::Right | Char('l') => by(0, 1),
        KeyCode::PageUp => by(-10, 0),
        KeyCode::PageDown => by(10, 0),
        KeyCode::Enter => Some(Action::ConfusionSelect),
        KeyCode::Esc | Char('c') => Some(Action::ToggleConfusion),
        Char('q') => Some(Action::Quit),
        _ => None,
    }
}

fn normal_key(code: KeyCode) -> Option<Action> {
    NORMAL_KEYS.iter().find_map(|b| b.action_for(code))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_key_does_what_its_help_line_says_and_no_key_is_bound_twice() {
        let mut seen = Vec::new();
        for b in NORMAL_KEYS {
            let mut groups = vec![(b.keys, (b.action)())];
            if let Some((keys, action)) = &b.back {
                groups.push((keys, action()));
            }
            for (keys, want) in groups {
                for &code in keys {
                    assert!(!seen.contains(&code), "{code:?} is bound twice");
                    seen.push(code);
                    let got = normal_key(code).expect("bound key has an action");
                    assert_eq!(format!("{got:?}"), format!("{want:?}"), "{code:?}");
                }
            }
        }
        assert!(normal_key(Char('z')).is_none());
    }

    #[test]
    fn help_lines_name_the_keys_and_the_real_step() {
        let labels: Vec<(String, String)> = NORMAL_KEYS
            .iter()
            .map(|b| (b.keys_label(), b.help_text()))
            .collect();
        assert_eq!(labels[0].0, "j ↓ / k ↑");
        assert_eq!(labels[2].0, "g Home / G End");
        let small = labels.iter().find(|(k, _)| k == "l → / h ←").unwrap();
        assert_eq!(
            small.1,
            format!("raise / lower the threshold by {THRESHOLD_STEP}")
        );
        let big = labels.iter().find(|(k, _)| k == "L / H").unwrap();
        assert!(
            big.1.ends_with(&format!("by {THRESHOLD_BIG_STEP}")),
            "{}",
            big.1
        );
        assert!(labels.iter().all(|(_, h)| !h.contains('{')));
    }
}

//! The popup that edits a sample's tags or note.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::{centered, panel, truncate_left};
use crate::dashboard::app::{App, Mode};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let (what, id, input, hint) = match &app.mode {
        Mode::Tags { id, input } => (
            "Tags",
            id,
            input,
            "comma-separated · Enter saves · Esc cancels",
        ),
        Mode::Note { id, input } => (
            "Note",
            id,
            input,
            "Enter saves · Esc cancels · empty removes",
        ),
        _ => return,
    };
    let popup = centered(area, 64, 5);
    let inside = popup.width.saturating_sub(2) as usize;
    let title = format!(
        " {what} · {} ",
        truncate_left(id, inside.saturating_sub(what.len() + 5))
    );
    // Show the end of long input, where the typing happens.
    let shown = truncate_left(input, inside.saturating_sub(2));
    let lines = vec![
        Line::from(vec![
            Span::styled(format!(" {shown}"), Style::new().fg(theme.text)),
            Span::styled("▏", Style::new().fg(theme.highlight)),
        ]),
        Line::default(),
        Line::from(Span::styled(
            format!(" {hint}"),
            Style::new().fg(theme.muted),
        )),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(panel(title, theme)), popup);
}

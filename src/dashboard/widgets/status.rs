//! Bottom line: the search input, a message, or the current filter and sort; key hints.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::dashboard::app::{App, Mode};
use crate::support::text::printable;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let hints = match app.mode {
        Mode::Search { .. } => " Enter keep · Esc cancel ",
        Mode::Tags { .. } | Mode::Note { .. } => " Enter save · Esc cancel ",
        Mode::Help => " ? or Esc closes help ",
        Mode::Confusion => " ←↑↓→ move · Enter filter · Esc close ",
        Mode::Normal => " ? help · q quit ",
    };
    let [left_area, right_area] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(hints.chars().count() as u16),
    ])
    .areas(area);

    let left = if let Mode::Search { .. } = app.mode {
        Line::from(vec![
            Span::styled(" search /", Style::new().fg(theme.highlight)),
            Span::styled(app.search.clone(), Style::new().fg(theme.text)),
            Span::styled("▏", Style::new().fg(theme.highlight)),
            Span::styled(
                format!("  {} matches", app.view.len()),
                Style::new().fg(theme.muted),
            ),
        ])
    } else if let Some(notice) = &app.notice {
        let colour = if notice.is_error {
            theme.error
        } else {
            theme.highlight
        };
        Line::from(Span::styled(
            format!(" {}", printable(&notice.text)),
            Style::new().fg(colour),
        ))
    } else {
        let mut spans = vec![
            Span::styled(" filter ", Style::new().fg(theme.muted)),
            Span::styled(app.filter_label(), Style::new().fg(theme.text)),
            Span::styled(" · sort ", Style::new().fg(theme.muted)),
            Span::styled(app.sort_label(), Style::new().fg(theme.text)),
        ];
        if !app.search.is_empty() {
            spans.push(Span::styled(" · search ", Style::new().fg(theme.muted)));
            spans.push(Span::styled(
                app.search.clone(),
                Style::new().fg(theme.text),
            ));
        }
        Line::from(spans)
    };
    let style = Style::new().bg(theme.background);
    frame.render_widget(Paragraph::new(left).style(style), left_area);
    frame.render_widget(
        Paragraph::new(Span::styled(hints, Style::new().fg(theme.muted))).style(style),
        right_area,
    );
}

//! Top line: name, data set, counts, the scoring device and why it was chosen, and the scoring
//! progress while a worker runs.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};
use ratatui::Frame;

use crate::tui::app::{App, LoadState, Progress};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = vec![
        Span::styled(
            " REASON ",
            Style::new().fg(theme.title).add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!("· {} ", app.title), Style::new().fg(theme.text)),
        Span::styled(
            format!("· {} samples", app.data.records.len()),
            Style::new().fg(theme.muted),
        ),
    ];
    if app.skipped > 0 {
        spans.push(Span::styled(
            format!(" · {} skipped", app.skipped),
            Style::new().fg(theme.error),
        ));
    }
    if let Some(device) = &app.device {
        spans.push(Span::styled(
            format!(" · {}", device.label),
            Style::new().fg(theme.text).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(
            format!(" ({})", device.reason),
            Style::new().fg(theme.muted),
        ));
    }
    let left = Paragraph::new(Line::from(spans)).style(Style::new().bg(theme.background));

    match &app.load {
        LoadState::Ready => frame.render_widget(left, area),
        LoadState::Scoring(progress) => {
            let [left_area, gauge_area] =
                Layout::horizontal([Constraint::Fill(1), Constraint::Percentage(45)]).areas(area);
            frame.render_widget(left, left_area);
            let (ratio, label) = gauge(progress, app.data.records.len());
            let gauge = LineGauge::default()
                .ratio(ratio)
                .label(Span::styled(label, Style::new().fg(theme.text)))
                .filled_style(Style::new().fg(theme.gauge))
                .unfilled_style(Style::new().fg(theme.border))
                .style(Style::new().bg(theme.background));
            frame.render_widget(gauge, gauge_area);
        }
        LoadState::Failed(message) => {
            let [left_area, error_area] =
                Layout::horizontal([Constraint::Fill(1), Constraint::Percentage(45)]).areas(area);
            frame.render_widget(left, left_area);
            let error = Paragraph::new(format!("scoring failed: {message}"))
                .style(Style::new().fg(theme.error).bg(theme.background));
            frame.render_widget(error, error_area);
        }
    }
}

/// Ratio and label of the progress gauge.
fn gauge(progress: &Progress, scored: usize) -> (f64, String) {
    let ratio = |done: usize, total: usize| {
        if total == 0 {
            0.0
        } else {
            (done as f64 / total as f64).clamp(0.0, 1.0)
        }
    };
    match (&progress.stage, progress.expected) {
        (Some((stage, done, total)), _) => (
            ratio(*done, *total),
            format!("{stage} {done}/{total} · {scored} scored "),
        ),
        (None, Some(expected)) => (
            ratio(scored, expected),
            format!("scoring {scored}/{expected} "),
        ),
        (None, None) => (0.0, "starting the scoring worker… ".into()),
    }
}

//! Top line: name, data set, counts, the scoring device and why it was chosen, and the scoring
//! progress while a worker runs.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};
use ratatui::Frame;

use crate::dashboard::app::{App, LoadState, Progress};
use crate::support::text::printable;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let split =
        || Layout::horizontal([Constraint::Fill(1), Constraint::Percentage(45)]).areas(area);
    let (left_area, right_area) = match &app.load {
        LoadState::Ready => (area, None),
        LoadState::Scoring(_) | LoadState::Failed(_) => {
            let [left, right] = split();
            (left, Some(right))
        }
    };
    let left = Paragraph::new(title_line(app, left_area.width as usize))
        .style(Style::new().bg(theme.background));
    frame.render_widget(left, left_area);

    match (&app.load, right_area) {
        (LoadState::Scoring(progress), Some(gauge_area)) => {
            let (ratio, label) = gauge(progress, app.data.records.len());
            let gauge = LineGauge::default()
                .ratio(ratio)
                .label(Span::styled(label, Style::new().fg(theme.text)))
                .filled_style(Style::new().fg(theme.gauge))
                .unfilled_style(Style::new().fg(theme.border))
                .style(Style::new().bg(theme.background));
            frame.render_widget(gauge, gauge_area);
        }
        (LoadState::Failed(message), Some(error_area)) => {
            let error = Paragraph::new(format!("scoring failed: {message}"))
                .style(Style::new().fg(theme.error).bg(theme.background));
            frame.render_widget(error, error_area);
        }
        _ => {}
    }
}

/// The title's text in `width` columns. The device's name always shows: when the line is too
/// long, the data set's path loses its beginning first, then the device's reason its end.
fn title_line(app: &App, width: usize) -> Line<'static> {
    let theme = &app.theme;
    let name = Span::styled(
        " REASON ",
        Style::new().fg(theme.title).add_modifier(Modifier::BOLD),
    );
    let mut tail = vec![Span::styled(
        format!("· {} samples", app.data.records.len()),
        Style::new().fg(theme.muted),
    )];
    if app.skipped > 0 {
        tail.push(Span::styled(
            format!(" · {} skipped", app.skipped),
            Style::new().fg(theme.error),
        ));
    }
    if let Some(device) = &app.device {
        tail.push(Span::styled(
            format!(" · {}", device.label),
            Style::new().fg(theme.text).add_modifier(Modifier::BOLD),
        ));
    }
    // "· " before the title and " " after it.
    let fixed = name.width() + tail.iter().map(Span::width).sum::<usize>() + 3;
    let title = shorten_start(
        &printable(&app.title),
        width.saturating_sub(fixed).max(MIN_TITLE),
    );
    let mut spans = vec![
        name,
        Span::styled(format!("· {title} "), Style::new().fg(theme.text)),
    ];
    spans.extend(tail);
    if let Some(device) = &app.device {
        spans.push(Span::styled(
            format!(" ({})", device.reason),
            Style::new().fg(theme.muted),
        ));
    }
    Line::from(spans)
}

/// Fewest columns the data set's name is shortened to.
const MIN_TITLE: usize = 8;

/// `text` in at most `room` columns (characters), its beginning replaced by `…` when cut.
fn shorten_start(text: &str, room: usize) -> String {
    let count = text.chars().count();
    if count <= room {
        return text.to_string();
    }
    let keep = room.saturating_sub(1);
    let rest: String = text.chars().skip(count - keep).collect();
    format!("…{rest}")
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

#[cfg(test)]
mod tests {
    use super::shorten_start;

    #[test]
    fn shortening_keeps_the_end() {
        assert_eq!(
            shorten_start("/data/imagenette/val", 30),
            "/data/imagenette/val"
        );
        assert_eq!(
            shorten_start("/data/imagenette/val", 20),
            "/data/imagenette/val"
        );
        assert_eq!(shorten_start("/data/imagenette/val", 8), "…tte/val");
        assert_eq!(shorten_start("/data/imagenette/val", 1), "…");
        assert_eq!(shorten_start("ü/abc", 3), "…bc");
    }
}

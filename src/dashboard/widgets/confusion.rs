//! The confusion matrix (`c`): labelled samples counted by label (rows) and prediction
//! (columns), each cell with the share the threshold rejects. Up to
//! [`GRID_MAX_CLASSES`](crate::dashboard::derived::GRID_MAX_CLASSES) classes it is a grid;
//! with more (ImageNet's 1000) it is the list of the most confused pairs. The counts come from
//! `Derived` (once per data change); the rejected share is a binary search per visible cell.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::{panel, truncate_right};
use crate::dashboard::app::App;
use crate::dashboard::layout::inner;
use crate::support::text::printable;

/// Share rejected, in eighths (a cell too narrow for a percentage shows one of these).
const SHADES: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Widest a grid column gets, and the width from which it shows a percentage.
const MAX_COLUMN: usize = 10;
const PERCENT_COLUMN: usize = 9;

/// Over the whole screen but the title and status lines.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let popup = Rect {
        y: area.y.saturating_add(1),
        height: area.height.saturating_sub(2),
        ..area
    };
    let theme = &app.theme;
    let c = &app.derived.confusion;
    let title = format!(
        " Confusion: label ↓ × prediction →  {} labelled, t={:.3} ",
        c.total, app.threshold
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(panel(title, theme), popup);
    let body = inner(popup);
    if body.width == 0 || body.height == 0 {
        return;
    }
    let lines = if c.total == 0 {
        vec![Line::from(Span::styled(
            "no labelled samples",
            Style::new().fg(theme.muted),
        ))]
    } else {
        let grid = c.is_grid().then(|| grid_lines(app, body)).flatten();
        grid.unwrap_or_else(|| pair_lines(app, body))
    };
    frame.render_widget(Paragraph::new(lines), body);
}

/// `388 3%`, or `388▂` in a narrow column, right-aligned in `width`.
fn cell_text(count: usize, rejected: usize, width: usize) -> String {
    if count == 0 {
        return format!("{:>width$}", "·");
    }
    let share = rejected as f64 / count as f64;
    let text = if width >= PERCENT_COLUMN {
        format!("{count} {:>3.0}%", 100.0 * share)
    } else {
        let shade = if rejected == 0 {
            ' '
        } else {
            SHADES[((share * 8.0).ceil() as usize).clamp(1, 8) - 1]
        };
        format!("{}{shade}", short_count(count))
    };
    format!("{text:>width$}")
}

/// A count in at most 4 characters: 999, 1.2k, 12k, 123k, 1.2M.
fn short_count(n: usize) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=9_999 => format!("{:.1}k", n as f64 / 1e3),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The grid, or `None` when the body is too small for it.
fn grid_lines(app: &App, body: Rect) -> Option<Vec<Line<'static>>> {
    let theme = &app.theme;
    let c = &app.derived.confusion;
    let n = c.classes;
    let muted = Style::new().fg(theme.muted);
    let width = body.width as usize;
    // Row labels `12 name`: as wide as the longest name allows, within a third of the width.
    let names: Vec<String> = (0..n)
        .map(|i| printable(&app.class_name(i as u16)).into_owned())
        .collect();
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let label_width = (longest + 4).min(width / 3).max(6);
    let column = ((width.saturating_sub(label_width)) / n.max(1)).min(MAX_COLUMN);
    // A column needs room for a count, its shade and a gap; the rows, the header and footer.
    if column < 5 || (body.height as usize) < n + 2 {
        return None;
    }
    let cursor = app.confusion_cursor;
    let (cl, cp) = (
        (cursor.label as usize).min(n - 1),
        (cursor.pred as usize).min(n - 1),
    );
    let mut lines = Vec::with_capacity(n + 4);
    let mut header = vec![Span::styled(
        format!("{:<label_width$}", "label \\ pred"),
        muted,
    )];
    for j in 0..n {
        let style = if j == cp {
            Style::new()
                .fg(theme.highlight)
                .add_modifier(Modifier::BOLD)
        } else {
            muted
        };
        header.push(Span::styled(format!("{j:>column$}"), style));
    }
    lines.push(Line::from(header));
    for (i, name) in names.iter().enumerate() {
        let row_style = if i == cl {
            Style::new()
                .fg(theme.highlight)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(theme.text)
        };
        let label = truncate_right(&format!("{i:>2} {name}"), label_width - 1);
        let mut spans = vec![Span::styled(format!("{label:<label_width$}"), row_style)];
        for j in 0..n {
            let (l, p) = (i as u16, j as u16);
            let count = c.count(l, p);
            let text = cell_text(count, c.rejected(l, p, app.threshold), column);
            let style = if (i, j) == (cl, cp) {
                Style::new()
                    .bg(theme.selection)
                    .fg(theme.selection_text)
                    .add_modifier(Modifier::BOLD)
            } else if count == 0 {
                muted
            } else if i == j {
                Style::new().fg(theme.correct)
            } else {
                Style::new().fg(theme.wrong)
            };
            spans.push(Span::styled(text, style));
        }
        lines.push(Line::from(spans));
    }
    let rows_left = body.height as usize - lines.len();
    lines.push(footer(app, cl as u16, cp as u16, width));
    if rows_left >= 3 {
        let legend = if column >= PERCENT_COLUMN {
            "cells: samples and the % rejected at t · rows sum to each label's samples"
        } else {
            "cells: samples, ▁…█ the share rejected at t · rows sum to each label's samples"
        };
        lines.push(Line::from(Span::styled(
            truncate_right(legend, width),
            muted,
        )));
    }
    Some(lines)
}

/// The off-diagonal cells, most samples first, scrolled to the cursor.
fn pair_lines(app: &App, body: Rect) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let c = &app.derived.confusion;
    let muted = Style::new().fg(theme.muted);
    let width = body.width as usize;
    let mut lines = vec![Line::from(Span::styled(
        truncate_right(
            &format!(
                "most confused pairs ({} classes, {} with errors)",
                c.classes,
                c.confused.len()
            ),
            width,
        ),
        muted,
    ))];
    if c.confused.is_empty() {
        lines.push(Line::from(Span::styled("no errors", muted)));
        return lines;
    }
    let visible = (body.height as usize).saturating_sub(2).max(1);
    let at = app.confusion_cursor.pair.min(c.confused.len() - 1);
    let offset = at.saturating_sub(visible - 1);
    let name_width = width.saturating_sub(18) / 2;
    for (k, &(l, p, count)) in c.confused.iter().enumerate().skip(offset).take(visible) {
        let rejected = c.rejected(l, p, app.threshold);
        let text = format!(
            "{:<name_width$} → {:<name_width$} {:>6} {:>4.0}%",
            truncate_right(&printable(&app.class_name(l)), name_width),
            truncate_right(&printable(&app.class_name(p)), name_width),
            count,
            100.0 * rejected as f64 / count as f64
        );
        let style = if k == at {
            Style::new()
                .bg(theme.selection)
                .fg(theme.selection_text)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(theme.text)
        };
        lines.push(Line::from(Span::styled(
            truncate_right(&text, width),
            style,
        )));
    }
    let (l, p, _) = c.confused[at];
    lines.truncate(body.height as usize - 1);
    lines.push(footer(app, l, p, width));
    lines
}

/// The cell under the cursor, in words.
fn footer(app: &App, label: u16, pred: u16, width: usize) -> Line<'static> {
    let c = &app.derived.confusion;
    let count = c.count(label, pred);
    let rejected = c.rejected(label, pred, app.threshold);
    let share = if count == 0 {
        String::new()
    } else {
        format!(" ({:.0}%)", 100.0 * rejected as f64 / count as f64)
    };
    let text = format!(
        "{} → {}: {count} samples, {rejected} rejected{share} · Enter filters",
        printable(&app.class_name(label)),
        printable(&app.class_name(pred)),
    );
    Line::from(Span::styled(
        truncate_right(&text, width),
        Style::new().fg(app.theme.highlight),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_fit_their_column() {
        assert_eq!(cell_text(388, 12, 9), " 388   3%");
        assert_eq!(cell_text(388, 0, 6), "  388 ");
        assert_eq!(cell_text(8, 8, 6), "    8█");
        assert_eq!(cell_text(8, 1, 6), "    8▁");
        assert_eq!(cell_text(0, 0, 5), "    ·");
        assert_eq!(cell_text(12_345, 1, 6), "  12k▁");
        assert_eq!(short_count(1_234), "1.2k");
        assert_eq!(short_count(2_500_000), "2.5M");
    }
}

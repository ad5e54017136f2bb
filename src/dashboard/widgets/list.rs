//! The sample list. Only the visible window of rows is built, whatever the number of samples.

use ratatui::layout::{Constraint, Margin, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Cell, Paragraph, Row, Scrollbar, ScrollbarOrientation, ScrollbarState, Table, TableState,
};
use ratatui::Frame;

use super::{panel, truncate_left, truncate_right};
use crate::dashboard::app::App;
use crate::dashboard::layout::inner;
use crate::dashboard::session::Verdict;
use crate::support::text::printable;

const P_WIDTH: u16 = 5;
/// The selected row's marker (visible without colours too).
const CURSOR: &str = "›";
/// Before the path of a sample whose file was truncated.
const TRUNCATED: &str = "⚠ ";

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let title = format!(" Samples {}/{} ", app.view.len(), app.data.records.len());
    let block = panel(title, theme);
    let body = inner(area);
    frame.render_widget(block, area);
    if body.height < 2 {
        return;
    }
    if app.view.is_empty() {
        let why = if app.data.records.is_empty() {
            if app.is_scoring() {
                "waiting for the first scored samples…"
            } else {
                "no samples"
            }
        } else {
            "no sample matches the filter and search (f: filter, Esc: clear search)"
        };
        frame.render_widget(
            Paragraph::new(why)
                .style(Style::new().fg(theme.muted))
                .wrap(ratatui::widgets::Wrap { trim: true }),
            body,
        );
        return;
    }

    let rows_shown = (body.height - 1) as usize;
    let offset = visible_offset(app.list_offset, app.selected, rows_shown, app.view.len());
    // Columns: cursor, mark, path, label, pred, P(c), annotation, with 5 one-cell gaps; the
    // two class columns get a quarter of the free width each, the path the rest.
    let free = body.width.saturating_sub(1 + 1 + P_WIDTH + 1 + 5);
    let class_width = (free / 4).clamp(6, 14);
    let path_width = free.saturating_sub(2 * class_width).max(4) as usize;

    let rows: Vec<Row> = (offset..(offset + rows_shown).min(app.view.len()))
        .filter_map(|pos| app.record(pos))
        .map(|r| {
            let accepted = app.accepted(r);
            let mark = if accepted {
                Span::styled("●", Style::new().fg(theme.accept))
            } else {
                Span::styled("○", Style::new().fg(theme.reject))
            };
            let label = match r.label {
                Some(l) => Span::raw(truncate_right(&app.class_name(l), class_width as usize)),
                None => Span::styled("—", Style::new().fg(theme.muted)),
            };
            let pred_style = match r.correct() {
                Some(true) => Style::new().fg(theme.correct),
                Some(false) => Style::new().fg(theme.wrong),
                None => Style::new().fg(theme.text),
            };
            let annotation = app.annotation(&r.id).map_or(" ", |a| match a.verdict {
                Some(Verdict::ModelError) => "M",
                Some(Verdict::LabelError) => "L",
                Some(Verdict::Ambiguous) => "A",
                Some(Verdict::Fine) => "F",
                None => "✎",
            });
            // A truncated file is marked before its path (the details panel says what it means).
            let path = if r.truncated {
                Line::from(vec![
                    Span::styled(TRUNCATED, Style::new().fg(theme.error)),
                    Span::raw(truncate_left(
                        &printable(&r.id),
                        path_width.saturating_sub(2),
                    )),
                ])
            } else {
                Line::from(truncate_left(&printable(&r.id), path_width))
            };
            Row::new(vec![
                Cell::from(mark),
                Cell::from(path),
                Cell::from(label),
                Cell::from(Span::styled(
                    truncate_right(&app.class_name(r.pred), class_width as usize),
                    pred_style,
                )),
                Cell::from(format!("{:.3}", r.p_correct)),
                Cell::from(Span::styled(annotation, Style::new().fg(theme.highlight))),
            ])
        })
        .collect();

    let header = Row::new(vec!["", "path", "label", "pred", "P(c)", "✎"])
        .style(Style::new().fg(theme.muted).add_modifier(Modifier::BOLD));
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(class_width),
            Constraint::Length(class_width),
            Constraint::Length(P_WIDTH),
            Constraint::Length(1),
        ],
    )
    .header(header)
    .column_spacing(1)
    .highlight_symbol(CURSOR)
    .style(Style::new().fg(theme.text).bg(theme.background))
    .row_highlight_style(
        Style::new()
            .bg(theme.selection)
            .fg(theme.selection_text)
            .add_modifier(Modifier::BOLD),
    );
    let mut state = TableState::new().with_selected(Some(app.selected - offset));
    frame.render_stateful_widget(table, body, &mut state);

    if app.view.len() > rows_shown {
        let mut scroll = ScrollbarState::new(app.view.len()).position(app.selected);
        frame.render_stateful_widget(
            Scrollbar::new(ScrollbarOrientation::VerticalRight)
                .style(Style::new().fg(theme.border)),
            area.inner(Margin::new(0, 1)),
            &mut scroll,
        );
    }
}

/// The first row to show: the app's offset, moved so the cursor is visible (the app keeps it
/// right for its own terminal size; this guards any other size).
fn visible_offset(offset: usize, selected: usize, rows: usize, len: usize) -> usize {
    let rows = rows.max(1);
    let offset = if selected < offset {
        selected
    } else if selected >= offset + rows {
        selected + 1 - rows
    } else {
        offset
    };
    offset.min(len.saturating_sub(rows))
}

#[cfg(test)]
mod tests {
    use super::visible_offset;

    #[test]
    fn offset_follows_the_cursor() {
        assert_eq!(visible_offset(0, 5, 10, 100), 0);
        assert_eq!(visible_offset(0, 15, 10, 100), 6);
        assert_eq!(visible_offset(20, 15, 10, 100), 15);
        assert_eq!(visible_offset(95, 99, 10, 100), 90);
    }
}

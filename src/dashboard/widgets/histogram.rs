//! Histogram of P(correct) for correct and for wrong predictions. Each class is shown as its
//! share per bin, so the (usually few) errors are as visible as the correct predictions.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph, Wrap};
use ratatui::Frame;

use super::panel;
use crate::dashboard::app::App;
use crate::dashboard::derived::{histogram_bin, HISTOGRAM_BINS};
use crate::dashboard::layout::inner;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let d = &app.derived;
    let (n_correct, n_wrong): (usize, usize) = (
        d.histogram_correct.iter().sum(),
        d.histogram_wrong.iter().sum(),
    );
    let title = Line::from(vec![
        Span::raw(" P(correct) · "),
        Span::styled(
            format!("right {n_correct}"),
            Style::new().fg(theme.chart_correct),
        ),
        Span::raw(" · "),
        Span::styled(
            format!("wrong {n_wrong}"),
            Style::new().fg(theme.chart_wrong),
        ),
        Span::raw(" "),
    ]);
    let block = panel(title, theme).title_bottom(Line::styled(
        " share of each per bin ",
        Style::new().fg(theme.muted),
    ));
    let inside = inner(area);
    if d.labelled == 0 {
        frame.render_widget(panel(" P(correct) histogram ", theme), area);
        frame.render_widget(
            Paragraph::new(
                "no labels: the histogram of right and wrong predictions needs labelled samples",
            )
            .style(Style::new().fg(theme.muted))
            .wrap(Wrap { trim: true }),
            inside,
        );
        return;
    }
    let share = |count: usize, total: usize| (1000 * count).checked_div(total).unwrap_or(0) as u64;
    let threshold_bin = histogram_bin(app.threshold);
    let groups: Vec<BarGroup> = (0..HISTOGRAM_BINS)
        .map(|b| {
            let label_style = if b == threshold_bin {
                Style::new().fg(theme.marker).add_modifier(Modifier::BOLD)
            } else {
                Style::new().fg(theme.muted)
            };
            let label = if b == 0 {
                "0".to_string()
            } else {
                format!(".{b}")
            };
            BarGroup::default()
                .label(Line::styled(label, label_style))
                .bars(&[
                    Bar::default()
                        .value(share(d.histogram_correct[b], n_correct))
                        .text_value("")
                        .style(Style::new().fg(theme.chart_correct)),
                    Bar::default()
                        .value(share(d.histogram_wrong[b], n_wrong))
                        .text_value("")
                        .style(Style::new().fg(theme.chart_wrong)),
                ])
        })
        .collect();
    // Ten groups of two bars with one-cell gaps between groups.
    let gaps = HISTOGRAM_BINS as u16 - 1;
    let bar_width = (inside.width.saturating_sub(gaps) / (2 * HISTOGRAM_BINS as u16)).max(1);
    let mut chart = BarChart::default()
        .block(block)
        .bar_width(bar_width)
        .bar_gap(0)
        .group_gap(1)
        .style(Style::new().fg(theme.text).bg(theme.background));
    for group in groups {
        chart = chart.data(group);
    }
    frame.render_widget(chart, area);
}

//! Risk–coverage curves of P(correct) and MSP on the labelled samples, with the current
//! threshold's operating point marked.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};
use ratatui::Frame;

use super::panel;
use crate::dashboard::app::App;
use crate::dashboard::layout::inner;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let labelled = app.derived.labelled;
    let title = Line::from(vec![
        Span::raw(" Risk–coverage · "),
        Span::styled("P(correct)", Style::new().fg(theme.chart_curve)),
        Span::raw(" vs "),
        Span::styled("MSP", Style::new().fg(theme.muted)),
        Span::raw(" "),
    ]);
    let block = panel(title, theme);
    if labelled == 0 {
        frame.render_widget(block, area);
        frame.render_widget(
            Paragraph::new("no labels: the risk–coverage curve needs labelled samples")
                .style(Style::new().fg(theme.muted))
                .wrap(Wrap { trim: true }),
            inner(area),
        );
        return;
    }

    // The operating point, on the labelled rows like the curves.
    let s = &app.stats;
    let accepted = s.accepted_right + s.accepted_wrong;
    let coverage = accepted as f64 / labelled as f64;
    let risk = if accepted > 0 {
        s.accepted_wrong as f64 / accepted as f64
    } else {
        0.0
    };
    let top = app
        .derived
        .risk_p_correct
        .iter()
        .chain(&app.derived.risk_msp)
        .map(|p| p.1)
        .fold(0.05f64, f64::max)
        .min(1.0);
    let marker_line = [(coverage, 0.0), (coverage, top)];
    let point = [(coverage, risk)];

    let datasets = vec![
        Dataset::default()
            .name("MSP")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(theme.muted))
            .data(&app.derived.risk_msp),
        Dataset::default()
            .name("P(correct)")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(theme.chart_curve))
            .data(&app.derived.risk_p_correct),
        Dataset::default()
            .name(format!("t={:.2}", app.threshold))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(theme.marker))
            .data(&marker_line),
        Dataset::default()
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(Style::new().fg(theme.marker))
            .data(&point),
    ];
    let label = |t: String| Span::styled(t, Style::new().fg(theme.muted));
    let chart = Chart::new(datasets)
        .block(block)
        // The title names the curves; a legend would cover them.
        .hidden_legend_constraints((Constraint::Length(0), Constraint::Length(0)))
        .style(Style::new().fg(theme.text).bg(theme.background))
        .x_axis(
            Axis::default()
                .title(label("coverage".into()))
                .bounds([0.0, 1.0])
                .labels([label("0".into()), label("0.5".into()), label("1".into())])
                .style(Style::new().fg(theme.border)),
        )
        .y_axis(
            Axis::default()
                .title(label("risk".into()))
                .bounds([0.0, top])
                .labels([label("0".into()), label(format!("{top:.2}"))])
                .style(Style::new().fg(theme.border)),
        );
    frame.render_widget(chart, area);
}

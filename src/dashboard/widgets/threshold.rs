//! The threshold slider with the live numbers at the current threshold, and the AUROC / AURC
//! summary of P(correct) against the MSP baseline.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{decimal, panel, percent};
use crate::dashboard::app::App;
use crate::dashboard::layout::{column_of_threshold, inner, Screen};

pub fn render(frame: &mut Frame, screen: &Screen, app: &App) {
    let theme = &app.theme;
    let area = screen.threshold;
    frame.render_widget(panel(" Threshold · accept if P(correct) ≥ t ", theme), area);
    let inside = inner(area);
    if inside.height == 0 {
        return;
    }

    let mut lines = vec![slider(app, screen.slider_track())];
    let s = &app.stats;
    let muted = Style::new().fg(theme.muted);
    let text = Style::new().fg(theme.text).add_modifier(Modifier::BOLD);
    let labelled = app.derived.labelled > 0;
    let coverage = format!("{} ({}/{})", percent(s.coverage), s.accepted, s.total);
    let no_labels = Span::styled("trusted accuracy: no labels", muted);

    if screen.compact {
        lines.push(if labelled {
            Line::from(vec![
                Span::styled("trusted acc ", muted),
                Span::styled(percent(s.trusted_accuracy), text),
                Span::styled(" · coverage ", muted),
                Span::styled(percent(s.coverage), text),
                Span::styled(" · accepted-wrong ", muted),
                Span::styled(s.accepted_wrong.to_string(), Style::new().fg(theme.wrong)),
                Span::styled(" · rejected-right ", muted),
                Span::styled(s.rejected_right.to_string(), Style::new().fg(theme.correct)),
            ])
        } else {
            Line::from(vec![
                Span::styled("coverage ", muted),
                Span::styled(coverage, text),
                Span::raw(" · "),
                no_labels,
            ])
        });
        lines.push(summary_line(app));
    } else {
        if labelled {
            lines.push(Line::from(vec![
                Span::styled("trusted accuracy ", muted),
                Span::styled(percent(s.trusted_accuracy), text),
                Span::styled(
                    format!(
                        " ({}/{})",
                        s.accepted_right,
                        s.accepted_right + s.accepted_wrong
                    ),
                    muted,
                ),
            ]));
        } else {
            lines.push(Line::from(no_labels));
        }
        lines.push(Line::from(vec![
            Span::styled("coverage ", muted),
            Span::styled(coverage, text),
        ]));
        if labelled {
            lines.push(Line::from(vec![
                Span::styled("accepted-wrong ", muted),
                Span::styled(s.accepted_wrong.to_string(), Style::new().fg(theme.wrong)),
                Span::styled(" · rejected-right ", muted),
                Span::styled(s.rejected_right.to_string(), Style::new().fg(theme.correct)),
            ]));
        }
        lines.extend(summary_lines(app));
        lines.extend(certificate_lines(app));
    }
    frame.render_widget(Paragraph::new(lines), inside);
}

/// `t 0.620 ───────●━━━━━━`: rejected scores left of the knob, accepted ones right of it.
fn slider(app: &App, track: Rect) -> Line<'static> {
    let theme = &app.theme;
    let width = track.width as usize;
    let knob = (column_of_threshold(track, app.threshold) - track.x) as usize;
    let mut spans = vec![Span::styled(
        format!("t {:.3} ", app.threshold),
        Style::new().fg(theme.marker).add_modifier(Modifier::BOLD),
    )];
    if width > 0 {
        spans.push(Span::styled(
            "─".repeat(knob),
            Style::new().fg(theme.reject),
        ));
        spans.push(Span::styled("●", Style::new().fg(theme.marker)));
        spans.push(Span::styled(
            "━".repeat(width.saturating_sub(knob + 1)),
            Style::new().fg(theme.accept),
        ));
    }
    Line::from(spans)
}

/// One-line summary for the compact layout.
fn summary_line(app: &App) -> Line<'static> {
    let muted = Style::new().fg(app.theme.muted);
    let text = Style::new().fg(app.theme.text);
    match &app.derived.summary {
        None => Line::from(Span::styled("AUROC, AURC: no labels", muted)),
        Some(s) => Line::from(vec![
            Span::styled("AUROC ", muted),
            Span::styled(decimal(s.auroc_p_correct), text),
            Span::styled(
                format!(" (MSP {}, chance 0.5)", decimal(s.auroc_msp)),
                muted,
            ),
            Span::styled(" · AURC‰ ", muted),
            Span::styled(per_mille(s.aurc_p_correct), text),
            Span::styled(
                format!(
                    " (MSP {}, best {})",
                    per_mille(s.aurc_msp),
                    per_mille(Some(s.aurc_optimal))
                ),
                muted,
            ),
        ]),
    }
}

/// The summary over three lines for the full layout.
fn summary_lines(app: &App) -> Vec<Line<'static>> {
    let muted = Style::new().fg(app.theme.muted);
    let text = Style::new().fg(app.theme.text).add_modifier(Modifier::BOLD);
    let Some(s) = &app.derived.summary else {
        return vec![Line::from(Span::styled("AUROC, AURC: no labels", muted))];
    };
    vec![
        Line::from(vec![
            Span::styled("AUROC P(c) ", muted),
            Span::styled(decimal(s.auroc_p_correct), text),
            Span::styled(
                format!(" · MSP {} · chance 0.500", decimal(s.auroc_msp)),
                muted,
            ),
        ]),
        Line::from(vec![
            Span::styled("AURC‰ P(c) ", muted),
            Span::styled(per_mille(s.aurc_p_correct), text),
            Span::styled(
                format!(
                    " · MSP {} · best {}",
                    per_mille(s.aurc_msp),
                    per_mille(Some(s.aurc_optimal))
                ),
                muted,
            ),
        ]),
        Line::from(Span::styled(
            format!(
                "{} labelled · accuracy {}",
                s.labelled,
                percent(Some(s.accuracy))
            ),
            muted,
        )),
    ]
}

/// AURC in per mille with three significant digits: on a good classifier it is around 1e-3,
/// where three decimals would show every score as 0.000.
fn per_mille(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(v) => {
            let m = v * 1e3;
            let digits = if m == 0.0 {
                2
            } else {
                (2 - m.abs().log10().floor() as i32).clamp(0, 6) as usize
            };
            format!("{m:.digits$}")
        }
    }
}

/// The certified threshold from the artifacts and the Clopper–Pearson bound of the selective
/// risk at the slider's threshold, both on the calibration rows.
fn certificate_lines(app: &App) -> Vec<Line<'static>> {
    let muted = Style::new().fg(app.theme.muted);
    let text = Style::new().fg(app.theme.text);
    let Some(c) = &app.data.calibration else {
        return Vec::new();
    };
    let (accepted, errors, bound) =
        crate::reliability::certify::bound_at(&c.p_correct, &c.correct, app.threshold, c.delta);
    vec![
        Line::from(vec![
            Span::styled("bound at t ", muted),
            Span::styled(format!("risk ≤ {}", percent(Some(bound))), text),
            Span::styled(
                format!(
                    " ({:.0} % conf.; {accepted} acc., {errors} err. on calibration rows)",
                    (1.0 - c.delta) * 100.0
                ),
                muted,
            ),
        ]),
        Line::from(Span::styled(format!("certified: {}", c.statement), muted)),
    ]
}

#[cfg(test)]
mod tests {
    use super::per_mille;

    #[test]
    fn per_mille_keeps_three_significant_digits() {
        assert_eq!(per_mille(Some(0.00081)), "0.810");
        assert_eq!(per_mille(Some(0.0305)), "30.5");
        assert_eq!(per_mille(Some(0.000069)), "0.0690");
        assert_eq!(per_mille(None), "n/a");
    }
}

//! The selected sample: verdict at the threshold, whether its file was truncated, label and
//! prediction, top-5 class probabilities, the named diagnostics and the user's annotation.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{panel, scalar, truncate_left, truncate_right};
use crate::dashboard::app::App;
use crate::dashboard::layout::inner;
use crate::dashboard::session::Verdict;
use crate::reliability::records::SampleRecord;
use crate::support::text::printable;

/// Classes shown with probability bars.
const TOP_K: usize = 5;

/// From this many lines on, label and prediction get a line each and the diagnostics one
/// line per value.
const ROOMY: usize = 15;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    frame.render_widget(panel(" Details ", theme), area);
    let inside = inner(area);
    if inside.width == 0 || inside.height == 0 {
        return;
    }
    let Some(record) = app.selected_record() else {
        frame.render_widget(
            Paragraph::new("no sample selected").style(Style::new().fg(theme.muted)),
            inside,
        );
        return;
    };
    let lines = lines(app, record, inside.width as usize, inside.height as usize);
    frame.render_widget(Paragraph::new(lines), inside);
}

fn lines(app: &App, r: &SampleRecord, width: usize, height: usize) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let muted = Style::new().fg(theme.muted);
    let mut out = Vec::new();

    let verdict = if app.accepted(r) {
        Span::styled(
            "ACCEPT",
            Style::new().fg(theme.accept).add_modifier(Modifier::BOLD),
        )
    } else {
        Span::styled(
            "REJECT",
            Style::new().fg(theme.reject).add_modifier(Modifier::BOLD),
        )
    };
    out.push(Line::from(vec![
        Span::styled("P(correct) ", muted),
        Span::styled(
            format!("{:.3}", r.p_correct),
            Style::new().fg(theme.text).add_modifier(Modifier::BOLD),
        ),
        Span::raw("  "),
        verdict,
        Span::styled(format!(" at t={:.3}", app.threshold), muted),
    ]));
    if r.truncated {
        out.push(Line::from(Span::styled(
            truncate_right(
                "⚠ truncated file: scored from a picture the decoder completed",
                width,
            ),
            Style::new().fg(theme.error).add_modifier(Modifier::BOLD),
        )));
    }

    let label = r
        .label
        .map_or_else(|| "—".to_string(), |l| app.class_name(l));
    let pred = app.class_name(r.pred);
    let (outcome, outcome_style) = match r.correct() {
        Some(true) => ("✓ right", Style::new().fg(theme.correct)),
        Some(false) => ("✗ wrong", Style::new().fg(theme.wrong)),
        None => ("unlabelled", muted),
    };
    let one_line = format!("label {label}  pred {pred}  {outcome}");
    if one_line.chars().count() <= width {
        out.push(Line::from(vec![
            Span::styled("label ", muted),
            Span::raw(label),
            Span::styled("  pred ", muted),
            Span::styled(pred, outcome_style),
            Span::raw("  "),
            Span::styled(outcome, outcome_style),
        ]));
    } else if height >= ROOMY {
        out.push(Line::from(vec![
            Span::styled("label ", muted),
            Span::raw(label),
        ]));
        out.push(Line::from(vec![
            Span::styled("pred  ", muted),
            Span::styled(pred, outcome_style),
            Span::raw("  "),
            Span::styled(outcome, outcome_style),
        ]));
    } else {
        // Narrow and short: the prediction is the first probability bar below.
        out.push(Line::from(vec![
            Span::styled("label ", muted),
            Span::raw(label),
            Span::raw("  "),
            Span::styled(outcome, outcome_style),
        ]));
    }

    out.extend(top_classes(app, r, width));

    let remaining = height.saturating_sub(out.len());
    let d = &r.diagnostics;
    if remaining >= 6 {
        for (name, value) in [
            ("entropy", d.entropy),
            ("logit gap", d.logit_gap),
            ("MC variance", d.mc_variance),
            ("grad sensitivity", d.grad_sensitivity),
            ("k-NN distance", d.knn_distance),
            ("trust score", d.trust_score),
        ] {
            out.push(Line::from(vec![
                Span::styled(format!("{name:<18}"), muted),
                Span::raw(scalar(value)),
            ]));
        }
    } else {
        for pairs in [
            [
                ("ent", d.entropy),
                ("gap", d.logit_gap),
                ("mcv", d.mc_variance),
            ],
            [
                ("grad", d.grad_sensitivity),
                ("kNN", d.knn_distance),
                ("trust", d.trust_score),
            ],
        ] {
            let mut spans = Vec::new();
            for (i, (name, value)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    spans.push(Span::styled(" · ", muted));
                }
                spans.push(Span::styled(format!("{name} "), muted));
                spans.push(Span::raw(scalar(value)));
            }
            out.push(Line::from(spans));
        }
    }

    // The annotation, then the full path, as room allows.
    let annotation = app.annotation(&r.id);
    let mut extra = Vec::new();
    let suspect = app
        .view
        .get(app.selected)
        .and_then(|&i| app.derived.rows.get(i as usize))
        .is_some_and(|row| row.suspect);
    // The score orders the label-issue sort; here the suggestion matters more.
    if suspect {
        extra.push(Line::from(Span::styled(
            truncate_right(
                &format!("⚑ suspected label error → {}", app.class_name(r.pred)),
                width,
            ),
            Style::new().fg(theme.wrong),
        )));
    }
    match annotation {
        Some(a) => {
            let highlight = Style::new().fg(theme.highlight);
            if let Some(v) = a.verdict {
                extra.push(Line::from(vec![
                    Span::styled("verdict ", muted),
                    Span::styled(Verdict::label(v), highlight),
                ]));
            }
            if !a.tags.is_empty() {
                extra.push(Line::from(vec![
                    Span::styled("tags ", muted),
                    Span::styled(
                        truncate_right(&a.tags.join(", "), width.saturating_sub(5)),
                        highlight,
                    ),
                ]));
            }
            if !a.note.is_empty() {
                extra.push(Line::from(vec![
                    Span::styled("note ", muted),
                    Span::styled(truncate_right(&a.note, width.saturating_sub(5)), highlight),
                ]));
            }
        }
        None => extra.push(Line::from(Span::styled(
            "t tags · v verdict · n note",
            muted,
        ))),
    }
    extra.push(Line::from(Span::styled(
        truncate_left(&printable(&r.id), width),
        muted,
    )));
    for line in extra {
        if out.len() >= height {
            break;
        }
        out.push(line);
    }
    out
}

/// Up to five most probable classes, as bars over [0, 1]; the true class is marked.
fn top_classes(app: &App, r: &SampleRecord, width: usize) -> Vec<Line<'static>> {
    let theme = &app.theme;
    if r.probs.is_empty() {
        return vec![Line::from(Span::styled(
            "no class probabilities",
            Style::new().fg(theme.muted),
        ))];
    }
    let mut classes: Vec<usize> = (0..r.probs.len()).collect();
    classes.sort_by(|&a, &b| r.probs[b].total_cmp(&r.probs[a]).then(a.cmp(&b)));
    let name_width = (width / 3).clamp(6, 16);
    let bar_width = width.saturating_sub(name_width + 1 + 6).max(1);
    classes
        .into_iter()
        .take(TOP_K)
        .map(|c| {
            let p = r.probs[c];
            let is_label = r.label == Some(c as u16);
            let colour = if is_label {
                theme.correct
            } else {
                theme.chart_curve
            };
            let name = truncate_right(&app.class_name(c as u16), name_width);
            let name_style = if is_label {
                Style::new().fg(theme.correct).add_modifier(Modifier::BOLD)
            } else {
                Style::new().fg(theme.text)
            };
            Line::from(vec![
                Span::styled(format!("{name:<name_width$} "), name_style),
                Span::styled(bar(p, bar_width), Style::new().fg(colour)),
                Span::styled(format!(" {p:>5.3}"), Style::new().fg(theme.muted)),
            ])
        })
        .collect()
}

/// A horizontal bar of `fraction` × `width` cells, in eighths, padded to `width`.
pub fn bar(fraction: f32, width: usize) -> String {
    const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let f = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let eighths = (f * width as f32 * 8.0).round() as usize;
    let full = eighths / 8;
    let mut s = "█".repeat(full);
    s.push_str(PARTIAL[eighths % 8]);
    let used = full + usize::from(eighths % 8 != 0);
    s.push_str(&" ".repeat(width.saturating_sub(used)));
    s
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_have_a_fixed_width() {
        assert_eq!(bar(0.0, 4), "    ");
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 4), "██  ");
        assert_eq!(bar(0.5625, 4), "██▎ ");
        assert_eq!(bar(f32::NAN, 2), "  ");
        assert_eq!(bar(7.0, 2), "██");
    }
}

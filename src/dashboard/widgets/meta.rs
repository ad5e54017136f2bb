//! Sparklines of the selected sample's meta-vector: all of it, and its first 60 dimensions
//! (as the original system plotted), with the feature families of the layout underneath.
//!
//! Meta-features mix signs and scales (probabilities, logits, distances, PCA scores), so the
//! vector is min–max normalised for display; the panel title says so and shows the range.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, SparklineBar};
use ratatui::Frame;

use super::{panel, scalar, truncate_right};
use crate::dashboard::app::App;
use crate::dashboard::layout::inner;
use crate::dashboard::theme::Theme;
use crate::reliability::records::FeatureLayout;

/// Dimensions of the second sparkline.
pub const FIRST_DIMS: usize = 60;

/// Bar heights are per-mille of the vector's range.
const SCALE: u64 = 1000;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    frame.render_widget(
        panel(" Meta-vector · min–max normalised per vector ", theme),
        area,
    );
    let inside = inner(area);
    if inside.width == 0 || inside.height == 0 {
        return;
    }
    let muted = Style::new().fg(theme.muted);
    let Some(record) = app.selected_record() else {
        frame.render_widget(Paragraph::new("no sample selected").style(muted), inside);
        return;
    };
    if record.meta.is_empty() {
        frame.render_widget(Paragraph::new("no meta-features").style(muted), inside);
        return;
    }
    let (values, range) = normalise(&record.meta);
    let n = values.len();
    let range_text = range.map_or_else(
        || "no finite values".to_string(),
        |(lo, hi)| format!("min {} max {}", scalar(lo), scalar(hi)),
    );
    let layout = &app.data.layout;
    let mismatch = if layout.dim() != n {
        format!(" · layout has {} dims", layout.dim())
    } else {
        String::new()
    };
    let first = n.min(FIRST_DIMS);

    // Stacked when there is height for it, side by side otherwise.
    let [a, b] = if inside.height >= 10 {
        Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(inside)
    } else {
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
            .spacing(2)
            .areas(inside)
    };
    section(
        frame,
        a,
        theme,
        layout,
        &values,
        format!("all {n} dims · {range_text}{mismatch}"),
    );
    section(
        frame,
        b,
        theme,
        layout,
        &values[..first],
        format!("first {first} dims"),
    );
}

/// Values scaled to 0..=SCALE between the vector's finite min and max (a constant vector sits
/// at half height); non-finite values are absent bars. Also returns the (min, max).
fn normalise(meta: &[f32]) -> (Vec<Option<u64>>, Option<(f32, f32)>) {
    let finite = meta.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f32::INFINITY, f32::min);
    let hi = finite.fold(f32::NEG_INFINITY, f32::max);
    if lo > hi {
        return (vec![None; meta.len()], None);
    }
    let span = (hi - lo) as f64;
    let values = meta
        .iter()
        .map(|&v| {
            v.is_finite().then(|| {
                if span > 0.0 {
                    (((v - lo) as f64 / span) * SCALE as f64).round() as u64
                } else {
                    SCALE / 2
                }
            })
        })
        .collect();
    (values, Some((lo, hi)))
}

/// One sparkline with a caption above and the families below. When there are more
/// dimensions than columns, each column shows the largest value of its dimensions.
fn section(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    layout: &FeatureLayout,
    values: &[Option<u64>],
    caption: String,
) {
    if area.height < 3 || area.width == 0 {
        return;
    }
    let [caption_area, spark_area, family_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(truncate_right(&caption, area.width as usize))
            .style(Style::new().fg(theme.muted)),
        caption_area,
    );
    let columns = columns(values.len(), area.width as usize);
    let bars: Vec<SparklineBar> = columns
        .iter()
        .map(|range| values[range.clone()].iter().flatten().max().copied())
        .map(SparklineBar::from)
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(bars)
            .max(SCALE)
            .style(Style::new().fg(theme.chart_curve)),
        spark_area,
    );
    frame.render_widget(
        Paragraph::new(families(layout, &columns, theme)),
        family_area,
    );
}

/// Dimension ranges shown by each column: one per column, or buckets when they do not fit.
fn columns(dims: usize, width: usize) -> Vec<std::ops::Range<usize>> {
    if dims <= width {
        (0..dims).map(|d| d..d + 1).collect()
    } else {
        (0..width)
            .map(|c| c * dims / width..((c + 1) * dims / width).max(c * dims / width + 1))
            .collect()
    }
}

/// A line naming the family under each run of columns, alternating colours between runs.
fn families(
    layout: &FeatureLayout,
    columns: &[std::ops::Range<usize>],
    theme: &Theme,
) -> Line<'static> {
    let mut spans = Vec::new();
    let mut start = 0;
    let family_at = |c: usize| layout.family_of(columns[c].start).unwrap_or("?");
    while start < columns.len() {
        let family = family_at(start);
        let mut end = start + 1;
        while end < columns.len() && family_at(end) == family {
            end += 1;
        }
        let width = end - start;
        let text = if family.chars().count() <= width {
            format!("{family:<width$}")
        } else if width >= 2 {
            format!("{:<width$}", truncate_right(family, width))
        } else {
            "▏".to_string()
        };
        let colour = if spans.len() % 2 == 0 {
            theme.text
        } else {
            theme.muted
        };
        spans.push(Span::styled(
            text,
            Style::new().fg(colour).bg(theme.background),
        ));
        start = end;
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_handles_sign_scale_and_nan() {
        let (v, range) = normalise(&[-2.0, 0.0, 2.0, f32::NAN]);
        assert_eq!(v, vec![Some(0), Some(500), Some(1000), None]);
        assert_eq!(range, Some((-2.0, 2.0)));
        let (v, _) = normalise(&[3.0, 3.0]);
        assert_eq!(v, vec![Some(500), Some(500)]);
        let (v, range) = normalise(&[f32::NAN]);
        assert_eq!((v, range), (vec![None], None));
    }

    #[test]
    fn columns_cover_every_dimension_once() {
        for (dims, width) in [(5, 10), (100, 37), (60, 60), (61, 60)] {
            let cols = columns(dims, width);
            assert_eq!(cols.len(), dims.min(width));
            assert_eq!(cols[0].start, 0);
            assert_eq!(cols.last().unwrap().end, dims);
            for w in cols.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
        }
    }
}

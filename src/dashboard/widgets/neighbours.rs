//! The nearest training images of the selected sample in the k-NN bank's space: thumbnails
//! (encoded by the preview worker) with their class and distance, the ones of another class
//! than the prediction marked ✗. A training image not on this machine is shown as missing.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use ratatui_image::Image;

use super::{centered, panel, truncate_right};
use crate::dashboard::app::App;
use crate::dashboard::inspect::{thumbnail_key, tiles, CAPTION_ROWS};
use crate::dashboard::layout::inner;
use crate::reliability::neighbours::{Neighbour, NeighbourImage, NO_PATHS_HINT};
use crate::support::text::printable;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    frame.render_widget(panel(" Nearest training · ✗ ≠ predicted ", theme), area);
    let inside = inner(area);
    if inside.width == 0 || inside.height == 0 {
        return;
    }
    let text = |text: String, colour| {
        Paragraph::new(text)
            .style(Style::new().fg(colour))
            .wrap(Wrap { trim: true })
    };
    if app.mode.has_popup() {
        frame.render_widget(text("(hidden under the popup)".into(), theme.muted), inside);
        return;
    }
    let Some(record) = app.selected_record() else {
        frame.render_widget(text("no sample selected".into(), theme.muted), inside);
        return;
    };
    let list = match app.inspect.neighbours(&record.id) {
        Some(Ok(list)) => list,
        Some(Err(error)) => {
            frame.render_widget(text(printable(error).into_owned(), theme.error), inside);
            return;
        }
        None if !app.inspect.available => {
            frame.render_widget(
                text(
                    "neighbours unavailable: no model in this view".into(),
                    theme.muted,
                ),
                inside,
            );
            return;
        }
        None => {
            frame.render_widget(text("finding the neighbours…".into(), theme.muted), inside);
            return;
        }
    };
    if list.is_empty() {
        frame.render_widget(
            text(
                "no neighbours: the meta-vector has no PCA block".into(),
                theme.muted,
            ),
            inside,
        );
        return;
    }
    let caption = |n: &Neighbour, width: usize| -> [Line<'static>; 2] {
        let other = n.label != record.pred;
        let (mark, colour) = if other {
            ("✗ ", theme.wrong)
        } else {
            ("", theme.correct)
        };
        let name = format!("{mark}{}", app.class_name(n.label));
        [
            Line::from(Span::styled(
                truncate_right(&name, width),
                Style::new().fg(colour),
            )),
            Line::from(Span::styled(
                truncate_right(&format!("d {:.2}", n.distance), width),
                Style::new().fg(theme.muted),
            )),
        ]
    };
    if list.iter().any(|n| n.image == NeighbourImage::Unknown) {
        // Artifacts without paths: the classes and distances, and how to get the pictures.
        let mut lines = vec![Line::from(Span::styled(
            NO_PATHS_HINT,
            Style::new().fg(theme.muted),
        ))];
        for n in list {
            let [name, distance] = caption(n, inside.width as usize / 2);
            lines.push(Line::from(
                [name.spans, vec![Span::raw("  ")], distance.spans].concat(),
            ));
        }
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), inside);
        return;
    }
    for (thumb, n) in tiles(inside, list.len()).into_iter().zip(list) {
        match &n.image {
            NeighbourImage::Found(file) => {
                let key = thumbnail_key(file, thumb.width, thumb.height);
                match app.previews.get(&key) {
                    Some(Ok(image)) => {
                        let size = image.size();
                        let at = centered(thumb, size.width, size.height);
                        frame.render_widget(Image::new(image), at);
                    }
                    Some(Err(_)) => {
                        frame.render_widget(text("unreadable".into(), theme.muted), thumb)
                    }
                    None => frame.render_widget(text("…".into(), theme.muted), thumb),
                }
            }
            NeighbourImage::Missing(_) => {
                frame.render_widget(text("missing".into(), theme.muted), thumb)
            }
            NeighbourImage::Unknown => {}
        }
        let below = Rect {
            y: thumb.bottom(),
            height: CAPTION_ROWS,
            ..thumb
        };
        frame.render_widget(
            Paragraph::new(caption(n, thumb.width as usize).to_vec()),
            below,
        );
    }
}

//! The preview with its saliency overlay (`x`): the blended picture the inspection worker
//! encoded, and a legend (the colour ramp of |∂ log p / ∂x|, the class, how long it took). Until the overlay
//! arrives the plain picture stays, with what is being computed under it.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use ratatui_image::Image;

use super::{centered, truncate_right};
use crate::dashboard::app::App;
use crate::dashboard::inspect::{overlay_areas, Overlay, SaliencyKey};
use crate::model::saliency;
use crate::support::text::printable;

pub fn render(frame: &mut Frame, inside: Rect, app: &App, key: &SaliencyKey) {
    let theme = &app.theme;
    let (picture, legend) = overlay_areas(inside);
    let role = if app.inspect.overlay == Overlay::Labelled {
        "label"
    } else {
        "pred"
    };
    let class = app.class_name(key.class);
    let caption = match app.inspect.saliency(key) {
        Some(Ok((image, took))) => {
            let size = image.size();
            let at = centered(picture, size.width, size.height);
            frame.render_widget(Image::new(image), at);
            format!("{class} ({role}) {:.1}s", took.as_secs_f64())
        }
        Some(Err(error)) => {
            frame.render_widget(
                Paragraph::new(printable(error).into_owned())
                    .style(Style::new().fg(theme.error))
                    .wrap(Wrap { trim: true }),
                picture,
            );
            format!("no saliency of {class}")
        }
        None => {
            // The plain picture meanwhile, when it is there.
            if let Some(Ok(image)) = app.preview_key().and_then(|k| app.previews.get(&k)) {
                let size = image.size();
                frame.render_widget(
                    Image::new(image),
                    centered(picture, size.width, size.height),
                );
            }
            if !app.inspect.available {
                "saliency unavailable: no model in this view".to_string()
            } else {
                match app.inspect.status.as_deref().filter(|s| !s.is_empty()) {
                    Some(status) => status.to_string(),
                    None => format!("computing the saliency of {class}…"),
                }
            }
        }
    };
    let width = legend.width as usize;
    let mut lines = Vec::new();
    if legend.height >= 2 {
        // low ▕ramp▏ high: the colours the overlay uses, in order.
        let ramp = width.saturating_sub(9).max(1);
        let mut bar = vec![Span::styled("low ", Style::new().fg(theme.muted))];
        bar.extend((0..ramp).map(|i| {
            let [r, g, b] = saliency::colour(i as f32 / (ramp.max(2) - 1) as f32);
            Span::styled(" ", Style::new().bg(Color::Rgb(r, g, b)))
        }));
        bar.push(Span::styled(" high", Style::new().fg(theme.muted)));
        lines.push(Line::from(bar));
    }
    if legend.height >= 1 {
        lines.push(Line::from(Span::styled(
            truncate_right(&caption, width),
            Style::new().fg(theme.muted),
        )));
    }
    frame.render_widget(Paragraph::new(lines), legend);
}

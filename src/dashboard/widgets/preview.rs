//! The selected image, as encoded by the preview worker (never encoded here).

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use ratatui_image::Image;

use super::{centered, panel};
use crate::dashboard::app::App;
use crate::dashboard::layout::inner;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    frame.render_widget(panel(" Preview ", theme), area);
    let inside = inner(area);
    if inside.width == 0 || inside.height == 0 {
        return;
    }
    let message = |text: String, colour| {
        Paragraph::new(text)
            .style(Style::new().fg(colour))
            .wrap(Wrap { trim: true })
    };
    // Graphics protocols draw over the text layer, so images are hidden under popups.
    if app.mode.has_popup() {
        frame.render_widget(
            message("(hidden under the popup)".into(), theme.muted),
            inside,
        );
        return;
    }
    let Some(key) = app.preview_key() else {
        frame.render_widget(message("no sample selected".into(), theme.muted), inside);
        return;
    };
    if let Some(overlay) = app.saliency_key() {
        super::overlay::render(frame, inside, app, &overlay);
        return;
    }
    match app.previews.get(&key) {
        Some(Ok(image)) => {
            let size = image.size();
            let at = centered(inside, size.width, size.height);
            frame.render_widget(Image::new(image), at);
        }
        Some(Err(error)) => frame.render_widget(message(error.clone(), theme.error), inside),
        None => frame.render_widget(message("loading preview…".into(), theme.muted), inside),
    }
}

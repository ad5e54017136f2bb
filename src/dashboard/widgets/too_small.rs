//! Shown instead of the dashboard when the terminal is below the minimum size.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::dashboard::app::App;
use crate::dashboard::layout::{MIN_HEIGHT, MIN_WIDTH};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let text = vec![
        Line::from(format!(
            "Terminal too small: {}×{}.",
            area.width, area.height
        )),
        Line::from(format!(
            "REASON needs at least {MIN_WIDTH}×{MIN_HEIGHT}: enlarge the window or shrink the font."
        )),
        Line::from("q quits."),
    ];
    let height = (text.len() as u16 + 2).min(area.height);
    let y = area.y + area.height.saturating_sub(height) / 2;
    let paragraph = Paragraph::new(text)
        .style(Style::new().fg(app.theme.text).bg(app.theme.background))
        .centered()
        .wrap(Wrap { trim: true });
    frame.render_widget(paragraph, Rect { y, height, ..area });
}

//! `draw(frame, &App)`: the whole screen as a pure function of the state.

use ratatui::style::Style;
use ratatui::widgets::Block;
use ratatui::Frame;

use super::app::{App, Mode};
use super::layout::Screen;
use super::widgets::{
    confusion, details, help, histogram, input, list, meta, neighbours, preview, risk, status,
    threshold, title, too_small,
};

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let theme = &app.theme;
    frame.render_widget(
        Block::new().style(Style::new().fg(theme.text).bg(theme.background)),
        area,
    );
    let Some(screen) = Screen::compute(area, app.side_panel) else {
        too_small::render(frame, area, app);
        return;
    };
    title::render(frame, screen.title, app);
    list::render(frame, screen.list, app);
    if !screen.preview.is_empty() {
        preview::render(frame, screen.preview, app);
    }
    if !screen.details.is_empty() {
        details::render(frame, screen.details, app);
    }
    if !screen.meta.is_empty() {
        meta::render(frame, screen.meta, app);
    }
    if !screen.neighbours.is_empty() {
        neighbours::render(frame, screen.neighbours, app);
    }
    if !screen.risk.is_empty() {
        risk::render(frame, screen.risk, app);
    }
    if !screen.histogram.is_empty() {
        histogram::render(frame, screen.histogram, app);
    }
    threshold::render(frame, &screen, app);
    status::render(frame, screen.status, app);
    match app.mode {
        Mode::Help => help::render(frame, area, app),
        Mode::Tags { .. } | Mode::Note { .. } => input::render(frame, area, app),
        Mode::Confusion => confusion::render(frame, area, app),
        Mode::Normal | Mode::Search { .. } => {}
    }
}

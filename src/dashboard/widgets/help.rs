//! The help overlay: every key.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::{centered, panel};
use crate::dashboard::app::App;
use crate::dashboard::keys::{MOUSE_HELP, NORMAL_KEYS};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let entries: Vec<(String, String)> = NORMAL_KEYS
        .iter()
        .map(|b| (b.keys_label(), b.help_text()))
        .chain(std::iter::once((MOUSE_HELP.0.into(), MOUSE_HELP.1.into())))
        .collect();
    let key_width = entries
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let text_width = entries
        .iter()
        .map(|(_, d)| d.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line> = entries
        .into_iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {keys:<key_width$}  "),
                    Style::new()
                        .fg(theme.highlight)
                        .add_modifier(Modifier::BOLD),
                ),
                Span::styled(what, Style::new().fg(theme.text)),
            ])
        })
        .collect();
    // The blank line before the legend goes first when the screen is short (80×24).
    if lines.len() + 5 <= area.height as usize {
        lines.push(Line::default());
    }
    let legend = [
        " ● accepted  ○ rejected at the threshold  ⚠ truncated file",
        " M model error · L label error · A ambiguous · F fine · ✎ tags/note",
    ];
    for text in legend {
        lines.push(Line::from(Span::styled(text, Style::new().fg(theme.muted))));
    }
    let width = (key_width + text_width + 6).max(legend[1].chars().count() + 3) as u16;
    let popup = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(panel(" Keys ", theme)), popup);
}

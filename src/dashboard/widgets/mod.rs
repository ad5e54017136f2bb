//! One file per panel; each `render` draws from `&App` only.

pub mod confusion;
pub mod details;
pub mod help;
pub mod histogram;
pub mod input;
pub mod list;
pub mod meta;
pub mod neighbours;
pub mod overlay;
pub mod preview;
pub mod risk;
pub mod status;
pub mod threshold;
pub mod title;
pub mod too_small;

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders};

use super::theme::Theme;

/// A bordered panel with a title.
pub fn panel<'a>(title: impl Into<Line<'a>>, theme: &Theme) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(theme.border))
        .title(
            title
                .into()
                .style(Style::new().fg(theme.title).add_modifier(Modifier::BOLD)),
        )
        .style(Style::new().fg(theme.text).bg(theme.background))
}

/// `95.1%`, or `–` when undefined.
pub fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |x| format!("{:.1}%", 100.0 * x))
}

/// Three decimals, or `n/a`.
pub fn decimal(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{x:.3}"))
}

/// A compact number for a diagnostic: 3 significant-ish digits, scientific when tiny or huge.
pub fn scalar(x: f32) -> String {
    let a = x.abs();
    if x.is_nan() {
        "NaN".into()
    } else if x == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{x:.2e}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Keeps the end of `text` (where file names differ) within `width` columns.
pub fn truncate_left(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let tail: String = chars[chars.len() - (width - 1)..].iter().collect();
    format!("…{tail}")
}

/// Keeps the start of `text` within `width` columns.
pub fn truncate_right(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let head: String = chars[..width - 1].iter().collect();
    format!("{head}…")
}

/// A centred rectangle of at most `width` × `height` inside `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_informative_end() {
        assert_eq!(truncate_left("abcdef", 4), "…def");
        assert_eq!(truncate_left("abc", 4), "abc");
        assert_eq!(truncate_right("abcdef", 4), "abc…");
        assert_eq!(truncate_right("abcdef", 0), "");
    }

    #[test]
    fn scalars_stay_short() {
        assert_eq!(scalar(0.123456), "0.123");
        assert_eq!(scalar(1234.5), "1234.5");
        assert_eq!(scalar(0.00001), "1.00e-5");
        assert_eq!(scalar(0.0), "0");
    }
}

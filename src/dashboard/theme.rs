//! Colour themes: `themes/*.toml` with semantic keys and ratatui colour strings.
//!
//! The built-ins (dark, light, high-contrast) are compiled in. A file `<name>.toml` in the
//! user theme folder (`$REASON_THEMES`, else `./themes`) overrides the same-named built-in, or
//! adds a new theme; keys it leaves out keep the built-in's value (dark for a new name).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::Color;

/// Environment variable naming the user theme folder.
pub const THEMES_ENV: &str = "REASON_THEMES";

const BUILT_IN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("unknown theme `{name}`; available themes: {}", available.join(", "))]
    Unknown {
        name: String,
        available: Vec<String>,
    },
    #[error("cannot read theme file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("theme file {} is not valid TOML: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    #[error("theme file {}: unknown key `{key}` (known keys: {})", file.display(), Theme::KEYS.join(", "))]
    UnknownKey { file: PathBuf, key: String },
    #[error("theme file {}: key `{key}` must be a colour string, e.g. \"red\", \"#ff8800\" or \"42\"", file.display())]
    NotAString { file: PathBuf, key: String },
    #[error("theme file {}: key `{key}` has `{value}`, which is not a colour (use a name such as \"light blue\", \"#rrggbb\", a 0–255 index or \"reset\")", file.display())]
    BadColour {
        file: PathBuf,
        key: String,
        value: String,
    },
}

/// Semantic colours of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub background: Color,
    pub text: Color,
    pub muted: Color,
    pub border: Color,
    pub title: Color,
    pub highlight: Color,
    /// Background of the selected list row.
    pub selection: Color,
    pub selection_text: Color,
    /// Accepted at the threshold.
    pub accept: Color,
    /// Rejected at the threshold.
    pub reject: Color,
    /// A correct prediction.
    pub correct: Color,
    /// A wrong prediction.
    pub wrong: Color,
    pub gauge: Color,
    pub chart_correct: Color,
    pub chart_wrong: Color,
    pub chart_curve: Color,
    /// The threshold marker in charts and on the slider.
    pub marker: Color,
    pub error: Color,
}

impl Theme {
    pub const KEYS: [&'static str; 18] = [
        "background",
        "text",
        "muted",
        "border",
        "title",
        "highlight",
        "selection",
        "selection_text",
        "accept",
        "reject",
        "correct",
        "wrong",
        "gauge",
        "chart_correct",
        "chart_wrong",
        "chart_curve",
        "marker",
        "error",
    ];

    fn slot(&mut self, key: &str) -> Option<&mut Color> {
        Some(match key {
            "background" => &mut self.background,
            "text" => &mut self.text,
            "muted" => &mut self.muted,
            "border" => &mut self.border,
            "title" => &mut self.title,
            "highlight" => &mut self.highlight,
            "selection" => &mut self.selection,
            "selection_text" => &mut self.selection_text,
            "accept" => &mut self.accept,
            "reject" => &mut self.reject,
            "correct" => &mut self.correct,
            "wrong" => &mut self.wrong,
            "gauge" => &mut self.gauge,
            "chart_correct" => &mut self.chart_correct,
            "chart_wrong" => &mut self.chart_wrong,
            "chart_curve" => &mut self.chart_curve,
            "marker" => &mut self.marker,
            "error" => &mut self.error,
            _ => return None,
        })
    }

    /// The default theme (dark).
    pub fn dark() -> Theme {
        Self::built_in("dark").expect("the dark theme is built in")
    }

    /// A compiled-in theme by name.
    pub fn built_in(name: &str) -> Option<Theme> {
        let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name)?;
        let file = PathBuf::from(format!("themes/{name}.toml"));
        Some(Self::parse(text, Self::all_reset(), &file).expect("built-in themes are valid"))
    }

    /// Reads theme TOML on top of `base`; `file` names the source in errors.
    pub fn parse(text: &str, base: Theme, file: &Path) -> Result<Theme, ThemeError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ThemeError::Syntax {
                file: file.to_path_buf(),
                message: e.message().to_string(),
            })?;
        let mut theme = base;
        for (key, value) in &table {
            let Some(slot) = theme.slot(key) else {
                return Err(ThemeError::UnknownKey {
                    file: file.to_path_buf(),
                    key: key.clone(),
                });
            };
            let Some(value) = value.as_str() else {
                return Err(ThemeError::NotAString {
                    file: file.to_path_buf(),
                    key: key.clone(),
                });
            };
            *slot = parse_colour(value).ok_or_else(|| ThemeError::BadColour {
                file: file.to_path_buf(),
                key: key.clone(),
                value: value.to_string(),
            })?;
        }
        Ok(theme)
    }

    /// Loads a theme by name from the user folder (`$REASON_THEMES` or `./themes`), else the
    /// built-ins.
    pub fn load(name: &str) -> Result<Theme, ThemeError> {
        Self::load_from(name, &user_theme_dir())
    }

    /// Loads a theme by name: `<user_dir>/<name>.toml` on top of the same-named built-in (or
    /// dark), else the built-in.
    pub fn load_from(name: &str, user_dir: &Path) -> Result<Theme, ThemeError> {
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        let base = Self::built_in(name);
        if valid_name {
            let file = user_dir.join(format!("{name}.toml"));
            if file.is_file() {
                let text = std::fs::read_to_string(&file).map_err(|source| ThemeError::Read {
                    file: file.clone(),
                    source,
                })?;
                return Self::parse(&text, base.unwrap_or_else(Self::dark), &file);
            }
        }
        base.ok_or_else(|| ThemeError::Unknown {
            name: name.to_string(),
            available: available_themes(user_dir),
        })
    }

    fn all_reset() -> Theme {
        Theme {
            background: Color::Reset,
            text: Color::Reset,
            muted: Color::Reset,
            border: Color::Reset,
            title: Color::Reset,
            highlight: Color::Reset,
            selection: Color::Reset,
            selection_text: Color::Reset,
            accept: Color::Reset,
            reject: Color::Reset,
            correct: Color::Reset,
            wrong: Color::Reset,
            gauge: Color::Reset,
            chart_correct: Color::Reset,
            chart_wrong: Color::Reset,
            chart_curve: Color::Reset,
            marker: Color::Reset,
            error: Color::Reset,
        }
    }
}

/// `$REASON_THEMES`, else `./themes`.
pub fn user_theme_dir() -> PathBuf {
    std::env::var_os(THEMES_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("themes"))
}

/// Built-in names plus the `*.toml` stems in `user_dir`, sorted and deduplicated.
pub fn available_themes(user_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = BUILT_IN.iter().map(|(n, _)| n.to_string()).collect();
    if let Ok(entries) = std::fs::read_dir(user_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Some(stem) = path.file_stem() {
                    names.push(stem.to_string_lossy().into_owned());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// ratatui's colour syntax, also accepting "indexed 42" for a 256-colour index.
fn parse_colour(value: &str) -> Option<Color> {
    let trimmed = value.trim();
    if let Some(index) = trimmed.strip_prefix("indexed") {
        return index.trim().parse::<u8>().ok().map(Color::Indexed);
    }
    Color::from_str(trimmed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_define_every_key() {
        for (name, text) in BUILT_IN {
            let table: toml::Table = text.parse().unwrap();
            for key in Theme::KEYS {
                assert!(table.contains_key(key), "{name} lacks {key}");
            }
            assert_eq!(table.len(), Theme::KEYS.len(), "{name}");
        }
    }

    #[test]
    fn every_key_has_a_slot() {
        let mut t = Theme::dark();
        for key in Theme::KEYS {
            assert!(t.slot(key).is_some(), "{key}");
        }
    }

    #[test]
    fn colour_syntax() {
        assert_eq!(parse_colour("light blue"), Some(Color::LightBlue));
        assert_eq!(parse_colour("#0072b2"), Some(Color::Rgb(0, 0x72, 0xb2)));
        assert_eq!(parse_colour("42"), Some(Color::Indexed(42)));
        assert_eq!(parse_colour("indexed 42"), Some(Color::Indexed(42)));
        assert_eq!(parse_colour("reset"), Some(Color::Reset));
        assert_eq!(parse_colour("blurple"), None);
        assert_eq!(parse_colour("#12345"), None);
        assert_eq!(parse_colour("indexed 300"), None);
    }
}

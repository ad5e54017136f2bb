//! Themes against valid and invalid fixture files (`tests/fixtures/themes/`).

use std::path::{Path, PathBuf};

use ratatui::style::Color;
use reason::dashboard::theme::{available_themes, Theme, ThemeError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/themes")
}

/// Every colour of a theme by its key, spelled out here rather than through the crate's own
/// key table, so a key wired to the wrong field shows.
fn by_key(t: &Theme) -> Vec<(&'static str, Color)> {
    vec![
        ("background", t.background),
        ("text", t.text),
        ("muted", t.muted),
        ("border", t.border),
        ("title", t.title),
        ("highlight", t.highlight),
        ("selection", t.selection),
        ("selection_text", t.selection_text),
        ("accept", t.accept),
        ("reject", t.reject),
        ("correct", t.correct),
        ("wrong", t.wrong),
        ("gauge", t.gauge),
        ("chart_correct", t.chart_correct),
        ("chart_wrong", t.chart_wrong),
        ("chart_curve", t.chart_curve),
        ("marker", t.marker),
        ("error", t.error),
    ]
}

/// `themes/<name>.toml` as shipped, read with `toml` and ratatui's colour syntax, independently
/// of `Theme::parse`.
fn on_disk(name: &str) -> std::collections::BTreeMap<String, Color> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("themes/{name}.toml"));
    let table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    table
        .into_iter()
        .map(|(k, v)| {
            let value = v.as_str().unwrap().to_string();
            let colour = value
                .parse::<Color>()
                .unwrap_or_else(|_| panic!("{}: {k} = {value}", path.display()));
            (k, colour)
        })
        .collect()
}

#[test]
fn built_ins_load_without_a_user_folder() {
    let none = Path::new("/nonexistent/themes");
    let mut seen = Vec::new();
    for name in ["dark", "light", "high-contrast"] {
        let built_in = Theme::built_in(name).unwrap();
        assert_eq!(Theme::load_from(name, none).unwrap(), built_in);
        // The compiled-in theme is the shipped file, key by key, every key set.
        let file = on_disk(name);
        let keys = by_key(&built_in);
        assert_eq!(file.len(), keys.len(), "{name}: {file:?}");
        for (key, colour) in keys {
            assert_eq!(Some(&colour), file.get(key), "{name}: {key}");
        }
        seen.push(built_in);
    }
    // Three different themes, not one three times.
    assert_ne!(seen[0], seen[1]);
    assert_ne!(seen[0], seen[2]);
    assert_ne!(seen[1], seen[2]);
    // Colour-blind safe: accept and reject are blue and orange, not green and red.
    let hc = Theme::built_in("high-contrast").unwrap();
    assert_eq!(hc.accept, Color::Rgb(0x56, 0xb4, 0xe9));
    assert_eq!(hc.reject, Color::Rgb(0xe6, 0x9f, 0x00));
}

#[test]
fn a_full_user_file_replaces_every_colour_of_the_built_in() {
    // light.toml's colours saved as `dark.toml` in a user folder: every key of dark becomes
    // light's, so the loaded theme is light's and not dark's.
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("themes/light.toml"))
            .unwrap();
    std::fs::write(dir.path().join("dark.toml"), text).unwrap();
    let loaded = Theme::load_from("dark", dir.path()).unwrap();
    assert_eq!(loaded, Theme::built_in("light").unwrap());
    assert_ne!(loaded, Theme::dark());
    // A file that sets one key changes that key only.
    std::fs::write(dir.path().join("dark.toml"), "border = \"#010203\"\n").unwrap();
    let loaded = Theme::load_from("dark", dir.path()).unwrap();
    for ((key, got), (_, dark)) in by_key(&loaded).into_iter().zip(by_key(&Theme::dark())) {
        if key == "border" {
            assert_eq!(got, Color::Rgb(1, 2, 3));
        } else {
            assert_eq!(got, dark, "{key}");
        }
    }
}

#[test]
fn a_user_file_overrides_the_same_named_built_in() {
    let theme = Theme::load_from("dark", &fixtures()).unwrap();
    let dark = Theme::dark();
    assert_eq!(theme.accept, Color::Rgb(0, 255, 0));
    assert_eq!(theme.selection, Color::Indexed(236));
    assert_eq!(theme.reject, dark.reject);
    assert_eq!(theme.text, dark.text);
}

#[test]
fn a_new_user_theme_starts_from_dark() {
    let theme = Theme::load_from("ocean", &fixtures()).unwrap();
    assert_eq!(theme.text, Color::LightCyan);
    assert_eq!(theme.accept, Color::Blue);
    assert_eq!(theme.reject, Color::Rgb(0xff, 0x88, 0));
    assert_eq!(theme.border, Theme::dark().border);
}

#[test]
fn an_unknown_name_lists_the_available_themes() {
    let err = Theme::load_from("nope", &fixtures()).unwrap_err();
    let ThemeError::Unknown { available, .. } = &err else {
        panic!("{err}")
    };
    for name in ["dark", "light", "high-contrast", "ocean"] {
        assert!(available.iter().any(|a| a == name), "{available:?}");
    }
    let text = err.to_string();
    assert!(text.contains("unknown theme `nope`"), "{text}");
    assert!(text.contains("dark, high-contrast, light"), "{text}");
    // A path is not a theme name.
    assert!(matches!(
        Theme::load_from("../themes/dark", &fixtures()),
        Err(ThemeError::Unknown { .. })
    ));
    assert_eq!(
        available_themes(Path::new("/nonexistent")),
        vec!["dark", "high-contrast", "light"]
    );
}

#[test]
fn an_unknown_key_names_the_file_and_the_key() {
    let err = Theme::load_from("typo", &fixtures()).unwrap_err();
    assert!(
        matches!(&err, ThemeError::UnknownKey { key, .. } if key == "rejcet"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("typo.toml") && text.contains("`rejcet`"),
        "{text}"
    );
    assert!(text.contains("reject"), "lists the known keys: {text}");
}

#[test]
fn a_bad_colour_names_the_file_key_and_value() {
    let err = Theme::load_from("badcolour", &fixtures()).unwrap_err();
    assert!(
        matches!(&err, ThemeError::BadColour { key, value, .. } if key == "reject" && value == "blurple"),
        "{err}"
    );
    assert!(err.to_string().contains("badcolour.toml"));
}

#[test]
fn a_non_string_value_and_bad_toml_are_reported() {
    let err = Theme::load_from("notstring", &fixtures()).unwrap_err();
    assert!(
        matches!(&err, ThemeError::NotAString { key, .. } if key == "marker"),
        "{err}"
    );
    let err = Theme::load_from("broken", &fixtures()).unwrap_err();
    assert!(matches!(err, ThemeError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("broken.toml"));
}

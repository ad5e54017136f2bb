//! Themes against valid and invalid fixture files (`tests/fixtures/themes/`).

use std::path::{Path, PathBuf};

use ratatui::style::Color;
use reason::dashboard::theme::{available_themes, Theme, ThemeError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/themes")
}

#[test]
fn built_ins_load_without_a_user_folder() {
    let none = Path::new("/nonexistent/themes");
    for name in ["dark", "light", "high-contrast"] {
        assert_eq!(
            Theme::load_from(name, none).unwrap(),
            Theme::built_in(name).unwrap()
        );
    }
    // Colour-blind safe: accept and reject are blue and orange, not green and red.
    let hc = Theme::built_in("high-contrast").unwrap();
    assert_eq!(hc.accept, Color::Rgb(0x56, 0xb4, 0xe9));
    assert_eq!(hc.reject, Color::Rgb(0xe6, 0x9f, 0x00));
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

#[test]
fn the_themes_env_var_names_the_user_folder() {
    // The only test in this binary that touches the environment.
    std::env::set_var(reason::dashboard::theme::THEMES_ENV, fixtures());
    let theme = Theme::load("ocean");
    std::env::remove_var(reason::dashboard::theme::THEMES_ENV);
    assert_eq!(theme.unwrap().accept, Color::Blue);
}

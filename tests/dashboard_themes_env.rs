//! `$REASON_THEMES` names the user's theme folder. Alone in its test binary: it sets an
//! environment variable, which is only safe while no other thread reads the environment.

use std::path::Path;

use ratatui::style::Color;
use reason::dashboard::theme::{Theme, THEMES_ENV};

#[test]
fn the_themes_env_var_names_the_user_folder() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/themes");
    std::env::set_var(THEMES_ENV, &fixtures);
    let theme = Theme::load("ocean");
    std::env::remove_var(THEMES_ENV);
    assert_eq!(theme.unwrap().accept, Color::Blue);
    // Without the variable, `ocean` is not a theme (it is no built-in).
    assert!(Theme::load("ocean").is_err());
}

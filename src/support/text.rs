//! Text from outside (file names, archive members, error messages that quote them) on its way
//! to a terminal: control characters are shown as escapes, never sent raw, so a hostile name
//! cannot move the cursor, change colours or set the window title.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

/// Characters that change what a terminal shows beyond themselves: controls (C0, DEL, C1) and
/// the bidirectional-text marks and overrides that can make a name read as another; and the
/// backslash, so that an escape in the output always means an escaped character.
fn unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every [`unsafe_for_terminal`] character written as `\u{..}` (`\t`, `\n`, `\r`
/// as such); borrowed when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_for_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_for_terminal(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path for the terminal: lossy UTF-8, control characters escaped.
pub fn printable_path(path: &Path) -> Printable<'_> {
    Printable(path)
}

/// `Display` of [`printable_path`].
pub struct Printable<'a>(&'a Path);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(&self.0.to_string_lossy()))
    }
}

/// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
pub fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_escapes() {
        assert!(matches!(printable("plain name.jpg"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(printable("tab\there\nline"), "tab\\there\\nline");
        assert_eq!(printable("c1\u{9b}x\u{7f}"), "c1\\u{9b}x\\u{7f}");
        assert_eq!(printable("ünïcödé 猫"), "ünïcödé 猫");
        assert_eq!(printable("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(printable("a\\u{1b}"), "a\\\\u{1b}");
        let p = Path::new("dir/\u{7}bell.png");
        assert_eq!(printable_path(p).to_string(), "dir/\\u{7}bell.png");
    }
}

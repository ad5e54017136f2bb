//! How an error reaches the user: its chain of causes on one line, each said once.

/// `error` and its causes joined by `: `, as anyhow's `{:#}` does, except that a cause whose
/// text is already in the message is left out. Many error types include their source in
/// their own text (`cannot read X: No such file or directory`), and the chain then repeats it.
pub fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(part.trim()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::message;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct ReadError {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let error = anyhow::Error::new(ReadError {
            path: "data/x".into(),
            source: io,
        })
        .context("opening data/x");
        assert_eq!(
            message(&error),
            "opening data/x: cannot read data/x: No such file (os error 2)"
        );
        // Causes that add something are kept, in order.
        let error = anyhow::anyhow!("root cause")
            .context("middle")
            .context("top");
        assert_eq!(message(&error), "top: middle: root cause");
    }
}

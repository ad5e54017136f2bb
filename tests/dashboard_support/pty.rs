//! Driving a dashboard process in a real pseudo-terminal: start it in a 120×40 pty, collect
//! everything it writes, wait for text or files, type keys, and check that it gave the terminal
//! back as it found it.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

/// How long a wait lasts unless [`Tui::timeout`] says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);

/// A dashboard process in a 120×40 pseudo-terminal, with its output collected.
pub struct Tui {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    output: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
    timeout: Duration,
    /// Output length when keys were last typed: waits look only at what came after, so a
    /// wait after a key is for that key's effect, not for text drawn before it.
    since_keys: usize,
}

impl Tui {
    /// Starts `cmd` (program, arguments, working directory and environment already set) with
    /// `TERM=xterm-256color`.
    pub fn start(mut cmd: CommandBuilder) -> Tui {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 120,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        cmd.env("TERM", "xterm-256color");
        let child = pty.slave.spawn_command(cmd).unwrap();
        // Only the child keeps the terminal side open, so the reader sees the end.
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let writer = pty.master.take_writer().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        let reader = std::thread::spawn(move || {
            // The master must outlive the reader, so it moves in here.
            let _master = pty.master;
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Tui {
            child,
            writer,
            output,
            reader,
            timeout: TIMEOUT,
            since_keys: 0,
        }
    }

    /// How long each later wait (text, exit) may last.
    pub fn timeout(mut self, timeout: Duration) -> Tui {
        self.timeout = timeout;
        self
    }

    /// Everything written so far, escape sequences included.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output since the last [`Tui::keys`] contains `needle`. Only text drawn
    /// in one piece can be waited for: the terminal backend writes changed cells only.
    pub fn wait_for(&self, needle: &str) {
        wait_until(self.timeout, &format!("{needle:?} on the screen"), || {
            let output = self.output.lock().unwrap();
            String::from_utf8_lossy(&output[self.since_keys.min(output.len())..])
                .contains(needle)
                .then_some(())
        })
        .unwrap_or_else(|what| panic!("{what}; output so far:\n{}", self.text()));
    }

    /// Writes bytes at once, as a terminal answering a query would.
    pub fn answer(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Types `keys` at once (the dashboard handles them in order however fast they come; a
    /// test that needs a key's effect first waits for it with [`Tui::wait_for`]). No Esc here:
    /// Esc followed by a key reads as Alt+key.
    pub fn keys(&mut self, keys: &str) {
        assert!(!keys.contains('\x1b'), "Esc cannot be typed in a burst");
        self.since_keys = self.output.lock().unwrap().len();
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits for the process to exit; returns its success and everything it wrote.
    pub fn finish(mut self) -> (bool, Vec<u8>) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > self.timeout {
                let _ = self.child.kill();
                panic!("the dashboard did not exit; output:\n{}", self.text());
            }
            std::thread::sleep(POLL);
        };
        drop(self.writer);
        self.reader.join().unwrap();
        let output = self.output.lock().unwrap().clone();
        (status.success(), output)
    }
}

/// Polls `check` until it gives a value; after `timeout`, the error says what was awaited.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Polls until `path` exists and holds `needle` (written by the dashboard while it runs).
pub fn wait_for_file(path: &Path, needle: &str) -> String {
    wait_until(
        TIMEOUT,
        &format!("{needle:?} in {}", path.display()),
        || {
            std::fs::read_to_string(path)
                .ok()
                .filter(|text| text.contains(needle))
        },
    )
    .unwrap_or_else(|what| panic!("{what}"))
}

/// The dashboard exited with success after taking the terminal over (alternate screen, mouse
/// capture) and restoring it.
pub fn assert_restored(ok: bool, output: &[u8]) {
    let text = String::from_utf8_lossy(output);
    assert!(ok, "the dashboard failed; output:\n{text}");
    // Entered the alternate screen with mouse capture, and left it: the last thing written is
    // leaving the alternate screen and showing the cursor.
    assert!(
        text.contains("\x1b[?1049h"),
        "never entered the alternate screen"
    );
    assert!(
        text.contains("\x1b[?1000h") && text.contains("\x1b[?1000l"),
        "mouse capture not undone"
    );
    assert!(
        text.ends_with("\x1b[?1049l\x1b[?25h"),
        "the output does not end by restoring the terminal: {:?}",
        &text[text.len().saturating_sub(80)..]
    );
}

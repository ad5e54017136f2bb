//! The dashboard end to end in a real pseudo-terminal: the `tui_demo` example (the dashboard
//! on synthetic records) is started, driven with keys, and quit; the terminal must be restored
//! and the session file must hold what was done.

mod dashboard_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use dashboard_support::pty::{assert_restored, wait_for_file, Tui};
use dashboard_support::{record_set, write_image};
use portable_pty::CommandBuilder;
use reason::dashboard::session::Session;

/// Builds the example once (a no-op when `cargo test` already built it) and returns its path.
fn demo_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // target/<profile>/reason → target/<profile>/examples/tui_demo
        let profile_dir = Path::new(env!("CARGO_BIN_EXE_reason")).parent().unwrap();
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args(["build", "--example", "tui_demo"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        // Variables cargo sets for this test would look like a changed environment to build
        // scripts that watch them (ring does) and rebuild half the dependency tree.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_tests = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ];
            if set_for_tests.iter().any(|p| name.starts_with(p)) {
                build.env_remove(name.as_ref());
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the tui_demo example failed");
        let binary = profile_dir.join("examples").join("tui_demo");
        assert!(binary.is_file(), "{} missing", binary.display());
        binary
    })
}

/// The demo in a pseudo-terminal, on `dir`'s records and images, with the session `e2e`.
fn start(dir: &Path, extra: &[&str]) -> Tui {
    let mut cmd = CommandBuilder::new(demo_binary());
    cmd.args([
        "records.json",
        "data",
        "sessions/e2e.json",
        "--image-protocol=halfblocks",
    ]);
    cmd.args(extra);
    cmd.cwd(dir);
    Tui::start(cmd)
}

fn prepare(dir: &Path) -> reason::reliability::records::RecordSet {
    let set = record_set(60, 7);
    std::fs::write(dir.join("records.json"), serde_json::to_vec(&set).unwrap()).unwrap();
    for r in &set.records[..6] {
        write_image(&dir.join("data").join(&r.id));
    }
    set
}

#[test]
fn drive_the_dashboard_and_resume_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let set = prepare(dir.path());

    let mut tui = start(dir.path(), &[]);
    tui.wait_for("REASON");
    tui.wait_for("ILSVRC2012_val_00000001");
    // The half-block preview of the first image arrives from the preview worker.
    tui.wait_for("▀");
    // Down twice, threshold +0.01 +0.01 +0.1, tags, note, export, quit.
    tui.keys("jj");
    tui.keys("llL");
    tui.keys("t");
    tui.wait_for("Tags");
    tui.keys("blurry, crop\r");
    // Annotations are autosaved at once, before quitting.
    let session_file = dir.path().join("sessions/e2e.json");
    wait_for_file(&session_file, "blurry");
    tui.keys("n");
    tui.wait_for("Note");
    tui.keys("odd crop\r");
    tui.keys("e");
    let csv = wait_for_file(&dir.path().join("sessions/e2e.annotations.csv"), "odd crop");
    wait_for_file(
        &dir.path().join("sessions/e2e.annotations.json"),
        "odd crop",
    );
    tui.keys("q");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);
    assert!(
        csv.contains(&format!("{},n01440764,", set.records[2].id)) && csv.contains("blurry;crop"),
        "{csv}"
    );

    let session = Session::load(&dir.path().join("sessions/e2e.json"))
        .unwrap()
        .expect("the session was saved");
    let id = &set.records[2].id;
    assert_eq!(session.threshold, Some(0.62));
    assert_eq!(session.cursor.as_deref(), Some(id.as_str()));
    let annotation = &session.annotations[id];
    assert_eq!(annotation.tags, vec!["blurry", "crop"]);
    assert_eq!(annotation.note, "odd crop");

    // Reopened, it resumes on the same sample and threshold.
    let mut again = start(dir.path(), &[]);
    again.wait_for("t 0.620");
    again.wait_for("odd crop");
    again.keys("q");
    let (ok, output) = again.finish();
    assert_restored(ok, &output);
}

#[test]
fn streamed_records_fill_the_list_and_ctrl_c_quits() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let mut tui = start(dir.path(), &["--stream"]);
    tui.wait_for("scored 60 samples");
    tui.keys("G\u{3}");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);
    let session = Session::load(&dir.path().join("sessions/e2e.json"))
        .unwrap()
        .unwrap();
    assert!(session.cursor.unwrap().ends_with("00000060.JPEG"));
}

#[test]
fn a_corrupt_session_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    std::fs::create_dir_all(dir.path().join("sessions")).unwrap();
    let path = dir.path().join("sessions/e2e.json");
    std::fs::write(&path, "{ not json").unwrap();
    let tui = start(dir.path(), &[]);
    let (ok, output) = tui.finish();
    let text = String::from_utf8_lossy(&output);
    assert!(!ok);
    assert!(text.contains("is not a valid session"), "{text}");
    assert!(!text.contains("\x1b[?1049h"), "the terminal was taken over");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
}

#[test]
fn auto_protocol_uses_what_the_terminal_answers() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    // A loaded test machine may answer late; the query waits as long as the test does.
    let mut tui = start(
        dir.path(),
        &["--image-protocol=auto", "--image-query-timeout=60000"],
    );
    // The picker's query ends with a status request; answer like a sixel terminal with
    // 10×20-pixel cells.
    tui.wait_for("\x1b[5n");
    tui.answer("\x1b[?62;4;22c\x1b[6;20;10t\x1b[0n");
    tui.wait_for("REASON");
    // The preview is drawn as sixel graphics (a DCS sequence), not half-blocks.
    tui.wait_for("\x1bP");
    tui.keys("?");
    tui.wait_for("hidden under the popup");
    tui.keys("q");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);
}

/// Run in a pseudo-terminal by [`a_panic_on_the_ui_thread_restores_the_terminal`]: takes the
/// terminal over as the dashboard does, draws, and panics on the UI thread.
#[test]
#[ignore = "run by a_panic_on_the_ui_thread_restores_the_terminal, in a pseudo-terminal"]
fn panic_on_the_ui_thread() {
    use reason::dashboard::terminal::TerminalGuard;
    let result = std::panic::catch_unwind(|| {
        let mut guard = TerminalGuard::enter().unwrap();
        guard
            .terminal()
            .draw(|frame| {
                let text = ratatui::widgets::Paragraph::new("drawn-before-the-panic");
                frame.render_widget(text, frame.area());
            })
            .unwrap();
        panic!("deliberate panic on the UI thread");
    });
    assert!(result.is_err());
    println!(
        "raw mode after the panic: {}",
        crossterm::terminal::is_raw_mode_enabled().unwrap()
    );
}

#[test]
fn a_panic_on_the_ui_thread_restores_the_terminal() {
    let mut cmd = CommandBuilder::new(std::env::current_exe().unwrap());
    cmd.args([
        "panic_on_the_ui_thread",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    let tui = Tui::start(cmd);
    let (ok, output) = tui.finish();
    let text = String::from_utf8_lossy(&output);
    assert!(ok, "the child test failed:\n{text}");
    let drawn = text
        .find("drawn-before-the-panic")
        .unwrap_or_else(|| panic!("nothing drawn: {text:?}"));
    let entered = text.find("\x1b[?1049h").expect("no alternate screen");
    let left = text
        .rfind("\x1b[?1049l")
        .expect("the alternate screen was never left");
    let message = text
        .find("deliberate panic on the UI thread")
        .expect("no panic message");
    // The panic hook restores the terminal before the message is printed, so the message lands
    // on the normal screen, readable after the program ends.
    assert!(
        entered < drawn && drawn < left && left < message,
        "{text:?}"
    );
    assert!(
        text[..left].contains("\x1b[?1000l"),
        "mouse capture left on"
    );
    assert!(
        text[left..].starts_with("\x1b[?1049l\x1b[?25h"),
        "the cursor is not shown again"
    );
    assert!(text.contains("raw mode after the panic: false"), "{text}");
}

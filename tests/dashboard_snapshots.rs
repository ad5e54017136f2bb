//! Screens rendered with ratatui's `TestBackend` and compared with reviewed snapshots
//! (`tests/snapshots/`). Data and preview images are generated deterministically.

mod dashboard_support;

use std::path::Path;

use dashboard_support::{app, record_set, unlabelled, write_image};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use ratatui_image::picker::Picker;
use reason::dashboard::preview::{encode, PreviewResult};
use reason::dashboard::session::Session;
use reason::dashboard::{draw, update, Action, App, Theme};
use reason::reliability::records::{RecordSet, ScoringEvent};

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    if width == 0 {
        // TestBackend cannot print an empty buffer; drawing it is the test.
        return String::new();
    }
    terminal.backend().to_string()
}

fn apply(app: &mut App, actions: impl IntoIterator<Item = Action>) {
    for action in actions {
        update(app, action);
    }
}

/// Encodes the selected sample's preview as the worker would (half-blocks), writing the
/// generated image first unless `missing`.
fn load_preview(app: &mut App, root: &Path, missing: bool) {
    let key = app.preview_key().expect("the preview panel is on screen");
    let path = root.join(&key.id);
    if !missing {
        write_image(&path);
    }
    let image = encode(&Picker::halfblocks(), &path, key.width, key.height);
    update(app, Action::PreviewReady(PreviewResult { key, image }));
}

/// A labelled set with the cursor on an annotated, confidently wrong sample.
fn inspected(width: u16, height: u16, root: &Path) -> App {
    let mut app = app(record_set(500, 1), Session::default(), width, height);
    apply(
        &mut app,
        [
            Action::SetThreshold(0.42),
            Action::NextFilter,
            Action::NextFilter,
            Action::NextFilter,
        ],
    );
    apply(
        &mut app,
        [Action::MoveBy(2), Action::CycleVerdict, Action::EditTags],
    );
    apply(&mut app, "blurry, occluded".chars().map(Action::Input));
    apply(&mut app, [Action::InputSubmit, Action::EditNote]);
    apply(&mut app, "fish held by a person".chars().map(Action::Input));
    update(&mut app, Action::InputSubmit);
    // Back to `All`: the cursor stays on the annotated sample.
    while app.filter != reason::dashboard::session::Filter::All {
        update(&mut app, Action::NextFilter);
    }
    app.notice = None;
    load_preview(&mut app, root, false);
    app
}

#[test]
fn full_screen_120x40() {
    let dir = tempfile::tempdir().unwrap();
    let app = inspected(120, 40, dir.path());
    insta::assert_snapshot!("full_120x40", render(&app, 120, 40));
}

#[test]
fn compact_80x24_panels() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = inspected(80, 24, dir.path());
    insta::assert_snapshot!("compact_80x24_inspect", render(&app, 80, 24));
    update(&mut app, Action::NextPanel);
    insta::assert_snapshot!("compact_80x24_meta", render(&app, 80, 24));
    update(&mut app, Action::NextPanel);
    insta::assert_snapshot!("compact_80x24_charts", render(&app, 80, 24));
}

#[test]
fn popups_hide_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = inspected(80, 24, dir.path());
    update(&mut app, Action::ToggleHelp);
    insta::assert_snapshot!("help_80x24", render(&app, 80, 24));
    update(&mut app, Action::ToggleHelp);
    update(&mut app, Action::EditNote);
    update(&mut app, Action::Input('!'));
    insta::assert_snapshot!("note_popup_80x24", render(&app, 80, 24));
}

#[test]
fn search_in_the_status_bar() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = inspected(80, 24, dir.path());
    update(&mut app, Action::StartSearch);
    apply(&mut app, "val_0000002".chars().map(Action::Input));
    insta::assert_snapshot!("search_80x24", render(&app, 80, 24));
}

#[test]
fn unlabelled_folder_says_no_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(unlabelled(record_set(120, 2)), Session::default(), 120, 40);
    load_preview(&mut app, dir.path(), false);
    insta::assert_snapshot!("unlabelled_120x40", render(&app, 120, 40));
}

#[test]
fn missing_image_and_few_classes() {
    let mut set = record_set(30, 3);
    // Three classes only: fewer than five probability bars.
    set.classes.truncate(3);
    set.class_names.truncate(3);
    for r in &mut set.records {
        r.probs.truncate(3);
        r.label = r.label.map(|l| l % 3);
        r.pred %= 3;
    }
    let mut app = app(set, Session::default(), 120, 40);
    // A fixed root, so the error text is the same on every machine.
    load_preview(&mut app, Path::new("/nonexistent/dataset"), true);
    let screen = render(&app, 120, 40);
    assert!(screen.contains("cannot open"), "{screen}");
    insta::assert_snapshot!("missing_image_3_classes_120x40", screen);
}

#[test]
fn truncated_files_are_marked_in_the_list_and_explained_in_the_details() {
    let whole = render(
        &app(record_set(30, 3), Session::default(), 120, 40),
        120,
        40,
    );
    assert!(!whole.contains('⚠'), "{whole}");
    let mut set = record_set(30, 3);
    for r in &mut set.records {
        r.truncated = true;
    }
    let screen = render(&app(set, Session::default(), 120, 40), 120, 40);
    let marked_rows = screen
        .lines()
        .filter(|l| l.contains("⚠ n0") || l.contains("⚠ …"))
        .count();
    assert!(marked_rows >= 10, "{screen}");
    assert!(screen.contains("⚠ truncated file"), "{screen}");
}

#[test]
fn oversized_preview_is_refused_with_the_reason_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(record_set(30, 3), Session::default(), 120, 40);
    let key = app.preview_key().expect("the preview panel is on screen");
    let path = dir.path().join(&key.id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Wider than the decoder accepts (a cheap stand-in for a decompression bomb).
    image::RgbImage::new(reason::data::imageio::MAX_DIMENSION + 1, 1)
        .save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    let image = encode(&Picker::halfblocks(), &path, key.width, key.height);
    assert!(image.is_err());
    update(&mut app, Action::PreviewReady(PreviewResult { key, image }));
    let screen = render(&app, 120, 40);
    assert!(screen.contains("refused"), "{screen}");
}

#[test]
fn empty_record_set() {
    let app = app(RecordSet::default(), Session::default(), 80, 24);
    insta::assert_snapshot!("empty_80x24", render(&app, 80, 24));
}

#[test]
fn scoring_in_progress_and_failed() {
    let all = record_set(400, 4);
    let mut app = App::scoring(Session::default(), Theme::dark(), "streaming");
    update(
        &mut app,
        Action::Resize {
            width: 120,
            height: 40,
        },
    );
    insta::assert_snapshot!("scoring_waiting_120x40", render(&app, 120, 40));
    let header = RecordSet {
        records: Vec::new(),
        calibration: None,
        ..all.clone()
    };
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Started { total: 400, header }),
    );
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Records(all.records[..150].to_vec())),
    );
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Progress {
            stage: "features".into(),
            done: 150,
            total: 400,
        }),
    );
    insta::assert_snapshot!("scoring_progress_120x40", render(&app, 120, 40));
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Failed("out of memory".into())),
    );
    insta::assert_snapshot!("scoring_failed_120x40", render(&app, 120, 40));
}

#[test]
fn too_small_terminal() {
    let app = app(record_set(10, 5), Session::default(), 60, 20);
    insta::assert_snapshot!("too_small_60x20", render(&app, 60, 20));
}

#[test]
fn no_size_or_state_panics() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        (0, 0),
        (1, 1),
        (20, 5),
        (79, 23),
        (80, 24),
        (95, 30),
        (119, 35),
        (120, 36),
        (250, 70),
    ];
    let apps: Vec<App> = vec![
        inspected(120, 40, dir.path()),
        app(unlabelled(record_set(50, 6)), Session::default(), 80, 24),
        app(RecordSet::default(), Session::default(), 80, 24),
        App::scoring(Session::default(), Theme::dark(), ""),
    ];
    for mut app in apps {
        for _panel in 0..3 {
            for mode in 0..4 {
                match mode {
                    1 => update(&mut app, Action::ToggleHelp),
                    2 => update(&mut app, Action::EditTags),
                    3 => update(&mut app, Action::StartSearch),
                    _ => {}
                }
                for &(w, h) in &sizes {
                    render(&app, w, h);
                }
                update(&mut app, Action::InputCancel);
                if mode == 1 {
                    update(&mut app, Action::ToggleHelp);
                }
            }
            update(&mut app, Action::NextPanel);
        }
    }
}

#[test]
fn every_theme_draws() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["dark", "light", "high-contrast"] {
        let mut app = inspected(120, 40, dir.path());
        app.theme = Theme::built_in(name).unwrap();
        // Same text whatever the colours.
        assert_eq!(
            render(&app, 120, 40),
            render(&inspected(120, 40, dir.path()), 120, 40)
        );
    }
}

//! Screens rendered with ratatui's `TestBackend` and compared with reviewed snapshots
//! (`tests/snapshots/`). Data and preview images are generated deterministically.

mod dashboard_support;

use std::path::Path;

use dashboard_support::{app, record_set, unlabelled, write_image};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use ratatui_image::picker::Picker;
use reason::dashboard::app::Mode;
use reason::dashboard::inspect::InspectResult;
use reason::dashboard::layout::{MIN_HEIGHT, MIN_WIDTH};
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

/// Draws `app` into a fresh buffer of the given size.
fn buffer(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    terminal.backend().buffer().clone()
}

/// The buffer's text, one line a row.
fn text_of(buf: &Buffer) -> String {
    let area = buf.area;
    (area.top()..area.bottom())
        .map(|y| {
            (area.left()..area.right())
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    let mut popups_seen = [0; 3];
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
                    let buf = buffer(&app, w, h);
                    assert_eq!((buf.area.width, buf.area.height), (w, h));
                    let screen = text_of(&buf);
                    let context = format!("{w}×{h}, mode {:?}:\n{screen}", app.mode);
                    if w < 20 {
                        continue; // Too narrow for any whole word; drawing it is the test.
                    }
                    if w < MIN_WIDTH || h < MIN_HEIGHT {
                        // Below the minimum: the explanation only, never a cramped dashboard.
                        assert!(screen.contains("Terminal too"), "{context}");
                        assert!(!screen.contains("Samples"), "{context}");
                        if w == 79 {
                            assert!(screen.contains("Terminal too small: 79×23."), "{context}");
                        }
                        continue;
                    }
                    assert!(!screen.contains("too small"), "{context}");
                    match &app.mode {
                        Mode::Help => {
                            popups_seen[0] += 1;
                            assert!(screen.contains(" Keys "), "{context}");
                            assert!(screen.contains("● accepted"), "{context}");
                        }
                        Mode::Tags { .. } => {
                            popups_seen[1] += 1;
                            assert!(screen.contains("Tags"), "{context}");
                        }
                        Mode::Search { .. } => {
                            popups_seen[2] += 1;
                            assert!(screen.contains("Esc cancel"), "{context}");
                        }
                        _ => {}
                    }
                    if !matches!(app.mode, Mode::Help | Mode::Tags { .. }) {
                        // The list is on every screen; its cursor marks the one selected row
                        // whenever there are rows.
                        assert!(screen.contains(" Samples "), "{context}");
                        let cursors = screen.matches('›').count();
                        let expected = usize::from(!app.view.is_empty());
                        assert_eq!(cursors, expected, "{context}");
                    }
                }
                update(&mut app, Action::InputCancel);
                if mode == 1 {
                    update(&mut app, Action::ToggleHelp);
                }
            }
            update(&mut app, Action::NextPanel);
        }
    }
    // Every kind of popup was drawn (and checked) at some size.
    assert!(popups_seen.iter().all(|&n| n > 0), "{popups_seen:?}");
}

/// Where each kind of cell of the list is, and the colours it must have under `theme`.
fn check_theme_colours(buf: &Buffer, theme: &Theme, name: &str) {
    let area = buf.area;
    let cells = |symbol: &str| -> Vec<(u16, u16)> {
        (area.top()..area.bottom())
            .flat_map(|y| (area.left()..area.right()).map(move |x| (x, y)))
            .filter(|&p| buf[p].symbol() == symbol)
            .collect()
    };
    // The selected row: the cursor, and the row behind it, in the selection colours.
    let cursor = cells("›");
    assert_eq!(cursor.len(), 1, "{name}");
    let (cx, cy) = cursor[0];
    assert_eq!(buf[(cx, cy)].bg, theme.selection, "{name}: cursor bg");
    assert_eq!(buf[(cx, cy)].fg, theme.selection_text, "{name}: cursor fg");
    for x in cx..cx + 30 {
        assert_eq!(
            buf[(x, cy)].bg,
            theme.selection,
            "{name}: selected row at x={x}"
        );
    }
    // The row below is not selected.
    assert_ne!(buf[(cx + 5, cy + 1)].bg, theme.selection, "{name}");
    // The accept/reject marks of the other rows, in the mark column right after the cursor.
    let mark_x = cx + 1;
    let (mut accepted, mut rejected) = (0, 0);
    for y in area.top()..area.bottom() {
        if y == cy {
            continue;
        }
        let cell = &buf[(mark_x, y)];
        match cell.symbol() {
            "●" => {
                accepted += 1;
                assert_eq!(cell.fg, theme.accept, "{name}: accepted mark at y={y}");
            }
            "○" => {
                rejected += 1;
                assert_eq!(cell.fg, theme.reject, "{name}: rejected mark at y={y}");
            }
            _ => {}
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "{name}: {accepted} {rejected}"
    );
    // Every panel's rounded corners are in the border colour.
    let corners: Vec<_> = ["╭", "╮", "╰", "╯"].iter().flat_map(|c| cells(c)).collect();
    assert!(corners.len() >= 4 * 4, "{name}: {}", corners.len());
    for p in corners {
        assert_eq!(buf[p].fg, theme.border, "{name}: corner at {p:?}");
    }
}

#[test]
fn every_theme_draws() {
    let dir = tempfile::tempdir().unwrap();
    let reference = buffer(&inspected(120, 40, dir.path()), 120, 40);
    let mut buffers = Vec::new();
    for name in ["dark", "light", "high-contrast"] {
        let mut app = inspected(120, 40, dir.path());
        app.theme = Theme::built_in(name).unwrap();
        let buf = buffer(&app, 120, 40);
        // Same text whatever the colours...
        assert_eq!(text_of(&buf), text_of(&reference), "{name}");
        // ...and the theme's colours where the theme says.
        check_theme_colours(&buf, &app.theme, name);
        buffers.push((name, app.theme, buf));
    }
    // The themes differ where it is checked, so the checks tell them apart.
    for (i, (a, ta, ba)) in buffers.iter().enumerate() {
        for (b, tb, bb) in &buffers[i + 1..] {
            for (key, ca, cb) in [
                ("accept", ta.accept, tb.accept),
                ("selection", ta.selection, tb.selection),
                ("border", ta.border, tb.border),
            ] {
                assert_ne!(ca, cb, "{a} and {b} share {key}");
            }
            assert_ne!(ba, bb, "{a} and {b} draw the same cells");
        }
    }
}

/// The saliency overlay of the selected sample as the inspection worker sends it: a map that
/// is hot in the picture's top-left corner, blended and encoded as half-blocks.
fn load_overlay(app: &mut App, root: &Path) {
    use image::DynamicImage;
    use ratatui::layout::Size;
    use ratatui_image::Resize;
    use reason::data::preprocess::Preprocess;
    use reason::model::saliency::{self, Saliency};
    let key = app.saliency_key().expect("the overlay is on");
    let picture = image::open(root.join(&key.id)).unwrap().to_rgb8();
    let map = Saliency {
        size: 16,
        class: key.class,
        values: (0..256)
            .map(|i| if i % 16 < 6 && i / 16 < 6 { 1.0 } else { 0.1 })
            .collect(),
    };
    let pre = Preprocess {
        size: 16,
        crop_pct: 1.0,
        mean: [0.5; 3],
        std: [0.5; 3],
    };
    let blended = saliency::overlay(&picture, &map, &pre);
    let image = Picker::halfblocks()
        .new_protocol(
            DynamicImage::ImageRgb8(blended),
            Size::new(key.width, key.height),
            Resize::Scale(None),
        )
        .map(|p| (p, std::time::Duration::from_millis(840)))
        .map_err(|e| e.to_string());
    update(
        app,
        Action::InspectReady(InspectResult::Saliency { key, image }),
    );
}

/// Six neighbours of the selected sample: four pictures here (one of another class than the
/// prediction), one training image missing on this machine, one more of another class.
fn load_neighbours(app: &mut App, root: &Path) {
    use reason::reliability::neighbours::{Neighbour, NeighbourImage};
    let record = app.selected_record().unwrap().clone();
    let other = (record.pred + 1) % 10;
    let neighbours: Vec<Neighbour> = (0..6)
        .map(|i| {
            let label = if i == 2 || i == 5 { other } else { record.pred };
            let image = if i == 4 {
                NeighbourImage::Missing("n03888605/n03888605_gone.JPEG".into())
            } else {
                let file = root.join(format!("train/{i}.png"));
                write_image(&file);
                NeighbourImage::Found(file)
            };
            Neighbour {
                index: i,
                label,
                distance: 3.1 + 0.37 * i as f32,
                image,
            }
        })
        .collect();
    update(
        app,
        Action::InspectReady(InspectResult::Neighbours {
            id: record.id,
            neighbours: Ok(neighbours),
        }),
    );
    for key in app.wanted_thumbnails() {
        let image = encode(
            &Picker::halfblocks(),
            Path::new(&key.id),
            key.width,
            key.height,
        );
        update(app, Action::PreviewReady(PreviewResult { key, image }));
    }
}

#[test]
fn saliency_overlay_on_the_preview() {
    for (width, height) in [(120, 40), (80, 24)] {
        let dir = tempfile::tempdir().unwrap();
        let mut app = inspected(width, height, dir.path());
        app.inspect.available = true;
        update(&mut app, Action::CycleOverlay);
        let waiting = render(&app, width, height);
        assert!(waiting.contains("computing the saliency of"), "{waiting}");
        load_overlay(&mut app, dir.path());
        app.notice = None;
        let screen = render(&app, width, height);
        assert!(screen.contains("(pred) 0.8s"), "{screen}");
        insta::assert_snapshot!(format!("overlay_{width}x{height}"), screen);
    }
    // Without a model to ask (tests, or no worker), the panel says so instead of waiting.
    let dir = tempfile::tempdir().unwrap();
    let mut app = inspected(80, 24, dir.path());
    update(&mut app, Action::CycleOverlay);
    assert!(render(&app, 80, 24).contains("saliency unavailable"));
}

#[test]
fn nearest_training_images_panel() {
    for (width, height) in [(120, 40), (80, 24)] {
        let dir = tempfile::tempdir().unwrap();
        let mut app = inspected(width, height, dir.path());
        app.inspect.available = true;
        update(&mut app, Action::ToggleNeighbours);
        // The full screen's preview is shorter beside the strip: encoded again for its size.
        if app.preview_key().is_some() {
            load_preview(&mut app, dir.path(), false);
        }
        let waiting = render(&app, width, height);
        assert!(waiting.contains("finding the neighbours"), "{waiting}");
        load_neighbours(&mut app, dir.path());
        let screen = render(&app, width, height);
        assert!(screen.contains("missing"), "{screen}");
        assert!(screen.contains("✗ "), "{screen}");
        assert!(screen.contains("d 3.10"), "{screen}");
        insta::assert_snapshot!(format!("neighbours_{width}x{height}"), screen);
    }
}

/// The confusion matrix over the inspected data, its cursor moved off the diagonal.
fn confusion(width: u16, height: u16, root: &Path) -> App {
    let mut app = inspected(width, height, root);
    apply(
        &mut app,
        [
            Action::ToggleConfusion,
            Action::ConfusionMove {
                rows: -99,
                cols: -99,
            },
            Action::ConfusionMove { rows: 3, cols: 5 },
        ],
    );
    assert_eq!(app.mode, Mode::Confusion);
    app
}

#[test]
fn confusion_matrix_80x24_and_120x40() {
    let dir = tempfile::tempdir().unwrap();
    let app = confusion(80, 24, dir.path());
    let screen = render(&app, 80, 24);
    assert!(screen.contains("chain saw → French horn"), "{screen}");
    insta::assert_snapshot!("confusion_80x24", screen);
    let app = confusion(120, 40, dir.path());
    let screen = render(&app, 120, 40);
    // Wide enough for percentages in every cell.
    assert!(screen.contains('%'), "{screen}");
    insta::assert_snapshot!("confusion_120x40", screen);
    // Every size from the minimum down to nothing draws without a panic.
    for (w, h) in [(79, 23), (40, 10), (3, 2), (0, 0)] {
        render(&app, w, h);
    }
}

#[test]
fn suspected_label_errors_sorted_by_label_issue_120x40() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = inspected(120, 40, dir.path());
    while app.filter != reason::dashboard::session::Filter::SuspectedLabelError {
        update(&mut app, Action::NextFilter);
    }
    while app.sort.key != reason::dashboard::session::SortKey::LabelIssue {
        update(&mut app, Action::NextSort);
    }
    apply(&mut app, [Action::First]);
    app.notice = None;
    let screen = render(&app, 120, 40);
    assert!(screen.contains("suspected label error"), "{screen}");
    insta::assert_snapshot!("suspected_label_errors_120x40", screen);
}

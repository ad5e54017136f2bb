//! The dashboard's reducer driven by `Action` sequences, without a terminal.

mod dashboard_support;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use dashboard_support::{app, record_set, unlabelled};
use reason::dashboard::app::{LoadState, Mode, SaveUrgency};
use reason::dashboard::session::{Annotation, Filter, Session, Sort, SortKey, Verdict};
use reason::dashboard::{keys, update, Action, App, Theme};
use reason::reliability::records::{RecordSet, ScoringEvent};

fn apply(app: &mut App, actions: impl IntoIterator<Item = Action>) {
    for action in actions {
        update(app, action);
    }
}

fn typed(text: &str) -> Vec<Action> {
    text.chars().map(Action::Input).collect()
}

fn selected_id(app: &App) -> String {
    app.selected_record().unwrap().id.clone()
}

fn view_ids(app: &App) -> Vec<String> {
    (0..app.view.len())
        .map(|p| app.record(p).unwrap().id.clone())
        .collect()
}

/// Ids of the records passing `keep`, in path order.
fn brute_force(
    app: &App,
    keep: impl Fn(&reason::reliability::records::SampleRecord) -> bool,
) -> Vec<String> {
    let mut ids: Vec<String> = app
        .data
        .records
        .iter()
        .filter(|r| keep(r))
        .map(|r| r.id.clone())
        .collect();
    ids.sort();
    ids
}

#[test]
fn threshold_moves_match_a_brute_force_count() {
    let mut app = app(record_set(700, 1), Session::default(), 120, 40);
    let steps = [
        Action::ThresholdBy(0.01),
        Action::ThresholdBy(0.1),
        Action::ThresholdBy(-0.01),
        Action::SetThreshold(0.8123),
        Action::ThresholdBy(0.5),
        Action::SetThreshold(-3.0),
        Action::SetThreshold(0.05),
        Action::ThresholdBy(-0.1),
    ];
    let mut expected_t = 0.5f32;
    for step in steps {
        expected_t = match step {
            Action::ThresholdBy(d) => expected_t + d,
            Action::SetThreshold(t) => t,
            _ => unreachable!(),
        };
        expected_t = ((expected_t.clamp(0.0, 1.0)) * 1000.0).round() / 1000.0;
        update(&mut app, step);
        let t = app.threshold;
        assert!((t - expected_t).abs() < 1e-6, "{t} vs {expected_t}");
        let (mut acc, mut acc_right, mut acc_wrong, mut rej_right) = (0, 0, 0, 0);
        for r in &app.data.records {
            let accepted = r.p_correct >= t;
            let right = r.label == Some(r.pred);
            acc += accepted as usize;
            acc_right += (accepted && right) as usize;
            acc_wrong += (accepted && !right) as usize;
            rej_right += (!accepted && right) as usize;
        }
        let s = app.stats;
        assert_eq!(
            (
                s.accepted,
                s.accepted_right,
                s.accepted_wrong,
                s.rejected_right
            ),
            (acc, acc_right, acc_wrong, rej_right),
            "threshold {t}"
        );
        assert_eq!(s.coverage, Some(acc as f64 / 700.0));
        let labelled = acc_right + acc_wrong;
        assert_eq!(
            s.trusted_accuracy,
            (labelled > 0).then(|| acc_right as f64 / labelled as f64)
        );
    }
    assert_eq!(app.unsaved, Some(SaveUrgency::Debounced));
}

#[test]
fn every_filter_shows_exactly_its_samples() {
    let mut app = app(record_set(400, 2), Session::default(), 120, 40);
    update(&mut app, Action::SetThreshold(0.6));
    let t = app.threshold;
    let ids = |a: &App| view_ids(a);

    assert_eq!(app.filter, Filter::All);
    assert_eq!(ids(&app), brute_force(&app, |_| true));
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::Wrong);
    assert_eq!(ids(&app), brute_force(&app, |r| r.label != Some(r.pred)));
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::Rejected);
    assert_eq!(ids(&app), brute_force(&app, |r| r.p_correct < t));
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::ConfidentWrong);
    assert_eq!(
        ids(&app),
        brute_force(&app, |r| r.p_correct >= t && r.label != Some(r.pred))
    );
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::RejectedRight);
    assert_eq!(
        ids(&app),
        brute_force(&app, |r| r.p_correct < t && r.label == Some(r.pred))
    );
    // Class filters start at the selected sample's class and cycle with ] and [.
    update(&mut app, Action::NextFilter);
    let Filter::Class(first) = app.filter.clone() else {
        panic!("expected a class filter, got {:?}", app.filter)
    };
    let class_of = |a: &App, c: &str| a.data.classes.iter().position(|x| x == c).unwrap() as u16;
    let c = class_of(&app, &first);
    assert_eq!(ids(&app), brute_force(&app, |r| r.label == Some(c)));
    update(&mut app, Action::NextFilterValue);
    let Filter::Class(second) = app.filter.clone() else {
        panic!()
    };
    assert_ne!(first, second);
    let c2 = class_of(&app, &second);
    assert_eq!(ids(&app), brute_force(&app, |r| r.label == Some(c2)));
    update(&mut app, Action::PrevFilterValue);
    assert_eq!(app.filter, Filter::Class(first));
    // Annotated and tag filters.
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::Annotated);
    assert!(app.view.is_empty());
    // No tags yet: the tag filter is skipped, on to the suspected label errors, then All.
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::SuspectedLabelError);
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::All);
    // Backwards from All: suspected label errors, annotated (tag skipped).
    update(&mut app, Action::PrevFilter);
    assert_eq!(app.filter, Filter::SuspectedLabelError);
    update(&mut app, Action::PrevFilter);
    assert_eq!(app.filter, Filter::Annotated);
}

#[test]
fn threshold_dependent_filters_follow_the_slider() {
    let mut app = app(record_set(300, 3), Session::default(), 120, 40);
    apply(&mut app, [Action::NextFilter, Action::NextFilter]);
    assert_eq!(app.filter, Filter::Rejected);
    let before = app.view.len();
    update(&mut app, Action::ThresholdBy(0.1));
    let t = app.threshold;
    assert_eq!(view_ids(&app), brute_force(&app, |r| r.p_correct < t));
    assert!(app.view.len() > before);
}

#[test]
fn tags_and_annotated_filters() {
    let mut app = app(record_set(100, 4), Session::default(), 120, 40);
    update(&mut app, Action::MoveBy(3));
    let a = selected_id(&app);
    update(&mut app, Action::EditTags);
    apply(&mut app, typed("blurry, crop"));
    update(&mut app, Action::InputSubmit);
    update(&mut app, Action::MoveBy(5));
    let b = selected_id(&app);
    update(&mut app, Action::EditTags);
    apply(&mut app, typed("crop"));
    update(&mut app, Action::InputSubmit);
    update(&mut app, Action::MoveBy(1));
    let c = selected_id(&app);
    update(&mut app, Action::CycleVerdict);

    // f until Annotated, then once more to the tag filter.
    while app.filter != Filter::Annotated {
        update(&mut app, Action::NextFilter);
    }
    assert_eq!(view_ids(&app), vec![a.clone(), b.clone(), c.clone()]);
    update(&mut app, Action::NextFilter);
    // The cursor is on c (no tags), so the tag filter starts at the first tag overall.
    assert_eq!(app.filter, Filter::Tag("blurry".into()));
    assert_eq!(view_ids(&app), vec![a.clone()]);
    update(&mut app, Action::NextFilterValue);
    assert_eq!(app.filter, Filter::Tag("crop".into()));
    assert_eq!(view_ids(&app), vec![a.clone(), b.clone()]);
    // Untagging b while filtering on its tag drops it from the view.
    update(&mut app, Action::Last);
    assert_eq!(selected_id(&app), b);
    update(&mut app, Action::EditTags);
    assert_eq!(
        app.mode,
        Mode::Tags {
            id: b.clone(),
            input: "crop".into()
        }
    );
    apply(&mut app, (0..4).map(|_| Action::InputBackspace));
    update(&mut app, Action::InputSubmit);
    assert_eq!(view_ids(&app), vec![a]);
    assert!(app.annotation(&b).is_none());
}

#[test]
fn sorts_order_the_view_and_keep_the_cursor_on_its_sample() {
    let mut app = app(record_set(500, 5), Session::default(), 120, 40);
    update(&mut app, Action::MoveBy(42));
    let id = selected_id(&app);
    let key = |a: &App, p: usize| a.record(p).unwrap().p_correct;

    update(&mut app, Action::NextSort);
    assert_eq!(
        app.sort,
        Sort {
            key: SortKey::PCorrect,
            descending: false
        }
    );
    assert!((1..app.view.len()).all(|p| key(&app, p - 1) <= key(&app, p)));
    assert_eq!(selected_id(&app), id);

    update(&mut app, Action::ReverseSort);
    assert!((1..app.view.len()).all(|p| key(&app, p - 1) >= key(&app, p)));
    assert_eq!(selected_id(&app), id);

    update(&mut app, Action::NextSort);
    assert_eq!(app.sort.key, SortKey::Msp);
    let msp = |a: &App, p: usize| a.record(p).unwrap().diagnostics.msp;
    assert!((1..app.view.len()).all(|p| msp(&app, p - 1) <= msp(&app, p)));

    update(&mut app, Action::NextSort);
    assert_eq!(
        app.sort,
        Sort {
            key: SortKey::GradSensitivity,
            descending: true
        }
    );
    let g = |a: &App, p: usize| a.record(p).unwrap().diagnostics.grad_sensitivity;
    assert!((1..app.view.len()).all(|p| g(&app, p - 1) >= g(&app, p)));

    update(&mut app, Action::NextSort);
    assert_eq!(app.sort.key, SortKey::KnnDistance);
    let k = |a: &App, p: usize| a.record(p).unwrap().diagnostics.knn_distance;
    assert!((1..app.view.len()).all(|p| k(&app, p - 1) >= k(&app, p)));
    assert_eq!(selected_id(&app), id);

    update(&mut app, Action::NextSort);
    assert_eq!(app.sort.key, SortKey::LabelIssue);
    let issue = |a: &App, p: usize| {
        let r = a.record(p).unwrap();
        1.0 - r.probs[r.label.unwrap() as usize]
    };
    assert!((1..app.view.len()).all(|p| issue(&app, p - 1) >= issue(&app, p)));
    assert_eq!(selected_id(&app), id);

    update(&mut app, Action::NextSort);
    assert_eq!(app.sort.key, SortKey::Path);
    assert_eq!(view_ids(&app), brute_force(&app, |_| true));
    assert_eq!(selected_id(&app), id);
    // The cursor is visible after every reorder.
    assert!(app.selected >= app.list_offset && app.selected < app.list_offset + app.list_rows());
}

#[test]
fn filter_changes_keep_the_cursor_when_the_sample_stays() {
    let mut app = app(record_set(300, 6), Session::default(), 120, 40);
    // Put the cursor on a wrong prediction, then filter to wrong ones: same sample.
    let wrong_pos = (0..app.view.len())
        .find(|&p| {
            let r = app.record(p).unwrap();
            r.label != Some(r.pred) && p > 20
        })
        .unwrap();
    update(&mut app, Action::Select(wrong_pos));
    let id = selected_id(&app);
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::Wrong);
    assert_eq!(selected_id(&app), id);
    // Through filters that hide it and back to all: the cursor returns to the same sample.
    apply(&mut app, (0..7).map(|_| Action::NextFilter));
    assert_eq!(app.filter, Filter::All);
    assert_eq!(selected_id(&app), id);
}

#[test]
fn search_is_incremental_esc_cancels_enter_keeps() {
    let mut app = app(record_set(200, 7), Session::default(), 120, 40);
    update(&mut app, Action::StartSearch);
    update(&mut app, Action::Input('0'));
    let after_one = app.view.len();
    apply(&mut app, typed("0000015"));
    assert_eq!(app.search, "00000015");
    assert!(app.view.len() < after_one);
    assert_eq!(
        view_ids(&app),
        brute_force(&app, |r| r.id.contains("00000015"))
    );
    // Esc restores the previous (empty) query.
    update(&mut app, Action::InputCancel);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.search, "");
    assert_eq!(app.view.len(), 200);
    // Enter keeps it; case does not matter.
    update(&mut app, Action::StartSearch);
    apply(&mut app, typed("n01440764/ilsvrc2012_val_0000001"));
    update(&mut app, Action::InputSubmit);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.view.len(), 10);
    // Esc in the list clears it.
    update(&mut app, Action::ClearSearch);
    assert_eq!(app.view.len(), 200);
}

#[test]
fn annotations_are_recorded_and_marked_for_saving() {
    let mut app = app(record_set(50, 8), Session::default(), 120, 40);
    update(&mut app, Action::MoveBy(2));
    let id = selected_id(&app);
    update(&mut app, Action::EditNote);
    apply(&mut app, typed("  odd crop  "));
    update(&mut app, Action::InputSubmit);
    assert_eq!(app.unsaved, Some(SaveUrgency::Now));
    update(&mut app, Action::CycleVerdict);
    update(&mut app, Action::CycleVerdict);
    update(&mut app, Action::EditTags);
    apply(&mut app, typed("a, b, a,"));
    update(&mut app, Action::InputSubmit);
    assert_eq!(
        app.annotation(&id),
        Some(&Annotation {
            tags: vec!["a".into(), "b".into()],
            verdict: Some(Verdict::LabelError),
            note: "odd crop".into(),
        })
    );
    // Esc in an editor leaves the annotation alone.
    update(&mut app, Action::EditNote);
    apply(&mut app, typed(" more"));
    update(&mut app, Action::InputCancel);
    assert_eq!(app.annotation(&id).unwrap().note, "odd crop");

    let saved = app.session_snapshot();
    assert_eq!(saved.cursor.as_deref(), Some(id.as_str()));
    assert_eq!(saved.annotations.len(), 1);
    // Cycling the verdict to none and clearing tags and note removes the entry.
    apply(&mut app, (0..3).map(|_| Action::CycleVerdict));
    assert_eq!(app.annotation(&id).unwrap().verdict, None);
    update(&mut app, Action::EditTags);
    apply(&mut app, (0..10).map(|_| Action::InputBackspace));
    update(&mut app, Action::InputSubmit);
    update(&mut app, Action::EditNote);
    apply(&mut app, (0..10).map(|_| Action::InputBackspace));
    update(&mut app, Action::InputSubmit);
    assert!(app.session.annotations.is_empty());
}

#[test]
fn reopening_a_session_resumes_where_the_user_left() {
    let set = record_set(300, 9);
    let mut first = app(set.clone(), Session::default(), 120, 40);
    apply(
        &mut first,
        [
            Action::ThresholdBy(0.1),
            Action::NextSort,
            Action::NextFilter,
            Action::MoveBy(7),
        ],
    );
    update(&mut first, Action::EditTags);
    apply(&mut first, typed("x"));
    update(&mut first, Action::InputSubmit);
    let id = selected_id(&first);
    let saved = first.session_snapshot();

    // Through a file, as on disk.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    saved.save(&path).unwrap();
    let loaded = Session::load(&path).unwrap().unwrap();
    let second = app(set, loaded, 120, 40);
    assert_eq!(second.threshold, 0.6);
    assert_eq!(second.sort.key, SortKey::PCorrect);
    assert_eq!(second.filter, Filter::Wrong);
    assert_eq!(selected_id(&second), id);
    assert_eq!(second.annotation(&id).unwrap().tags, vec!["x"]);
}

#[test]
fn records_arrive_progressively() {
    let all = record_set(250, 10);
    let resume_at = all.records[180].id.clone();
    let session = Session {
        cursor: Some(resume_at.clone()),
        ..Session::default()
    };
    let mut app = App::scoring(session, Theme::dark(), "streaming");
    update(
        &mut app,
        Action::Resize {
            width: 120,
            height: 40,
        },
    );
    assert!(app.view.is_empty());
    assert!(app.selected_record().is_none());
    let header = RecordSet {
        records: Vec::new(),
        calibration: None,
        threshold: 0.55,
        ..all.clone()
    };
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Started { total: 250, header }),
    );
    assert_eq!(app.threshold, 0.55);
    for (i, chunk) in all.records.chunks(50).enumerate() {
        update(
            &mut app,
            Action::Scoring(ScoringEvent::Progress {
                stage: "features".into(),
                done: (i + 1) * 50,
                total: 250,
            }),
        );
        update(
            &mut app,
            Action::Scoring(ScoringEvent::Records(chunk.to_vec())),
        );
        let n = (i + 1) * 50;
        assert_eq!(app.view.len(), n);
        assert_eq!(app.stats.total, n);
        // The session's cursor applies once its sample has arrived.
        if n > 180 {
            assert_eq!(selected_id(&app), resume_at);
        } else {
            assert_eq!(app.selected, 0);
        }
    }
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Skipped {
            id: "bad.jpg".into(),
            reason: "truncated".into(),
        }),
    );
    assert_eq!(app.skipped, 1);
    update(&mut app, Action::Scoring(ScoringEvent::Finished));
    assert_eq!(app.load, LoadState::Ready);
    assert!(app
        .notice
        .as_ref()
        .unwrap()
        .text
        .contains("scored 250 samples, 1 skipped"));
    // Same numbers as opening the finished set at once.
    let at_once = App::new(
        RecordSet {
            threshold: 0.55,
            ..all
        },
        Session::default(),
        Theme::dark(),
        "",
    );
    assert_eq!(app.stats, at_once.stats);
    assert_eq!(app.derived.summary, at_once.derived.summary);
}

#[test]
fn a_moved_cursor_wins_over_the_sessions_pending_one() {
    let all = record_set(100, 11);
    let session = Session {
        cursor: Some(all.records[90].id.clone()),
        ..Session::default()
    };
    let mut app = App::scoring(session, Theme::dark(), "");
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Records(all.records[..50].to_vec())),
    );
    update(&mut app, Action::MoveBy(3));
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Records(all.records[50..].to_vec())),
    );
    assert_eq!(selected_id(&app), all.records[3].id);
    update(
        &mut app,
        Action::Scoring(ScoringEvent::Failed("disk full".into())),
    );
    assert_eq!(app.load, LoadState::Failed("disk full".into()));
    assert_eq!(app.view.len(), 100);
}

#[test]
fn unlabelled_and_empty_data_have_no_correctness_numbers() {
    let mut app = app(unlabelled(record_set(80, 12)), Session::default(), 80, 24);
    assert_eq!(app.derived.labelled, 0);
    assert!(app.derived.summary.is_none());
    assert_eq!(app.stats.trusted_accuracy, None);
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::Wrong);
    assert!(app.view.is_empty());
    assert!(app.notice.as_ref().unwrap().text.contains("no labels"));

    let mut empty = app_empty();
    for action in [
        Action::MoveBy(1),
        Action::PageBy(1),
        Action::Last,
        Action::First,
        Action::ThresholdBy(0.1),
        Action::NextFilter,
        Action::NextSort,
        Action::EditTags,
        Action::EditNote,
        Action::CycleVerdict,
        Action::Export,
    ] {
        update(&mut empty, action);
    }
    assert!(empty.selected_record().is_none());
    assert_eq!(empty.mode, Mode::Normal);
}

fn app_empty() -> App {
    app(RecordSet::default(), Session::default(), 80, 24)
}

#[test]
fn paging_and_ends() {
    let mut app = app(record_set(1000, 13), Session::default(), 120, 40);
    let rows = app.list_rows();
    assert!(rows > 5);
    update(&mut app, Action::PageBy(1));
    assert_eq!(app.selected, rows);
    update(&mut app, Action::Last);
    assert_eq!(app.selected, 999);
    assert_eq!(app.list_offset, 1000 - rows);
    update(&mut app, Action::PageBy(-1));
    assert_eq!(app.selected, 999 - rows);
    update(&mut app, Action::First);
    assert_eq!((app.selected, app.list_offset), (0, 0));
}

#[test]
fn keys_map_to_actions_by_mode() {
    let mut app = app(record_set(100, 14), Session::default(), 120, 40);
    let key = |c: KeyCode| KeyEvent::new(c, KeyModifiers::NONE);
    assert!(matches!(
        keys::action_for_key(&app, &key(KeyCode::Char('j'))),
        Some(Action::MoveBy(1))
    ));
    assert!(matches!(
        keys::action_for_key(&app, &key(KeyCode::Up)),
        Some(Action::MoveBy(-1))
    ));
    assert!(
        matches!(keys::action_for_key(&app, &key(KeyCode::Char('L'))), Some(Action::ThresholdBy(d)) if d == 0.1)
    );
    assert!(
        matches!(keys::action_for_key(&app, &key(KeyCode::Left)), Some(Action::ThresholdBy(d)) if d == -0.01)
    );
    assert!(matches!(
        keys::action_for_key(&app, &key(KeyCode::Char('q'))),
        Some(Action::Quit)
    ));
    update(&mut app, Action::EditNote);
    // In an editor, letters are text.
    assert!(matches!(
        keys::action_for_key(&app, &key(KeyCode::Char('q'))),
        Some(Action::Input('q'))
    ));
    assert!(matches!(
        keys::action_for_key(&app, &key(KeyCode::Esc)),
        Some(Action::InputCancel)
    ));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(matches!(
        keys::action_for_key(&app, &ctrl_c),
        Some(Action::Quit)
    ));
    update(&mut app, Action::InputCancel);
    update(&mut app, Action::ToggleHelp);
    assert!(keys::action_for_key(&app, &key(KeyCode::Char('j'))).is_none());
    assert!(matches!(
        keys::action_for_key(&app, &key(KeyCode::Esc)),
        Some(Action::ToggleHelp)
    ));
}

#[test]
fn mouse_selects_rows_scrolls_and_drags_the_slider() {
    let mut app = app(record_set(100, 15), Session::default(), 120, 40);
    let screen = app.screen().unwrap();
    let mouse = |kind, column, row| MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    let body = screen.list_body();
    let click = mouse(
        MouseEventKind::Down(MouseButton::Left),
        body.x + 3,
        body.y + 4,
    );
    let action = keys::action_for_mouse(&app, &click).unwrap();
    assert!(matches!(action, Action::Select(4)));
    update(&mut app, action);
    assert_eq!(app.selected, 4);

    let wheel = mouse(MouseEventKind::ScrollDown, body.x + 3, body.y);
    let action = keys::action_for_mouse(&app, &wheel).unwrap();
    update(&mut app, action);
    assert_eq!(app.selected, 7);

    let track = screen.slider_track();
    let press = mouse(
        MouseEventKind::Down(MouseButton::Left),
        track.x + track.width - 1,
        track.y,
    );
    let action = keys::action_for_mouse(&app, &press).unwrap();
    update(&mut app, action);
    assert_eq!(app.threshold, 1.0);
    // Dragging past the left end clamps to 0.
    let drag = mouse(MouseEventKind::Drag(MouseButton::Left), 0, track.y);
    let action = keys::action_for_mouse(&app, &drag).unwrap();
    update(&mut app, action);
    assert_eq!(app.threshold, 0.0);
    let middle = mouse(
        MouseEventKind::Drag(MouseButton::Left),
        track.x + (track.width - 1) / 2,
        track.y,
    );
    let action = keys::action_for_mouse(&app, &middle).unwrap();
    update(&mut app, action);
    assert!((app.threshold - 0.5).abs() < 0.02, "{}", app.threshold);

    // Ignored under a popup.
    update(&mut app, Action::ToggleHelp);
    assert!(keys::action_for_mouse(&app, &click).is_none());
}

#[test]
fn side_panel_cycles() {
    let mut app = app(record_set(10, 16), Session::default(), 80, 24);
    use reason::dashboard::layout::SidePanel;
    assert_eq!(app.side_panel, SidePanel::Inspect);
    update(&mut app, Action::NextPanel);
    assert_eq!(app.side_panel, SidePanel::Meta);
    update(&mut app, Action::NextPanel);
    assert_eq!(app.side_panel, SidePanel::Charts);
    update(&mut app, Action::NextPanel);
    assert_eq!(app.side_panel, SidePanel::Neighbours);
    update(&mut app, Action::NextPanel);
    assert_eq!(app.side_panel, SidePanel::Inspect);
}

#[test]
fn wanted_previews_are_the_selection_then_its_neighbours() {
    let mut app = app(record_set(30, 17), Session::default(), 120, 40);
    update(&mut app, Action::MoveBy(10));
    let wanted: Vec<String> = app.wanted_previews().into_iter().map(|k| k.id).collect();
    let at = |p: usize| app.record(p).unwrap().id.clone();
    assert_eq!(wanted, vec![at(10), at(11), at(9), at(12), at(8)]);
    let key = app.preview_key().unwrap();
    let area = app.screen().unwrap().preview_image();
    assert_eq!((key.width, key.height), (area.width, area.height));
}

/// Every key of the key map, pressed as a key (through `action_for_key` and `update`), does what
/// its help line says; a key added to the map without a line here fails the coverage check.
#[test]
fn every_key_does_what_its_help_says() {
    use std::collections::HashSet;
    let mut app = app(record_set(200, 17), Session::default(), 120, 40);
    let mut pressed: HashSet<KeyCode> = HashSet::new();
    let mut press = |app: &mut App, code: KeyCode| {
        pressed.insert(code);
        let event = KeyEvent::new(code, KeyModifiers::NONE);
        let action = keys::action_for_key(app, &event)
            .unwrap_or_else(|| panic!("{code:?} does nothing in {:?}", app.mode));
        update(app, action);
    };
    let rows = app.list_rows();

    // Moving: j ↓ / k ↑, PgDn / PgUp, g Home / G End.
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected, 2);
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(app.selected, 1);
    press(&mut app, KeyCode::Up);
    assert_eq!(app.selected, 0);
    press(&mut app, KeyCode::PageDown);
    assert_eq!(app.selected, rows);
    press(&mut app, KeyCode::PageUp);
    assert_eq!(app.selected, 0);
    press(&mut app, KeyCode::Char('G'));
    assert_eq!(app.selected, 199);
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(app.selected, 0);
    press(&mut app, KeyCode::End);
    assert_eq!(app.selected, 199);
    press(&mut app, KeyCode::Home);
    assert_eq!(app.selected, 0);

    // The threshold: l → / h ← by 0.01, L / H by 0.1.
    let t0 = app.threshold;
    let moved = |app: &App| ((app.threshold - t0) * 100.0).round() as i32;
    press(&mut app, KeyCode::Char('l'));
    assert_eq!(moved(&app), 1);
    press(&mut app, KeyCode::Right);
    assert_eq!(moved(&app), 2);
    press(&mut app, KeyCode::Char('h'));
    assert_eq!(moved(&app), 1);
    press(&mut app, KeyCode::Left);
    assert_eq!(moved(&app), 0);
    press(&mut app, KeyCode::Char('L'));
    assert_eq!(moved(&app), 10);
    press(&mut app, KeyCode::Char('H'));
    assert_eq!(moved(&app), 0);

    // Search: / opens it, letters narrow the list, Enter keeps it, Esc clears it.
    press(&mut app, KeyCode::Char('/'));
    assert!(matches!(app.mode, Mode::Search { .. }));
    for c in "00000007".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.search, "00000007");
    assert_eq!(app.view.len(), 1, "{:?}", view_ids(&app));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.search, "");
    assert_eq!(app.view.len(), 200);

    // Filters: f / F step through the kinds; ] / [ step through the classes of a class filter.
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(app.filter, Filter::Wrong);
    press(&mut app, KeyCode::Char('F'));
    assert_eq!(app.filter, Filter::All);
    for _ in 0..5 {
        press(&mut app, KeyCode::Char('f'));
    }
    let Filter::Class(first) = app.filter.clone() else {
        panic!(
            "five f presses should reach the class filter, got {:?}",
            app.filter
        );
    };
    let at = app.data.classes.iter().position(|c| *c == first).unwrap();
    let n = app.data.classes.len();
    press(&mut app, KeyCode::Char(']'));
    assert_eq!(
        app.filter,
        Filter::Class(app.data.classes[(at + 1) % n].clone())
    );
    press(&mut app, KeyCode::Char('['));
    assert_eq!(app.filter, Filter::Class(first));
    for _ in 0..4 {
        press(&mut app, KeyCode::Char('F'));
    }
    assert_eq!(app.filter, Filter::Wrong);
    press(&mut app, KeyCode::Char('F'));
    assert_eq!(app.filter, Filter::All);

    // Sorting: s to the next column, S reverses it.
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort.key, SortKey::PCorrect);
    let descending = app.sort.descending;
    press(&mut app, KeyCode::Char('S'));
    assert_eq!(app.sort.descending, !descending);

    // Annotations: v cycles the verdict of the selected sample; t and n open their editors.
    let id = selected_id(&app);
    press(&mut app, KeyCode::Char('v'));
    assert_eq!(
        app.annotation(&id).and_then(|a| a.verdict),
        Some(Verdict::ModelError)
    );
    press(&mut app, KeyCode::Char('t'));
    assert!(matches!(app.mode, Mode::Tags { .. }));
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('n'));
    assert!(matches!(app.mode, Mode::Note { .. }));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, KeyCode::Char('e'));
    assert!(app.export_requested);

    // x cycles the saliency overlay: predicted class, labelled class, off; N shows the
    // nearest training images and goes back.
    use reason::dashboard::inspect::Overlay;
    let labelled = app.selected_record().unwrap().label.is_some();
    assert!(labelled, "the synthetic records are labelled");
    press(&mut app, KeyCode::Char('x'));
    assert_eq!(app.inspect.overlay, Overlay::Predicted);
    let key = app.saliency_key().expect("the overlay is wanted");
    assert_eq!(key.class, app.selected_record().unwrap().pred);
    press(&mut app, KeyCode::Char('x'));
    assert_eq!(app.inspect.overlay, Overlay::Labelled);
    assert_eq!(
        Some(app.saliency_key().unwrap().class),
        app.selected_record().unwrap().label
    );
    press(&mut app, KeyCode::Char('x'));
    assert_eq!(app.inspect.overlay, Overlay::Off);
    assert!(app.saliency_key().is_none());
    press(&mut app, KeyCode::Char('N'));
    assert_eq!(
        app.side_panel,
        reason::dashboard::layout::SidePanel::Neighbours
    );
    assert!(app.wanted_inspection().neighbours.is_some());
    press(&mut app, KeyCode::Char('N'));
    assert_eq!(
        app.side_panel,
        reason::dashboard::layout::SidePanel::Inspect
    );
    assert!(app.wanted_inspection().neighbours.is_none());
    // The confusion matrix: c opens it on the selected sample's cell, arrows and hjkl move the
    // cell cursor, Enter filters the list to the cell, Esc and c leave.
    let r = app.selected_record().unwrap().clone();
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(app.mode, Mode::Confusion);
    let cursor = app.confusion_cursor;
    assert_eq!((Some(cursor.label), cursor.pred), (r.label, r.pred));
    for (code, (dl, dp)) in [
        (KeyCode::Char('g'), (0, 0)),
        (KeyCode::Up, (-1, 0)),
        (KeyCode::Down, (1, 0)),
        (KeyCode::Char('k'), (-1, 0)),
        (KeyCode::Char('j'), (1, 0)),
        (KeyCode::Left, (0, -1)),
        (KeyCode::Right, (0, 1)),
        (KeyCode::Char('h'), (0, -1)),
        (KeyCode::Char('l'), (0, 1)),
    ] {
        let before = app.confusion_cursor;
        let event = KeyEvent::new(code, KeyModifiers::NONE);
        match keys::action_for_key(&app, &event) {
            Some(action) => update(&mut app, action),
            None => assert_eq!(code, KeyCode::Char('g'), "{code:?} does nothing"),
        }
        let clamp = |v: i32| v.clamp(0, app.data.classes.len() as i32 - 1) as u16;
        assert_eq!(
            (app.confusion_cursor.label, app.confusion_cursor.pred),
            (
                clamp(before.label as i32 + dl),
                clamp(before.pred as i32 + dp)
            ),
            "{code:?}"
        );
    }
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, KeyCode::Char('c'));
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, KeyCode::Char('c'));
    let cell = app.confusion_cursor;
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Normal);
    let class = |i: u16| app.data.classes[i as usize].clone();
    assert_eq!(
        app.filter,
        Filter::Cell {
            label: class(cell.label),
            pred: class(cell.pred)
        }
    );
    assert!(view_ids(&app).contains(&r.id));
    press(&mut app, KeyCode::Char('F'));
    assert_eq!(app.filter, Filter::RejectedRight);
    press(&mut app, KeyCode::Char('f'));
    assert!(matches!(app.filter, Filter::Class(_)), "{:?}", app.filter);
    press(&mut app, KeyCode::Char('g'));

    // Tab cycles the side panel; ? opens and closes the help; q quits.
    let panel = app.side_panel;
    press(&mut app, KeyCode::Tab);
    assert_ne!(app.side_panel, panel);
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(app.mode, Mode::Help);
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, KeyCode::Char('q'));
    assert!(app.quit);

    let in_the_map: HashSet<KeyCode> = keys::NORMAL_KEYS
        .iter()
        .flat_map(|b| {
            b.keys
                .iter()
                .chain(b.back.iter().flat_map(|(k, _)| k.iter()))
        })
        .copied()
        .collect();
    let untested: Vec<_> = in_the_map.difference(&pressed).collect();
    assert!(untested.is_empty(), "keys with no check here: {untested:?}");
}

#[test]
fn the_wheel_scrolls_the_list_both_ways() {
    let mut app = app(record_set(100, 18), Session::default(), 120, 40);
    let body = app.screen().unwrap().list_body();
    let wheel = |kind| MouseEvent {
        kind,
        column: body.x + 3,
        row: body.y + 1,
        modifiers: KeyModifiers::NONE,
    };
    for (kind, expected) in [
        (MouseEventKind::ScrollDown, 3),
        (MouseEventKind::ScrollDown, 6),
        (MouseEventKind::ScrollUp, 3),
        (MouseEventKind::ScrollUp, 0),
        // Clamped at the top.
        (MouseEventKind::ScrollUp, 0),
    ] {
        let action = keys::action_for_mouse(&app, &wheel(kind)).unwrap();
        update(&mut app, action);
        assert_eq!(app.selected, expected, "after {kind:?}");
    }
    // Outside the list, the wheel does nothing.
    let outside = MouseEvent {
        kind: MouseEventKind::ScrollUp,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    };
    assert!(keys::action_for_mouse(&app, &outside).is_none());
}

/// Records of `classes` classes whose first third is unlabelled.
fn partly_labelled(n: usize, seed: u64) -> RecordSet {
    let mut set = record_set(n, seed);
    for r in set.records.iter_mut().step_by(3) {
        r.label = None;
    }
    set
}

#[test]
fn the_confusion_matrix_counts_every_labelled_sample_once() {
    let mut app = app(partly_labelled(400, 31), Session::default(), 120, 40);
    update(&mut app, Action::SetThreshold(0.55));
    let c = &app.derived.confusion;
    let n = app.data.classes.len() as u16;
    let labelled = app
        .data
        .records
        .iter()
        .filter(|r| r.label.is_some())
        .count();
    assert!(labelled < app.data.records.len());
    let mut sum = 0;
    for l in 0..n {
        for p in 0..n {
            let cell: Vec<_> = app
                .data
                .records
                .iter()
                .filter(|r| r.label == Some(l) && r.pred == p)
                .collect();
            assert_eq!(c.count(l, p), cell.len(), "cell {l},{p}");
            let rejected = cell.iter().filter(|r| !app.accepted(r)).count();
            assert_eq!(c.rejected(l, p, app.threshold), rejected, "cell {l},{p}");
            sum += c.count(l, p);
        }
    }
    assert_eq!(sum, labelled);
    assert_eq!(c.total, labelled);
    assert_eq!(app.derived.labelled, labelled);
    // The most confused pairs are the off-diagonal cells, largest first.
    let off: usize = c.confused.iter().map(|&(_, _, k)| k).sum();
    let diagonal: usize = (0..n).map(|i| c.count(i, i)).sum();
    assert_eq!(off + diagonal, labelled);
    assert!(c.confused.windows(2).all(|w| w[0].2 >= w[1].2));
    assert!(c
        .confused
        .iter()
        .all(|&(l, p, k)| l != p && c.count(l, p) == k));

    // Enter on a cell (the most confused one) shows exactly that cell's samples.
    let (l, p, _) = c.confused[0];
    update(&mut app, Action::ToggleConfusion);
    apply(
        &mut app,
        [
            Action::ConfusionMove {
                rows: -99,
                cols: -99,
            },
            Action::ConfusionMove {
                rows: l as isize,
                cols: p as isize,
            },
            Action::ConfusionSelect,
        ],
    );
    assert_eq!(app.mode, Mode::Normal);
    let expected = brute_force(&app, |r| r.label == Some(l) && r.pred == p);
    assert!(!expected.is_empty());
    let mut shown = view_ids(&app);
    shown.sort();
    assert_eq!(shown, expected);
    let label_name = app.class_name(l);
    assert!(
        app.filter_label().contains(&label_name),
        "{}",
        app.filter_label()
    );

    // Unlabelled data has no matrix: c says so and stays in the list.
    let mut app = app_unlabelled();
    update(&mut app, Action::ToggleConfusion);
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.notice.as_ref().unwrap().text.contains("no labels"));
}

fn app_unlabelled() -> App {
    app(unlabelled(record_set(50, 3)), Session::default(), 80, 24)
}

#[test]
fn many_classes_give_the_most_confused_pairs_and_enter_filters_to_one() {
    // 30 classes: class i is predicted as i+1 for i images, so pair (29 → 0) is the largest.
    let classes: Vec<String> = (0..30).map(|i| format!("class{i:02}")).collect();
    let mut records = Vec::new();
    let mut set = record_set(1, 1);
    let template = set.records.remove(0);
    for l in 0..30u16 {
        for k in 0..(l as usize + 3) {
            let pred = if k < l as usize { (l + 1) % 30 } else { l };
            let mut probs = vec![0.01f32; 30];
            probs[pred as usize] = 0.7;
            records.push(reason::reliability::records::SampleRecord {
                id: format!("{}/{k:03}.png", classes[l as usize]),
                label: Some(l),
                pred,
                probs,
                ..template.clone()
            });
        }
    }
    set.classes = classes.clone();
    set.class_names = classes.clone();
    set.records = records;
    let mut app = app(set, Session::default(), 80, 24);
    let c = &app.derived.confusion;
    assert!(!c.is_grid());
    assert_eq!(c.confused[0], (29, 0, 29));
    assert_eq!(c.confused[1], (28, 29, 28));
    update(&mut app, Action::ToggleConfusion);
    apply(
        &mut app,
        [
            Action::ConfusionMove { rows: -5, cols: 0 },
            Action::ConfusionMove { rows: 1, cols: 0 },
            Action::ConfusionSelect,
        ],
    );
    assert_eq!(
        app.filter,
        Filter::Cell {
            label: "class28".into(),
            pred: "class29".into()
        }
    );
    assert_eq!(app.view.len(), 28);
}

#[test]
fn suspected_label_errors_are_confident_learnings_and_sort_by_self_confidence() {
    let mut app = app(partly_labelled(300, 41), Session::default(), 120, 40);
    // Confident learning by hand: t_j is the mean p_j of the samples labelled j; a sample is
    // suspected when its most probable class among those reaching their t_j is not its label.
    let n = app.data.classes.len();
    let t: Vec<f32> = (0..n)
        .map(|j| {
            let ps: Vec<f32> = app
                .data
                .records
                .iter()
                .filter(|r| r.label == Some(j as u16))
                .map(|r| r.probs[j])
                .collect();
            ps.iter().sum::<f32>() / ps.len() as f32
        })
        .collect();
    let expected = brute_force(&app, |r| {
        let Some(label) = r.label else { return false };
        let confident = (0..n)
            .filter(|&j| r.probs[j] >= t[j])
            .max_by(|&a, &b| r.probs[a].total_cmp(&r.probs[b]));
        confident.is_some_and(|j| j != label as usize)
    });
    assert!(expected.len() > 5, "{}", expected.len());
    assert!(expected.len() < app.derived.labelled / 2);
    for _ in 0..Filter::KINDS {
        if app.filter == Filter::SuspectedLabelError {
            break;
        }
        update(&mut app, Action::NextFilter);
    }
    assert_eq!(app.filter, Filter::SuspectedLabelError);
    let mut shown = view_ids(&app);
    shown.sort();
    assert_eq!(shown, expected);
    assert_eq!(app.derived.suspects, expected.len());

    // The label-issue sort: 1 − p(label), most suspicious first, unlabelled samples last.
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::All);
    while app.sort.key != SortKey::LabelIssue {
        update(&mut app, Action::NextSort);
    }
    assert!(app.sort.descending);
    let scores: Vec<Option<f32>> = (0..app.view.len())
        .map(|p| {
            let r = app.record(p).unwrap();
            r.label.map(|l| 1.0 - r.probs[l as usize])
        })
        .collect();
    let labelled = app.derived.labelled;
    assert!(scores[..labelled].iter().all(Option::is_some));
    assert!(scores[labelled..].iter().all(Option::is_none));
    assert!(scores[..labelled].windows(2).all(|w| w[0] >= w[1]));
}

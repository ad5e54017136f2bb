//! The real `reason tui` in a pseudo-terminal, scoring real images: a small folder of Imagenette
//! val images is scored in the background by the Lite0 backbone and the trained artifacts in
//! `reason_saved/`, then filtered, annotated and quit; the terminal must be restored, and the
//! session file and the records cache must hold what was done and scored.
//!
//! Needs the real data (`$REASON_DATA` or `../shared/data`) and `reason_saved/`; skipped with a
//! message otherwise.

mod common;
mod dashboard_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dashboard_support::pty::{assert_restored, wait_for_file, wait_until, Tui};
use portable_pty::CommandBuilder;
use reason::dashboard::session::{Filter, Session, Verdict};
use reason::dashboard::{update, Action, App, Theme};
use reason::reliability::records::RecordSet;

/// Classes copied (the artifacts' first class among them), and images per class.
const CLASSES: [&str; 3] = ["n01440764", "n02979186", "n03394916"];
const PER_CLASS: usize = 4;
/// Loading the backbone and scoring with input gradients on a busy 2-core CPU.
const SCORING_TIMEOUT: Duration = Duration::from_secs(180);

/// Copies the first `PER_CLASS` val images of each class into `photos/<wnid>/`; returns the
/// record ids (`<wnid>/<file>`) in path order.
fn copy_images(data: &Path, photos: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for class in CLASSES {
        let from = data.join("imagenette/val").join(class);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&from)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("jpeg"))
            })
            .collect();
        files.sort();
        assert!(
            files.len() >= PER_CLASS,
            "{} has too few images",
            from.display()
        );
        std::fs::create_dir_all(photos.join(class)).unwrap();
        for file in &files[..PER_CLASS] {
            let name = file.file_name().unwrap().to_str().unwrap();
            std::fs::copy(file, photos.join(class).join(name)).unwrap();
            ids.push(format!("{class}/{name}"));
        }
    }
    ids.sort();
    ids
}

/// The records the dashboard's scoring worker stored in the (empty before) cache folder.
fn cached_records(cache: &Path) -> Option<RecordSet> {
    let entry = std::fs::read_dir(cache).ok()?.find_map(|e| {
        let path = e.ok()?.path();
        let name = path.file_name()?.to_str()?;
        (name.starts_with("records-") && name.ends_with(".parquet")).then_some(path)
    })?;
    // A scored table, written atomically: once the name exists the file is complete.
    Some(
        reason::report::scores::read(&entry)
            .unwrap()
            .into_record_set(),
    )
}

#[test]
fn score_a_real_folder_then_filter_annotate_and_quit() {
    let Some(data) = common::data_root("score_a_real_folder_then_filter_annotate_and_quit") else {
        return;
    };
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("reason_saved");
    if !artifacts.join("manifest.json").is_file() {
        eprintln!(
            "SKIPPED score_a_real_folder_then_filter_annotate_and_quit: no trained artifacts at {}",
            artifacts.display()
        );
        return;
    }
    let data = data.canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    let ids = copy_images(&data, &photos);
    let cache = dir.path().join("cache");

    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_reason"));
    cmd.args(["tui", "--folder"]);
    cmd.arg(&photos);
    cmd.arg("--artifacts");
    cmd.arg(&artifacts);
    cmd.args([
        "--session",
        "real",
        "--device",
        "cpu",
        "--image-protocol",
        "halfblocks",
    ]);
    // Sessions go to ./sessions; the default weights come from the data folder; an empty cache
    // makes the worker really score.
    cmd.cwd(dir.path());
    cmd.env("REASON_DATA", &data);
    cmd.env("REASON_CACHE", &cache);
    let started = Instant::now();
    let mut tui = Tui::start(cmd).timeout(SCORING_TIMEOUT);

    let scored = format!("scored {} samples", ids.len());
    tui.wait_for(&scored);
    let scoring_took = started.elapsed();
    let text = tui.text();
    let before = &text[..text.find(&scored).unwrap()];
    // The dashboard was up before the worker had scored anything: its first frame shows the
    // gauge waiting for the worker (later labels are drawn as changed cells, not whole words).
    assert!(
        before.contains("starting the scoring worker"),
        "the dashboard did not show the scoring under way:\n{text}"
    );
    assert!(
        !text.contains("came from the cache"),
        "the scores came from a cache:\n{text}"
    );
    // The worker stores what it scored right after its last records.
    let records = wait_until(SCORING_TIMEOUT, "the records in the cache", || {
        cached_records(&cache)
    })
    .unwrap_or_else(|what| panic!("{what}; output:\n{}", tui.text()));
    // The selected image's half-block preview.
    tui.wait_for("▀");

    // `f` five times: all → wrong → rejected → confident but wrong → rejected but right →
    // class (the selected sample's, else the first class: one of ours either way). Which
    // class depends on the scores; the reducer replayed below says. The cursor stays on the
    // first row of each view, so `j` selects the class's second image.
    tui.keys("fffff");
    let session_file = dir.path().join("sessions/real.json");
    wait_for_file(&session_file, "\"class\"");
    tui.keys("jv");
    wait_for_file(&session_file, "model_error");
    tui.keys("t");
    tui.wait_for("Tags");
    tui.keys("recheck\r");
    wait_for_file(&session_file, "recheck");
    tui.keys("q");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);

    // Scored for real: every image, labelled by its folder, with probabilities.
    let mut scored_ids: Vec<&str> = records.records.iter().map(|r| r.id.as_str()).collect();
    scored_ids.sort();
    assert_eq!(scored_ids, ids);
    let mut right = 0;
    for r in &records.records {
        let class = r.id.split('/').next().unwrap();
        let label = records.classes.iter().position(|c| c == class);
        assert_eq!(r.label.map(usize::from), label, "{}", r.id);
        assert!(
            (0.0..=1.0).contains(&r.p_correct),
            "{}: {}",
            r.id,
            r.p_correct
        );
        let total: f32 = r.probs.iter().sum();
        assert!(
            (total - 1.0).abs() < 1e-3,
            "{}: probabilities sum to {total}",
            r.id
        );
        right += usize::from(r.label == Some(r.pred));
    }
    eprintln!(
        "scored {} images ({right} predicted right) in {scoring_took:.1?}, whole run {:.1?}",
        ids.len(),
        started.elapsed()
    );
    assert!(
        right * 4 >= ids.len() * 3,
        "only {right} of {} predictions are right",
        ids.len()
    );

    // The same keys on the same records, through the reducer, give the expected filter.
    let mut model = App::new(records, Session::default(), Theme::dark(), "photos");
    update(
        &mut model,
        Action::Resize {
            width: 120,
            height: 40,
        },
    );
    for _ in 0..5 {
        update(&mut model, Action::NextFilter);
    }
    let Filter::Class(class) = model.filter.clone() else {
        panic!("five f presses gave {:?}", model.filter);
    };
    let second = ids
        .iter()
        .filter(|id| id.starts_with(&format!("{class}/")))
        .nth(1)
        .unwrap();

    let session = Session::load(&session_file)
        .unwrap()
        .expect("the session was saved");
    assert_eq!(session.filter, Filter::Class(class.clone()));
    assert_eq!(session.cursor.as_deref(), Some(second.as_str()));
    assert_eq!(session.annotations.len(), 1, "{:?}", session.annotations);
    let annotation = &session.annotations[second];
    assert_eq!(annotation.verdict, Some(Verdict::ModelError));
    assert_eq!(annotation.tags, vec!["recheck"]);
}

/// `reason tui --folder photos` on the CPU with `cache` as the cache folder, run in `dir`.
fn tui_in(dir: &Path, photos: &Path, data: &Path, cache: &Path) -> Tui {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("reason_saved");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_reason"));
    cmd.args(["tui", "--folder"]);
    cmd.arg(photos);
    cmd.arg("--artifacts");
    cmd.arg(&artifacts);
    cmd.args(["--device", "cpu", "--image-protocol", "halfblocks"]);
    cmd.cwd(dir);
    cmd.env("REASON_DATA", data);
    cmd.env("REASON_CACHE", cache);
    Tui::start(cmd).timeout(SCORING_TIMEOUT)
}

#[test]
fn a_second_run_opens_from_the_records_cache_until_an_image_changes() {
    let test = "a_second_run_opens_from_the_records_cache_until_an_image_changes";
    let Some(data) = common::data_root(test) else {
        return;
    };
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("reason_saved");
    if !artifacts.join("manifest.json").is_file() {
        eprintln!(
            "SKIPPED {test}: no trained artifacts at {}",
            artifacts.display()
        );
        return;
    }
    let data = data.canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    let ids = copy_images(&data, &photos);
    let cache = dir.path().join("cache");
    let scored = format!("scored {} samples", ids.len());
    let entries = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("records-"))
            .collect();
        names.sort();
        names
    };

    // First run: scored, and stored as a scored table.
    let mut tui = tui_in(dir.path(), &photos, &data, &cache);
    tui.wait_for(&scored);
    let first = wait_until(SCORING_TIMEOUT, "the records in the cache", || {
        cached_records(&cache)
    })
    .unwrap_or_else(|what| panic!("{what}; output:\n{}", tui.text()));
    tui.keys("q");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);
    let stored = entries();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(".parquet"), "{stored:?}");

    // Second run: the same records at once, no scoring worker.
    let mut tui = tui_in(dir.path(), &photos, &data, &cache);
    tui.wait_for(&format!("{} samples", ids.len()));
    tui.keys("q");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);
    let text = String::from_utf8_lossy(&output);
    assert!(
        !text.contains("starting the scoring worker") && !text.contains(&scored),
        "the second run scored again:\n{text}"
    );
    assert_eq!(entries(), stored, "a cache hit writes nothing");

    // A touched image (same bytes, new modification time) is a miss: scored again, stored anew.
    let touched = photos.join(&ids[0]);
    let file = std::fs::File::options().write(true).open(&touched).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    drop(file);
    let mut tui = tui_in(dir.path(), &photos, &data, &cache);
    tui.wait_for(&scored);
    wait_until(SCORING_TIMEOUT, "a second cache entry", || {
        (entries().len() == 2).then_some(())
    })
    .unwrap_or_else(|what| panic!("{what}; output:\n{}", tui.text()));
    tui.keys("q");
    let (ok, output) = tui.finish();
    assert_restored(ok, &output);
    let mut ids_first: Vec<&str> = first.records.iter().map(|r| r.id.as_str()).collect();
    ids_first.sort();
    assert_eq!(ids_first, ids);
}

//! `reason score` and the scored table as users run them, on generated images and seeded random
//! weights (no downloaded data): the table round-trips value for value against an in-process
//! scoring, N shard processes give exactly the rows of one unsharded run, parts that disagree or
//! overlap are refused, an interrupted run resumes and rescores changed images, several CPU
//! workers give the same table, `eval --scores` gives the report of `eval`, and pyarrow reads
//! the file as it is.

mod common;
// The pseudo-terminal driver the dashboard tests share; this file uses part of it.
#[allow(dead_code)]
#[path = "dashboard_support/pty.rs"]
mod pty;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::synthetic::{self, World, CLASSES, KIND};
use reason::data::dataset::Dataset;
use reason::reliability::artifacts::Artifacts;
use reason::reliability::features::BASELINES;
use reason::reliability::scoring::ScoringModels;
use reason::report::scores::{self, ScoreTable, ScoresError};

const VAL_PER_CLASS: usize = 6;

struct Fixture {
    world: World,
    artifacts: PathBuf,
    cache: tempfile::TempDir,
    /// One unsharded `reason score` of val.
    full: PathBuf,
    full_output: String,
}

fn reason(fixture_cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reason"))
        .args(args)
        .env("REASON_CACHE", fixture_cache)
        .output()
        .expect("reason runs")
}

fn ok(output: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{what} failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    format!("{}{stderr}", String::from_utf8_lossy(&output.stdout))
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        synthetic::private_cache();
        let world = World::new(14, VAL_PER_CLASS);
        // An unlabelled image at the root of val.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
        synthetic::noise_image(None, &mut rng, 40)
            .save(world.root().join("val/loose.png"))
            .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let artifacts = world.root().join("saved");
        let out = artifacts.to_str().unwrap().to_string();
        ok(
            reason(
                cache.path(),
                &[
                    "train",
                    "--data",
                    world.root().to_str().unwrap(),
                    "--weights",
                    world.weights.to_str().unwrap(),
                    "--out",
                    &out,
                    "--device",
                    "cpu",
                    "--folds",
                    "3",
                    "--views",
                    "1",
                    "--head-epochs",
                    "5",
                    "--metanet-epochs",
                    "20",
                    "--target-risk",
                    "0.5",
                    "--delta",
                    "0.2",
                ],
            ),
            "reason train",
        );
        let full = world.root().join("full.parquet");
        let full_output = ok(
            score(&world, &artifacts, cache.path(), &full, &[]),
            "reason score",
        );
        Fixture {
            world,
            artifacts,
            cache,
            full,
            full_output,
        }
    })
}

fn score(world: &World, artifacts: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "score",
        "--data",
        world.root().to_str().unwrap(),
        "--weights",
        world.weights.to_str().unwrap(),
        "--artifacts",
        artifacts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    // One worker on the CPU unless the test says otherwise (--device may be given once).
    if !extra.contains(&"--device") {
        args.extend(["--device", "cpu"]);
    }
    args.extend_from_slice(extra);
    reason(cache, &args)
}

/// Two scorings of one image: the same image, outcome and file, and the same numbers up to
/// float rounding (samples batched differently are summed in another order by the GEMMs).
fn assert_same_row(a: &scores::ScoreRow, b: &scores::ScoreRow) {
    let (x, y) = (&a.record, &b.record);
    assert_eq!(
        (&x.id, x.label, x.pred, x.truncated, &a.other_label, a.stamp),
        (&y.id, y.label, y.pred, y.truncated, &b.other_label, b.stamp)
    );
    let floats = |r: &scores::ScoreRow| -> Vec<f32> {
        let d = &r.record.diagnostics;
        let mut v = vec![
            r.record.p_correct,
            r.metanet_logit,
            d.msp,
            d.entropy,
            d.logit_gap,
        ];
        v.extend([
            d.mc_variance,
            d.grad_sensitivity,
            d.knn_distance,
            d.trust_score,
        ]);
        v.extend(&r.record.probs);
        v.extend(&r.record.meta);
        v.extend(r.baselines);
        v
    };
    for (i, (u, v)) in floats(a).iter().zip(floats(b)).enumerate() {
        assert!(
            (u - v).abs() <= 1e-4 * u.abs().max(1.0),
            "{}: value {i} is {u} and {v}",
            x.id
        );
    }
}

fn read(path: &Path) -> ScoreTable {
    scores::read(path).unwrap()
}

#[test]
fn the_table_holds_what_in_process_scoring_computes_column_by_column() {
    let f = fixture();
    let table = read(&f.full);
    let artifacts = Artifacts::load(&f.artifacts).unwrap();
    let models = ScoringModels::with_weights(artifacts, KIND, &f.world.weights).unwrap();
    let backbone = f.world.backbone();
    let val = Dataset::open_split(f.world.root(), "val").unwrap();
    let scored = models.scorer(&backbone).score(&val, None, &|_| {}).unwrap();
    assert_eq!(table.rows.len(), val.samples.len());
    assert_eq!(table.rows.len(), CLASSES.len() * VAL_PER_CLASS + 1);
    assert_eq!(table.header, scored.header);
    for (row, (record, extra)) in table
        .rows
        .iter()
        .zip(scored.records.iter().zip(&scored.extra))
    {
        assert_eq!(&row.record, record, "{}", record.id);
        assert_eq!(row.metanet_logit, extra.metanet_logit);
        assert_eq!(row.baselines, extra.baselines);
        assert_eq!(row.other_label, None, "every label is an artifacts class");
        let stamp = scores::FileStamp::of(&val.root.join(&record.id));
        assert_eq!(row.stamp, stamp);
        assert!(row.stamp.size > 0);
    }
    // The loose image is unlabelled: no label, no outcome.
    let loose = table
        .rows
        .iter()
        .find(|r| r.record.id == "loose.png")
        .unwrap();
    assert_eq!(loose.record.label, None);

    // Identity in the file's metadata.
    assert_eq!(
        table.identity.weights_sha256,
        f.world.weights_sha256(),
        "weights sha256"
    );
    assert_eq!(
        table.identity.artifacts_sha256,
        scores::artifacts_sha256(&f.artifacts).unwrap()
    );
    assert_eq!(table.identity.backbone, KIND.name());
    assert_eq!(table.identity.layout, models.artifacts.manifest.layout);
    assert_eq!(table.run.condition, "clean");
    assert_eq!(table.run.split.as_deref(), Some("val"));
    assert_eq!(table.run.shard, scores::Shard::ALL);
    assert!(
        f.full_output.contains("0 from an earlier run"),
        "{}",
        f.full_output
    );
}

/// The columns as any Parquet reader sees them (the parquet crate's row reader, not ours).
#[test]
fn the_columns_are_named_typed_and_derived_as_documented() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let f = fixture();
    let table = read(&f.full);
    let reader = SerializedFileReader::new(std::fs::File::open(&f.full).unwrap()).unwrap();
    let kv: Vec<(String, String)> = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    let key = |k: &str| kv.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    assert_eq!(key("reason.scores.version").as_deref(), Some("1"));
    assert_eq!(key("reason.weights_sha256"), Some(f.world.weights_sha256()));
    let dim = table.identity.layout.dim();
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let fixed = [
        "path",
        "label",
        "pred",
        "correct",
        "p_correct",
        "metanet_logit",
        "accepted",
        "truncated",
        "top1",
    ];
    assert_eq!(names[..fixed.len()], fixed);
    let c = CLASSES.len();
    assert_eq!(names.len(), 8 + 2 * c + c + 7 + BASELINES.len() + dim + 2);
    assert!(names.contains(&"baseline.msp_temperature".to_string()));
    assert!(names.contains(&"meta.entropy.entropy".to_string()));
    assert!(names.contains(&"meta.softmax.logit_ts_msp".to_string()));
    let at = |name: &str| names.iter().position(|n| n == name).unwrap();
    let threshold = table.header.threshold;
    for (row, fields) in table.rows.iter().zip(reader.get_row_iter(None).unwrap()) {
        let fields: Vec<Field> = fields
            .unwrap()
            .get_column_iter()
            .map(|(_, f)| f.clone())
            .collect();
        let r = &row.record;
        assert_eq!(fields[at("path")], Field::Str(r.id.clone()));
        let label = r.label.map(|l| Field::Str(CLASSES[l as usize].to_string()));
        assert_eq!(fields[at("label")], label.unwrap_or(Field::Null));
        assert_eq!(
            fields[at("pred")],
            Field::Str(CLASSES[r.pred as usize].to_string())
        );
        let correct = r.label.map(|l| Field::Bool(l == r.pred));
        assert_eq!(fields[at("correct")], correct.unwrap_or(Field::Null));
        assert_eq!(fields[at("p_correct")], Field::Float(r.p_correct));
        assert_eq!(
            fields[at("accepted")],
            Field::Bool(r.p_correct >= threshold)
        );
        // top1 is the argmax of the probabilities, and its probability theirs.
        let best = reason::support::math::argmax(&r.probs);
        assert_eq!(fields[at("top1")], Field::Str(CLASSES[best].to_string()));
        assert_eq!(fields[at("top1_prob")], Field::Float(r.probs[best]));
        for (k, class) in CLASSES.iter().enumerate() {
            assert_eq!(
                fields[at(&format!("prob.{class}"))],
                Field::Float(r.probs[k])
            );
        }
        assert_eq!(
            fields[at("diag.knn_distance")],
            Field::Float(r.diagnostics.knn_distance)
        );
        for (b, name) in BASELINES.iter().enumerate() {
            assert_eq!(
                fields[at(&format!("baseline.{name}"))],
                Field::Float(row.baselines[b])
            );
        }
        for j in 0..dim {
            let name = format!("meta.{}", table.identity.layout.name(j).unwrap());
            assert_eq!(fields[at(&name)], Field::Float(r.meta[j]), "{name}");
        }
        assert_eq!(fields[at("file_size")], Field::Long(row.stamp.size));
    }
}

#[test]
fn shard_processes_together_give_the_unsharded_table_row_for_row() {
    let f = fixture();
    let parts = f.world.root().join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let n = 3;
    // N processes at once, as a scheduler's array would run them.
    let children: Vec<_> = (0..n)
        .map(|i| {
            let out = parts.join(format!("part-{i}-of-{n}.parquet"));
            let shard = format!("{i}/{n}");
            let w = &f.world;
            Command::new(env!("CARGO_BIN_EXE_reason"))
                .args(["score", "--data", w.root().to_str().unwrap()])
                .args(["--weights", w.weights.to_str().unwrap()])
                .args(["--artifacts", f.artifacts.to_str().unwrap()])
                .args(["--device", "cpu", "--shard", &shard])
                .arg("--out")
                .arg(&out)
                .env("REASON_CACHE", f.cache.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(child.wait_with_output().unwrap(), "reason score --shard");
    }
    let full = read(&f.full);
    let mut sizes = Vec::new();
    for i in 0..n {
        let part = read(&parts.join(format!("part-{i}-of-{n}.parquet")));
        assert_eq!(part.run.shard, scores::Shard { index: i, count: n });
        assert!(part
            .rows
            .iter()
            .all(|r| part.run.shard.contains(&r.record.id)));
        sizes.push(part.rows.len());
    }
    assert!(
        sizes.iter().all(|&s| s > 0),
        "every shard has samples: {sizes:?}"
    );
    let glob = parts.join("*.parquet").to_str().unwrap().to_string();
    let files = scores::expand(&[glob]).unwrap();
    assert_eq!(files.len(), n as usize);
    let (union, shards) = scores::read_union(&files, scores::Part::Whole).unwrap();
    assert!(scores::missing_shards(&shards).is_empty());
    assert_eq!(union.rows.len(), full.rows.len());
    for (a, b) in union.rows.iter().zip(&full.rows) {
        assert_same_row(a, b);
    }
    assert_eq!(union.identity, full.identity);
    assert_eq!(union.header, full.header);

    // Two parts only: the union says which shard is missing.
    let two = &files[..2];
    let (_, shards) = scores::read_union(two, scores::Part::Whole).unwrap();
    assert_eq!(scores::missing_shards(&shards), vec![2]);

    // A part and the whole overlap: refused, naming a sample and both files.
    let err =
        scores::read_union(&[files[0].clone(), f.full.clone()], scores::Part::Whole).unwrap_err();
    assert!(matches!(err, ScoresError::Overlap { .. }), "{err}");
    assert!(err.to_string().contains("must not overlap"), "{err}");

    // A part scored with other artifacts (or weights, or layout) is refused, saying which.
    let mut other = read(&files[2]);
    other.identity.artifacts_sha256 = "0".repeat(64);
    let other_path = f.world.root().join("other-artifacts.parquet");
    scores::write(&other_path, &other).unwrap();
    let err = scores::read_union(&[files[0].clone(), other_path.clone()], scores::Part::Whole)
        .unwrap_err();
    assert!(
        err.to_string().contains("disagree about artifacts"),
        "{err}"
    );
    let mut other = read(&files[2]);
    other.identity.weights_sha256 = "1".repeat(64);
    scores::write(&other_path, &other).unwrap();
    let err = scores::read_union(&[files[0].clone(), other_path.clone()], scores::Part::Whole)
        .unwrap_err();
    assert!(err.to_string().contains("disagree about weights"), "{err}");
    let mut other = read(&files[2]);
    other.identity.layout.blocks.pop();
    scores::write(&other_path, &other).unwrap();
    let err = scores::read_union(&[files[0].clone(), other_path.clone()], scores::Part::Whole)
        .unwrap_err();
    assert!(err.to_string().contains("disagree about layout"), "{err}");

    // The commands refuse them too, before any terminal is taken over.
    let glob_other = vec![files[0].to_str().unwrap(), other_path.to_str().unwrap()];
    for command in ["tui", "eval"] {
        let mut args = vec![command, "--scores"];
        args.extend(&glob_other);
        let out = reason(f.cache.path(), &args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("disagree about layout"),
            "{command}: {stderr}"
        );
    }
    let out = reason(
        f.cache.path(),
        &["tui", "--scores", "/nonexistent/*.parquet"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent"));
}

#[test]
fn an_interrupted_run_resumes_and_rescores_changed_images() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    // A copy of val to change an image in.
    let world_copy = dir.path().join("world");
    copy_dir(&f.world.root().join("val"), &world_copy.join("val"));
    std::fs::create_dir_all(world_copy.join("train")).unwrap();
    let out = dir.path().join("t.parquet");
    let args = |out: &Path| {
        vec![
            "score".to_string(),
            "--data".into(),
            world_copy.to_str().unwrap().into(),
            "--weights".into(),
            f.world.weights.to_str().unwrap().into(),
            "--artifacts".into(),
            f.artifacts.to_str().unwrap().into(),
            "--device".into(),
            "cpu".into(),
            "--chunk".into(),
            "4".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let run = |out: &Path| {
        let a = args(out);
        ok(
            reason(
                f.cache.path(),
                &a.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
            "reason score",
        )
    };
    run(&out);
    let first = read(&out);
    assert!(
        !scores::parts_dir_for(&out).exists(),
        "the parts are removed once the table is written"
    );

    // A run killed after some chunks: those chunks are in the parts folder, no table yet.
    let kept = 7;
    let mut partial = first.clone();
    partial.rows.truncate(kept);
    std::fs::remove_file(&out).unwrap();
    scores::write(
        &scores::parts_dir_for(&out).join("1-0000000.parquet"),
        &partial,
    )
    .unwrap();
    // And a half-written chunk (a crash mid-write) next to it: ignored.
    std::fs::write(
        scores::parts_dir_for(&out).join(".x.parquet.12-0.tmp"),
        b"PAR1 half",
    )
    .unwrap();
    // One image that was scored changes (new bytes, new size), and one that was not.
    let changed = first.rows[2].record.id.clone();
    let path = world_copy.join("val").join(&changed);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(77);
    synthetic::noise_image(Some(2), &mut rng, 48)
        .save(&path)
        .unwrap();

    let said = run(&out);
    let total = first.rows.len();
    assert!(
        said.contains(&format!(
            "{} already scored, {} to score",
            kept - 1,
            total - kept + 1
        )),
        "{said}"
    );
    let resumed = read(&out);
    assert_eq!(resumed.rows.len(), total);
    for (a, b) in resumed.rows.iter().zip(&first.rows) {
        assert_eq!(a.record.id, b.record.id);
        if a.record.id == changed {
            assert_ne!(a.stamp, b.stamp);
            assert_ne!(
                a.record.meta, b.record.meta,
                "the changed image was rescored"
            );
            assert_eq!(a.stamp, scores::FileStamp::of(&path));
        } else {
            assert_same_row(a, b);
        }
    }
    // A finished table is reused whole: nothing to score.
    let said = run(&out);
    assert!(
        said.contains(&format!("{total} already scored, 0 to score")),
        "{said}"
    );
    assert_eq!(read(&out), resumed);
}

#[test]
fn several_cpu_workers_split_the_chunks_and_give_the_same_table() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("two-workers.parquet");
    let said = ok(
        score(
            &f.world,
            &f.artifacts,
            f.cache.path(),
            &out,
            &["--device", "cpu,cpu", "--chunk", "3"],
        ),
        "reason score --device cpu,cpu",
    );
    let chunks = (CLASSES.len() * VAL_PER_CLASS + 1).div_ceil(3);
    let line = said
        .lines()
        .find(|l| l.starts_with("chunks per worker:"))
        .unwrap_or_else(|| panic!("{said}"));
    let counts: Vec<usize> = line
        .trim_start_matches("chunks per worker:")
        .split(',')
        .map(|w| w.trim().rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 2, "{line}");
    assert_eq!(counts.iter().sum::<usize>(), chunks, "{line}");
    let two = read(&out);
    let one = read(&f.full);
    assert_eq!(two.rows.len(), one.rows.len());
    for (a, b) in two.rows.iter().zip(&one.rows) {
        assert_same_row(a, b);
    }
}

#[test]
fn eval_on_the_table_reports_what_eval_on_the_images_reports() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let eval = |extra: &[&str], json: &Path| {
        let mut args = vec![
            "eval",
            "--artifacts",
            f.artifacts.to_str().unwrap(),
            "--bootstrap",
            "50",
            "--plots",
            dir.path().to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        reason(f.cache.path(), &args)
    };
    let from_images = dir.path().join("images.json");
    ok(
        eval(
            &[
                "--data",
                f.world.root().to_str().unwrap(),
                "--weights",
                f.world.weights.to_str().unwrap(),
                "--device",
                "cpu",
            ],
            &from_images,
        ),
        "reason eval",
    );
    let from_table = dir.path().join("table.json");
    ok(
        eval(&["--scores", f.full.to_str().unwrap()], &from_table),
        "reason eval --scores",
    );
    let load = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let (a, b) = (load(&from_images), load(&from_table));
    assert!(a["report"]["rows"].as_array().unwrap().len() > 10);
    assert_eq!(a["report"], b["report"]);
    assert_eq!(a["samples"], b["samples"]);

    // Other artifacts than the table's: refused, saying so.
    let copy = dir.path().join("other-artifacts");
    copy_dir(&f.artifacts, &copy);
    let manifest = copy.join("manifest.json");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes.push(b'\n');
    std::fs::write(&manifest, bytes).unwrap();
    let out = reason(
        f.cache.path(),
        &[
            "eval",
            "--scores",
            f.full.to_str().unwrap(),
            "--artifacts",
            copy.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("made with other artifacts"), "{stderr}");
}

/// pandas, polars and DuckDB read through pyarrow's (or the same C++) Parquet reader: pyarrow
/// reads every column and the metadata, with the values REASON wrote.
#[test]
fn pyarrow_reads_the_table_as_it_is() {
    let f = fixture();
    let probe = Command::new("python3")
        .args(["-c", "import pyarrow"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED pyarrow_reads_the_table_as_it_is: python3 with pyarrow not found (pip install pyarrow)");
        return;
    }
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
meta = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
out = {"columns": t.column_names, "rows": t.num_rows,
       "version": meta["reason.scores.version"],
       "artifacts": meta["reason.artifacts_sha256"],
       "types": {c: str(t.schema.field(c).type) for c in t.column_names}}
for c in t.column_names:
    out[c] = t.column(c).to_pylist()
print(json.dumps(out))
"#;
    let output = Command::new("python3")
        .args(["-c", script, f.full.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let table = read(&f.full);
    assert_eq!(got["rows"], table.rows.len());
    assert_eq!(got["version"], "1");
    assert_eq!(got["artifacts"], table.identity.artifacts_sha256.as_str());
    assert_eq!(got["types"]["path"], "string");
    assert_eq!(got["types"]["p_correct"], "float");
    assert_eq!(got["types"]["correct"], "bool");
    assert_eq!(got["types"]["file_size"], "int64");
    let column = |name: &str| got[name].as_array().unwrap().clone();
    let f32s = |name: &str| -> Vec<f32> {
        column(name)
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let ids: Vec<String> = column("path")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        table
            .rows
            .iter()
            .map(|r| r.record.id.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        f32s("p_correct"),
        table
            .rows
            .iter()
            .map(|r| r.record.p_correct)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        f32s("baseline.msp"),
        table
            .rows
            .iter()
            .map(|r| r.baselines[0])
            .collect::<Vec<_>>()
    );
    let labels: Vec<Option<String>> = column("label")
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect();
    let want: Vec<Option<String>> = table
        .rows
        .iter()
        .map(|r| r.record.label.map(|l| CLASSES[l as usize].to_string()))
        .collect();
    assert_eq!(labels, want);
    assert!(labels.contains(&None), "the loose image's label is a null");
    let last_meta = format!(
        "meta.{}",
        table
            .identity
            .layout
            .name(table.identity.layout.dim() - 1)
            .unwrap()
    );
    assert_eq!(
        f32s(&last_meta),
        table
            .rows
            .iter()
            .map(|r| *r.record.meta.last().unwrap())
            .collect::<Vec<_>>()
    );
}

/// `reason tui --scores` in a real pseudo-terminal, where no model could be loaded (no weights
/// anywhere, an empty cache): it shows the table's rows, annotates one and saves the session.
#[test]
fn the_dashboard_opens_a_table_without_any_model() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = portable_pty::CommandBuilder::new(env!("CARGO_BIN_EXE_reason"));
    cmd.args(["tui", "--scores", f.full.to_str().unwrap()]);
    cmd.args(["--session", "t", "--image-protocol", "halfblocks"]);
    cmd.cwd(dir.path());
    cmd.env("REASON_DATA", dir.path());
    cmd.env("REASON_CACHE", dir.path().join("cache"));
    cmd.env("HF_HUB_OFFLINE", "1");
    let mut tui = pty::Tui::start(cmd);
    tui.wait_for("loose.png");
    tui.keys("v");
    tui.wait_for("model error");
    tui.keys("q");
    let (ok, output) = tui.finish();
    pty::assert_restored(ok, &output);
    let session: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sessions/t.json")).unwrap())
            .unwrap();
    let annotated: Vec<&String> = session["annotations"].as_object().unwrap().keys().collect();
    assert_eq!(annotated.len(), 1, "{session}");
    let ids: Vec<String> = read(&f.full)
        .rows
        .into_iter()
        .map(|r| r.record.id)
        .collect();
    assert!(ids.contains(annotated[0]), "{annotated:?}");
    // Nothing was scored or cached: the cache holds at most the built-in artifacts, written out
    // for the saliency overlay's check that they are the ones that scored the table.
    let cache = dir.path().join("cache");
    let entries: Vec<String> = std::fs::read_dir(&cache)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        entries.iter().all(|e| e == "artifacts"),
        "nothing was scored or cached: {entries:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A table of several row groups (which the reader decodes in parallel) reads back row for row.
#[test]
fn a_table_of_several_row_groups_reads_back_whole() {
    let f = fixture();
    let mut table = read(&f.full);
    let n = 2 * reason::report::export::ROW_GROUP_ROWS + 5;
    let rows = table.rows.clone();
    table.rows = (0..n)
        .map(|i| {
            let mut row = rows[i % rows.len()].clone();
            row.record.id = format!("{i:07}/{}", row.record.id);
            row.record.p_correct = i as f32 / n as f32;
            row
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    scores::write(&path, &table).unwrap();
    let back = read(&path);
    assert_eq!(back.rows.len(), n);
    assert!(
        back == table,
        "the rows read back differ from those written"
    );
}

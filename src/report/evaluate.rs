//! The evaluation table: the meta-model's P(correct) and every baseline on the same rows of the
//! evaluation split, with chance levels, paired bootstrap differences to MSP and TS-MSP (by
//! source image when an image has several corrupted draws), images unseen in pretraining as a
//! group of their own, the per-family ablation and per-class selective risk at the threshold.

use serde::Serialize;

use crate::error::Result;
use crate::metrics::{self, MetricRow, PairedBootstrap, ThresholdStats, ThresholdTable};
use crate::reliability::artifacts::Artifacts;
use crate::reliability::features::{self, BASELINES};
use crate::reliability::metanet::MetaNet;
use crate::reliability::scoring::Scored;

pub const METANET: &str = "metanet_p_correct";

#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    pub score: String,
    pub metrics: MetricRow,
    /// Paired bootstrap of this score minus MSP (AUROC and AURC), absent for MSP itself.
    pub vs_msp: Option<PairedBootstrap>,
    /// The same against temperature-scaled MSP.
    pub vs_ts_msp: Option<PairedBootstrap>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AblationRow {
    pub without_family: String,
    pub auroc: Option<f64>,
    /// AUROC without the family minus AUROC of the MetaNet retrained with every family.
    pub delta_auroc: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassRisk {
    pub class: String,
    pub name: String,
    pub samples: usize,
    pub errors: usize,
    pub accepted: usize,
    pub coverage: f64,
    /// Errors among accepted / accepted (None when nothing is accepted).
    pub selective_risk: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub split: String,
    /// `clean` or the corruption, e.g. `mixed` or `blur:3`.
    pub condition: String,
    /// Independent corruption draws of every image (1 when clean).
    pub draws: usize,
    /// Source images behind the rows (the bootstrap resamples these).
    pub source_images: usize,
    pub samples: usize,
    /// Rows with a known outcome: labelled in the artifacts' classes, or of a held-out class.
    pub labelled: usize,
    pub skipped: usize,
    /// Source images scored from a truncated file (the decoder filled in the missing part);
    /// 0 with `--skip-truncated`, which counts them as skipped instead.
    pub truncated: usize,
    /// Class folders the artifacts were trained without; their rows are always wrong.
    pub novel_classes: Vec<String>,
    pub novel_rows: usize,
    pub accuracy: Option<f64>,
    pub errors: usize,
    pub rows: Vec<ScoreRow>,
    /// Images the backbone never saw in pretraining (ImageNet val files, `ILSVRC2012_val_*`)
    /// against the rest (ImageNet training files).
    pub pretraining: Vec<SubgroupRow>,
    /// AUROC of the meta-model retrained with every family (the ablation's reference).
    pub ablation_reference_auroc: Option<f64>,
    pub ablation: Vec<AblationRow>,
    pub threshold: f32,
    pub at_threshold: ThresholdStats,
    /// The saved certificate and whether its bound held on these rows.
    pub certificate: CertificateCheck,
    pub per_class: Vec<ClassRisk>,
    pub bootstrap_resamples: usize,
}

/// The certified threshold checked on the evaluation rows.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateCheck {
    pub statement: String,
    pub target_risk: f64,
    pub accepted: usize,
    pub errors: usize,
    /// Errors among accepted rows (None when nothing is accepted).
    pub observed_risk: Option<f64>,
    /// Observed risk ≤ target (true when nothing is accepted: an empty acceptance has no risk).
    pub held: bool,
}

/// A few scores on one subgroup of the rows.
#[derive(Debug, Clone, Serialize)]
pub struct SubgroupRow {
    pub group: String,
    pub rows: usize,
    pub errors: usize,
    pub accuracy: Option<f64>,
    /// (score, AUROC) for the meta-model, MSP and TS-MSP.
    pub auroc: Vec<(String, Option<f64>)>,
}

/// Whether an image is one an ImageNet-pretrained backbone never trained on: ImageNet's
/// validation files keep their `ILSVRC2012_val_` names in Imagenette.
pub fn unseen_in_pretraining(id: &str) -> bool {
    id.rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with("ILSVRC2012_val_"))
}

/// What `evaluate` needs beside the scores: where each row came from.
pub struct EvalRows<'a> {
    pub scored: &'a Scored,
    /// The corruption draw of each record (0 when clean).
    pub draw: Vec<u32>,
    /// Whether each record's image belongs to a class the artifacts were trained without.
    pub novel: Vec<bool>,
}

impl EvalRows<'_> {
    /// The outcome of each record: right or wrong when labelled, always wrong for a held-out
    /// class, unknown otherwise.
    pub fn outcomes(&self) -> Vec<Option<bool>> {
        self.scored
            .records
            .iter()
            .zip(&self.novel)
            .map(|(r, &novel)| if novel { Some(false) } else { r.correct() })
            .collect()
    }

    /// Index of each record's source image (its path), for the cluster bootstrap.
    pub fn groups(&self) -> Vec<u32> {
        let mut ids = std::collections::HashMap::new();
        self.scored
            .records
            .iter()
            .map(|r| {
                let next = ids.len() as u32;
                *ids.entry(r.id.as_str()).or_insert(next)
            })
            .collect()
    }
}

/// Every score of the given rows: (name, values, the probability of being correct when the
/// score is one).
pub fn score_columns(scored: &Scored, rows: &[usize]) -> Vec<(String, Vec<f32>, Option<Vec<f32>>)> {
    let mut cols = vec![(
        METANET.to_string(),
        rows.iter()
            .map(|&i| scored.extra[i].metanet_logit)
            .collect(),
        Some(rows.iter().map(|&i| scored.records[i].p_correct).collect()),
    )];
    for (b, name) in BASELINES.iter().enumerate() {
        let values: Vec<f32> = rows.iter().map(|&i| scored.extra[i].baselines[b]).collect();
        // MSP and TS-MSP are ranked in log space; their probabilities are exp of that.
        let probability = match *name {
            "msp" | "msp_temperature" => Some(values.iter().map(|v| v.exp()).collect()),
            "mc_dropout_mean" => Some(values.clone()),
            _ => None,
        };
        cols.push((name.to_string(), values, probability));
    }
    cols
}

pub fn evaluate(
    input: &EvalRows,
    artifacts: &Artifacts,
    split: &str,
    condition: &str,
    resamples: usize,
    seed: u64,
) -> Result<EvalReport> {
    let scored = input.scored;
    let outcomes = input.outcomes();
    let known: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].is_some())
        .collect();
    let correct: Vec<bool> = known.iter().map(|&i| outcomes[i] == Some(true)).collect();
    let all_groups = input.groups();
    let groups: Vec<u32> = known.iter().map(|&i| all_groups[i]).collect();
    let draws = input.draw.iter().max().map_or(1, |&d| d as usize + 1);
    // Rows of one image move together in the bootstrap whenever an image has several rows.
    let grouped = draws > 1;
    let errors = correct.iter().filter(|&&c| !c).count();
    let columns = score_columns(scored, &known);
    let column = |name: &str| {
        columns
            .iter()
            .find(|c| c.0 == name)
            .map(|c| c.1.clone())
            .unwrap_or_default()
    };
    let (msp, ts_msp) = (column("msp"), column("msp_temperature"));
    let bootstrap = |values: &[f32], reference: &[f32]| {
        metrics::paired_bootstrap_grouped(
            values,
            reference,
            &correct,
            grouped.then_some(&groups[..]),
            resamples,
            seed,
        )
    };
    let rows = columns
        .iter()
        .map(|(name, values, probability)| {
            let mut m = MetricRow::compute(values, &correct, false);
            if let Some(p) = probability {
                m.ece = metrics::ece(p, &correct);
                m.brier = metrics::brier(p, &correct);
            }
            ScoreRow {
                score: name.clone(),
                metrics: m,
                vs_msp: (name != "msp").then(|| bootstrap(values, &msp)),
                vs_ts_msp: (name != "msp_temperature").then(|| bootstrap(values, &ts_msp)),
            }
        })
        .collect();

    let pretraining = [
        ("unseen in pretraining", true),
        ("seen in pretraining", false),
    ]
    .into_iter()
    .map(|(group, unseen)| {
        let members: Vec<usize> = (0..known.len())
            .filter(|&k| unseen_in_pretraining(&scored.records[known[k]].id) == unseen)
            .collect();
        let c: Vec<bool> = members.iter().map(|&k| correct[k]).collect();
        let errors = c.iter().filter(|&&v| !v).count();
        SubgroupRow {
            group: group.to_string(),
            rows: members.len(),
            errors,
            accuracy: (!members.is_empty()).then(|| 1.0 - errors as f64 / members.len() as f64),
            auroc: [METANET, "msp", "msp_temperature"]
                .iter()
                .map(|&name| {
                    let all = column(name);
                    let v: Vec<f32> = members.iter().map(|&k| all[k]).collect();
                    (name.to_string(), metrics::auroc(&v, &c))
                })
                .collect(),
        }
    })
    .collect();

    let (ablation_reference_auroc, ablation) = ablation(scored, artifacts, &known, &correct, seed)?;

    let threshold = artifacts.manifest.calibration.threshold;
    let table = ThresholdTable::new(
        &scored
            .records
            .iter()
            .map(|r| r.p_correct)
            .collect::<Vec<_>>(),
        &outcomes,
    );
    let per_class = (0..scored.header.classes.len())
        .map(|c| {
            let members: Vec<_> = scored
                .records
                .iter()
                .filter(|r| r.label == Some(c as u16))
                .collect();
            let accepted: Vec<_> = members
                .iter()
                .filter(|r| r.p_correct >= threshold)
                .collect();
            let accepted_wrong = accepted
                .iter()
                .filter(|r| r.correct() == Some(false))
                .count();
            ClassRisk {
                class: scored.header.classes[c].clone(),
                name: scored.header.class_names[c].clone(),
                samples: members.len(),
                errors: members
                    .iter()
                    .filter(|r| r.correct() == Some(false))
                    .count(),
                accepted: accepted.len(),
                coverage: accepted.len() as f64 / members.len().max(1) as f64,
                selective_risk: (!accepted.is_empty())
                    .then(|| accepted_wrong as f64 / accepted.len() as f64),
            }
        })
        .collect();
    Ok(EvalReport {
        split: split.to_string(),
        condition: condition.to_string(),
        draws,
        source_images: groups
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        samples: scored.records.len(),
        labelled: known.len(),
        skipped: scored.skipped.len(),
        truncated: scored
            .records
            .iter()
            .filter(|r| r.truncated)
            .map(|r| r.id.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        novel_classes: artifacts.manifest.protocol.holdout_classes.clone(),
        novel_rows: input.novel.iter().filter(|&&v| v).count(),
        accuracy: (!known.is_empty()).then(|| 1.0 - errors as f64 / known.len() as f64),
        errors,
        rows,
        pretraining,
        ablation_reference_auroc,
        ablation,
        threshold,
        at_threshold: table.at(threshold),
        certificate: {
            let c = &artifacts.manifest.calibration.certificate;
            let p: Vec<f32> = known.iter().map(|&i| scored.records[i].p_correct).collect();
            let accepted: Vec<usize> = (0..p.len()).filter(|&k| p[k] >= c.threshold).collect();
            let errors = accepted.iter().filter(|&&k| !correct[k]).count();
            let observed_risk =
                (!accepted.is_empty()).then(|| errors as f64 / accepted.len() as f64);
            CertificateCheck {
                statement: c.statement(),
                target_risk: c.target_risk,
                accepted: accepted.len(),
                errors,
                observed_risk,
                held: observed_risk.is_none_or(|r| r <= c.target_risk),
            }
        },
        per_class,
        bootstrap_resamples: resamples,
    })
}

/// Retrains the meta-model on the saved out-of-fold rows without each family (same rows,
/// configuration and seed; a family the model does not read is skipped) and measures AUROC on
/// the evaluation rows. A report, never a selection: nothing here feeds back into training.
fn ablation(
    scored: &Scored,
    artifacts: &Artifacts,
    labelled: &[usize],
    correct: &[bool],
    seed: u64,
) -> Result<(Option<f64>, Vec<AblationRow>)> {
    let layout = &artifacts.manifest.layout;
    let dim = layout.dim();
    let tm = &artifacts.train_meta;
    let n_train = tm.correct.len();
    let idx = |r: u8| -> Vec<usize> { (0..n_train).filter(|&i| tm.role[i] == r).collect() };
    let (fit, select) = (idx(0), idx(1));
    let config = &artifacts.manifest.metanet;
    let columns = artifacts.metanet.inputs.clone();
    let offset = artifacts.metanet.offset.map(|(j, _)| j);
    let run = |keep: &[usize], offset: Option<usize>| -> Result<Option<f64>> {
        let (net, _) = MetaNet::train(
            &tm.rows,
            dim,
            &tm.correct,
            &fit,
            &select,
            config,
            seed,
            keep,
            offset,
        )?;
        let scores: Vec<f32> = labelled
            .iter()
            .map(|&i| net.logit(&scored.records[i].meta))
            .collect();
        Ok(metrics::auroc(&scores, correct))
    };
    let reference = run(&columns, offset)?;
    let mut rows = Vec::new();
    for family in features::FAMILIES {
        let in_family = |j: usize| layout.family_of(j) == Some(family);
        let reads = columns.iter().any(|&j| in_family(j)) || offset.is_some_and(in_family);
        if !reads {
            continue;
        }
        let keep: Vec<usize> = columns.iter().copied().filter(|&j| !in_family(j)).collect();
        let auroc = run(&keep, offset.filter(|&j| !in_family(j)))?;
        rows.push(AblationRow {
            without_family: family.to_string(),
            auroc,
            delta_auroc: auroc.zip(reference).map(|(a, r)| a - r),
        });
    }
    Ok((reference, rows))
}

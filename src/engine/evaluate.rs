//! The evaluation table of GUIDE §5: the MetaNet's P(correct) and every baseline on the same
//! rows of the evaluation split, with chance levels, paired bootstrap differences to MSP, the
//! per-family ablation and per-class selective risk at the operating threshold.

use serde::Serialize;

use crate::engine::artifacts::Artifacts;
use crate::engine::error::Result;
use crate::engine::features::{self, BASELINES};
use crate::engine::metanet::MetaNet;
use crate::engine::metrics::{self, MetricRow, PairedBootstrap, ThresholdStats, ThresholdTable};
use crate::engine::scoring::Scored;

pub const METANET: &str = "metanet_p_correct";

#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    pub score: String,
    pub metrics: MetricRow,
    /// Paired bootstrap of this score minus MSP (AUROC and AURC), absent for MSP itself.
    pub vs_msp: Option<PairedBootstrap>,
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
    pub samples: usize,
    pub labelled: usize,
    pub skipped: usize,
    pub accuracy: Option<f64>,
    pub errors: usize,
    pub rows: Vec<ScoreRow>,
    /// AUROC of the MetaNet retrained with every family (the ablation's reference).
    pub ablation_reference_auroc: Option<f64>,
    pub ablation: Vec<AblationRow>,
    pub threshold: f32,
    pub at_threshold: ThresholdStats,
    pub per_class: Vec<ClassRisk>,
    pub bootstrap_resamples: usize,
}

/// Every score of every labelled row: (name, values, is a probability of being correct).
pub fn score_columns(scored: &Scored) -> Vec<(String, Vec<f32>, Option<Vec<f32>>)> {
    let labelled: Vec<usize> = (0..scored.records.len())
        .filter(|&i| scored.records[i].label.is_some())
        .collect();
    let mut cols = vec![(
        METANET.to_string(),
        labelled
            .iter()
            .map(|&i| scored.extra[i].metanet_logit)
            .collect(),
        Some(
            labelled
                .iter()
                .map(|&i| scored.records[i].p_correct)
                .collect(),
        ),
    )];
    for (b, name) in BASELINES.iter().enumerate() {
        let values: Vec<f32> = labelled
            .iter()
            .map(|&i| scored.extra[i].baselines[b])
            .collect();
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
    scored: &Scored,
    artifacts: &Artifacts,
    split: &str,
    condition: &str,
    resamples: usize,
    seed: u64,
) -> Result<EvalReport> {
    let labelled: Vec<usize> = (0..scored.records.len())
        .filter(|&i| scored.records[i].label.is_some())
        .collect();
    let correct: Vec<bool> = labelled
        .iter()
        .map(|&i| scored.records[i].correct().unwrap_or(false))
        .collect();
    let errors = correct.iter().filter(|&&c| !c).count();
    let columns = score_columns(scored);
    let msp = columns
        .iter()
        .find(|c| c.0 == "msp")
        .map(|c| c.1.clone())
        .unwrap_or_default();
    let rows = columns
        .iter()
        .map(|(name, values, probability)| {
            let mut m = MetricRow::compute(values, &correct, false);
            if let Some(p) = probability {
                m.ece = metrics::ece(p, &correct);
                m.brier = metrics::brier(p, &correct);
            }
            let vs_msp = (name != "msp")
                .then(|| metrics::paired_bootstrap(values, &msp, &correct, resamples, seed));
            ScoreRow {
                score: name.clone(),
                metrics: m,
                vs_msp,
            }
        })
        .collect();

    let (ablation_reference_auroc, ablation) =
        ablation(scored, artifacts, &labelled, &correct, seed)?;

    let threshold = artifacts.manifest.calibration.threshold;
    let table = ThresholdTable::new(
        &scored
            .records
            .iter()
            .map(|r| r.p_correct)
            .collect::<Vec<_>>(),
        &scored
            .records
            .iter()
            .map(|r| r.correct())
            .collect::<Vec<_>>(),
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
        samples: scored.records.len(),
        labelled: labelled.len(),
        skipped: scored.skipped.len(),
        accuracy: (!labelled.is_empty()).then(|| 1.0 - errors as f64 / labelled.len() as f64),
        errors,
        rows,
        ablation_reference_auroc,
        ablation,
        threshold,
        at_threshold: table.at(threshold),
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
            &tm.rows, dim, &tm.correct, &fit, &select, config, seed, keep, offset,
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

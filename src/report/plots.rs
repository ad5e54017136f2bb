//! PNG figures for reports and papers, drawn with `plotters` from the curves of
//! [`crate::metrics`] (never recomputed here, so a figure always matches the table).
//!
//! [`write_all`] writes four files into a directory:
//!
//! * `roc.png`: ROC curves (correct = positive class) of every named score, with the chance
//!   diagonal; the legend gives each AUROC.
//! * `risk_coverage.png`: selective risk over coverage of every score, with the optimal curve
//!   (all correct rows accepted first) and the error rate at full coverage; the legend gives
//!   each AURC.
//! * `reliability.png`: reliability diagram of P(correct) in the 15 ECE bins (accuracy bars, the
//!   gap to the mean confidence in red, the diagonal), with a panel of bin counts below; the
//!   title gives ECE and Brier.
//! * `score_hist.png`: histograms of P(correct) for correct and wrong predictions side by side
//!   in 20 bins, each normalised to its own group (shares), so that a small error group stays
//!   visible.
//!
//! Text is rendered with DejaVu Sans compiled into the binary (no system fonts needed). Every
//! figure is [`PLOT_WIDTH`] × [`PLOT_HEIGHT`] pixels, written to a temporary file and renamed.
//! The first score in `scores` is drawn with a thicker line (put the headline score first).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use image::{ImageFormat, RgbImage};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics;
use crate::support::files::write_bytes_atomically;

/// Width of every figure in pixels.
pub const PLOT_WIDTH: u32 = 960;
/// Height of every figure in pixels.
pub const PLOT_HEIGHT: u32 = 720;

/// File names [`write_all`] writes, in the order it returns them.
pub const FILE_NAMES: [&str; 4] = [
    "roc.png",
    "risk_coverage.png",
    "reliability.png",
    "score_hist.png",
];

/// Bins of the P(correct) histograms.
pub const HIST_BINS: usize = 20;

/// The registered family name. Font sizes are even on purpose: plotters' ab_glyph backend
/// places each glyph at `(size / 2 + top) as i32`, which truncates towards zero, so odd sizes
/// put short glyphs (the decimal point) one pixel off the baseline.
pub(crate) const FONT: &str = "sans-serif";

/// Line colours (matplotlib's tab10, then darker extras), cycled.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
];

const CORRECT_COLOR: RGBColor = RGBColor(44, 160, 44);
const WRONG_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Why a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("nothing to plot: there are no rows")]
    NoRows,
    #[error("nothing to plot: no score was given")]
    NoScores,
    #[error("{what} has {len} values but there are {expected} correctness labels")]
    LengthMismatch {
        what: String,
        len: usize,
        expected: usize,
    },
    #[error("cannot write plots to {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the built-in plot font could not be loaded")]
    Font,
    #[error("drawing {plot} failed: {reason}")]
    Draw { plot: String, reason: String },
    #[error("encoding {path} as PNG failed: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

/// Writes `roc.png`, `risk_coverage.png`, `reliability.png` and `score_hist.png` into `dir`
/// (created if missing) and returns their paths in that order.
///
/// * `title_suffix` names what is plotted, e.g. `"imagenette val, clean"`; it ends each title.
/// * `scores`: named scores, higher = more likely correct (MetaNet, MSP, …), each one value per
///   row; used for ROC and risk–coverage.
/// * `correct`: whether each row's prediction is correct.
/// * `probability`: P(correct) per row (the MetaNet's), for the reliability diagram and the
///   histograms.
///
/// All inputs are checked before any file is written.
pub fn write_all(
    dir: &Path,
    title_suffix: &str,
    scores: &[(&str, &[f32])],
    correct: &[bool],
    probability: &[f32],
) -> Result<Vec<PathBuf>, PlotError> {
    check_scores(scores, correct)?;
    check_len("P(correct)", probability.len(), correct.len())?;
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let paths: Vec<PathBuf> = FILE_NAMES.iter().map(|n| dir.join(n)).collect();
    roc_png(&paths[0], title_suffix, scores, correct)?;
    risk_coverage_png(&paths[1], title_suffix, scores, correct)?;
    reliability_png(&paths[2], title_suffix, probability, correct)?;
    score_hist_png(&paths[3], title_suffix, probability, correct)?;
    Ok(paths)
}

fn check_len(what: &str, len: usize, expected: usize) -> Result<(), PlotError> {
    if len != expected {
        return Err(PlotError::LengthMismatch {
            what: what.to_string(),
            len,
            expected,
        });
    }
    Ok(())
}

fn check_scores(scores: &[(&str, &[f32])], correct: &[bool]) -> Result<(), PlotError> {
    if correct.is_empty() {
        return Err(PlotError::NoRows);
    }
    if scores.is_empty() {
        return Err(PlotError::NoScores);
    }
    for (name, s) in scores {
        check_len(&format!("score `{name}`"), s.len(), correct.len())?;
    }
    Ok(())
}

fn check_probability(probability: &[f32], correct: &[bool]) -> Result<(), PlotError> {
    if correct.is_empty() {
        return Err(PlotError::NoRows);
    }
    check_len("P(correct)", probability.len(), correct.len())
}

/// Registers the built-in font once (every drawing with text needs it).
pub(crate) fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

pub(crate) fn draw_err<E: std::fmt::Display>(plot: &str) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        plot: plot.to_string(),
        reason: e.to_string(),
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Renders one figure with `draw` and writes it to `path` as PNG (temp file + rename).
fn render<F>(path: &Path, plot: &str, draw: F) -> Result<(), PlotError>
where
    F: FnOnce(&Area<'_>) -> Result<(), PlotError>,
{
    ensure_font()?;
    let mut buf = vec![0u8; (PLOT_WIDTH * PLOT_HEIGHT * 3) as usize];
    {
        let root =
            BitMapBackend::with_buffer(&mut buf, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(plot))?;
        draw(&root)?;
        root.present().map_err(draw_err(plot))?;
    }
    let img = RgbImage::from_raw(PLOT_WIDTH, PLOT_HEIGHT, buf)
        .expect("buffer has exactly width × height × 3 bytes");
    save_png(path, &img)
}

/// Encodes `image` as PNG and writes it atomically (plots and `reason explain` figures).
pub(crate) fn save_png(path: &Path, image: &RgbImage) -> Result<(), PlotError> {
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|source| PlotError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    write_bytes_atomically(path, &png).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What differs between the figures' frames; the rest (a unit x axis, fonts, label areas, no
/// light grid lines) is the same for all of them.
struct Frame<'t> {
    caption: Option<String>,
    margin_top: u32,
    y_max: f64,
    /// None: no x axis title (a panel with another below it).
    x_desc: Option<&'t str>,
    y_desc: &'t str,
    /// Whole-number y labels, four at most (a panel of counts).
    counts: bool,
}

impl Frame<'_> {
    fn draw<'a, 'b>(self, area: &'a Area<'b>, plot: &str) -> Result<Chart<'a, 'b>, PlotError> {
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(20)
            .margin_top(self.margin_top)
            .x_label_area_size(if self.x_desc.is_some() { 55 } else { 30 })
            .y_label_area_size(75);
        if let Some(caption) = &self.caption {
            builder.caption(caption, (FONT, 24));
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..1f64, 0f64..self.y_max)
            .map_err(draw_err(plot))?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(self.y_desc)
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 14))
            .light_line_style(WHITE.mix(0.0));
        if let Some(x_desc) = self.x_desc {
            mesh.x_desc(x_desc);
        }
        if self.counts {
            mesh.y_label_formatter(&whole_number).y_labels(4);
        }
        mesh.draw().map_err(draw_err(plot))?;
        Ok(chart)
    }
}

fn whole_number(v: &f64) -> String {
    format!("{v:.0}")
}

fn title(what: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        what.to_string()
    } else {
        format!("{what} — {suffix}")
    }
}

fn fmt_metric(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

fn line_style(i: usize) -> ShapeStyle {
    let color = PALETTE[i % PALETTE.len()];
    color.stroke_width(if i == 0 { 3 } else { 2 })
}

/// Legend entry: a short line in the series' style.
fn legend_line(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style)
}

fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    position: SeriesLabelPosition,
    plot: &str,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(draw_err(plot))
}

/// ROC curves of every score (correct = positive), with the chance diagonal, to `path`.
pub fn roc_png(
    path: &Path,
    title_suffix: &str,
    scores: &[(&str, &[f32])],
    correct: &[bool],
) -> Result<(), PlotError> {
    check_scores(scores, correct)?;
    let plot = "ROC";
    render(path, plot, |root| {
        let mut chart = Frame {
            caption: Some(title("ROC of correctness", title_suffix)),
            margin_top: 20,
            y_max: 1.0,
            x_desc: Some("False positive rate (wrong predictions accepted)"),
            y_desc: "True positive rate (correct predictions accepted)",
            counts: false,
        }
        .draw(root, plot)?;
        let chance = BLACK.mix(0.5).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                8,
                6,
                chance,
            ))
            .map_err(draw_err(plot))?
            .label("chance (AUROC 0.5)")
            .legend(legend_line(chance));
        let mut undefined = false;
        for (i, (name, s)) in scores.iter().enumerate() {
            match metrics::roc_curve(s, correct) {
                Some(points) => {
                    let style = line_style(i);
                    let auroc = fmt_metric(metrics::auroc(s, correct));
                    chart
                        .draw_series(LineSeries::new(points, style))
                        .map_err(draw_err(plot))?
                        .label(format!("{name} (AUROC {auroc})"))
                        .legend(legend_line(style));
                }
                None => undefined = true,
            }
        }
        if undefined {
            let all_correct = correct.iter().all(|&c| c);
            let why = if all_correct {
                "ROC undefined: every prediction is correct"
            } else {
                "ROC undefined: every prediction is wrong"
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    why,
                    (0.25, 0.55),
                    (FONT, 22).into_font().color(&WRONG_COLOR),
                )))
                .map_err(draw_err(plot))?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight, plot)
    })
}

/// Optimal risk at coverage `c` for error rate `eps`: errors are accepted only once every
/// correct row is.
fn optimal_risk(c: f64, eps: f64) -> f64 {
    if c <= 0.0 {
        0.0
    } else {
        ((c - (1.0 - eps)) / c).max(0.0)
    }
}

/// Risk–coverage curves of every score plus the optimal curve, to `path`.
pub fn risk_coverage_png(
    path: &Path,
    title_suffix: &str,
    scores: &[(&str, &[f32])],
    correct: &[bool],
) -> Result<(), PlotError> {
    check_scores(scores, correct)?;
    let plot = "risk-coverage";
    let eps = correct.iter().filter(|&&c| !c).count() as f64 / correct.len() as f64;
    let curves: Vec<Vec<(f64, f64)>> = scores
        .iter()
        .map(|(_, s)| metrics::risk_coverage_curve(s, correct))
        .collect();
    let top = curves
        .iter()
        .flatten()
        .map(|&(_, r)| r)
        .filter(|r| r.is_finite())
        .fold(eps, f64::max);
    let y_max = if top > 0.0 {
        (top * 1.08).min(1.0)
    } else {
        0.05
    };
    render(path, plot, |root| {
        let mut chart = Frame {
            caption: Some(title("Risk–coverage", title_suffix)),
            margin_top: 20,
            y_max,
            x_desc: Some("Coverage (share of predictions accepted)"),
            y_desc: "Selective risk (error rate among accepted)",
            counts: false,
        }
        .draw(root, plot)?;
        let full = BLACK.mix(0.35).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new([(0.0, eps), (1.0, eps)], 6, 6, full))
            .map_err(draw_err(plot))?
            .label(format!("error rate at full coverage ({eps:.3})"))
            .legend(legend_line(full));
        let optimal = BLACK.stroke_width(2);
        let n = 400;
        let opt_points = (1..=n).map(|k| {
            let c = k as f64 / n as f64;
            (c, optimal_risk(c, eps))
        });
        chart
            .draw_series(DashedLineSeries::new(opt_points, 10, 5, optimal))
            .map_err(draw_err(plot))?
            .label(format!("optimal (AURC* {:.4})", metrics::aurc_optimal(eps)))
            .legend(legend_line(optimal));
        for (i, ((name, s), points)) in scores.iter().zip(&curves).enumerate() {
            let style = line_style(i);
            let aurc = metrics::aurc(s, correct).map_or("n/a".to_string(), |v| format!("{v:.4}"));
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(draw_err(plot))?
                .label(format!("{name} (AURC {aurc})"))
                .legend(legend_line(style));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, plot)
    })
}

/// Reliability diagram of P(correct) (15 ECE bins) with a bin-count panel, to `path`.
pub fn reliability_png(
    path: &Path,
    title_suffix: &str,
    probability: &[f32],
    correct: &[bool],
) -> Result<(), PlotError> {
    check_probability(probability, correct)?;
    let plot = "reliability diagram";
    let bins = metrics::reliability_diagram(probability, correct);
    let ece = fmt_metric(metrics::ece(probability, correct));
    let brier = fmt_metric(metrics::brier(probability, correct));
    render(path, plot, |root| {
        // Room above the title, as ChartBuilder's caption has.
        let root = root
            .margin(12, 0, 0, 0)
            .titled(
                &title(
                    &format!("Reliability of P(correct) (ECE {ece}, Brier {brier})"),
                    title_suffix,
                ),
                (FONT, 24),
            )
            .map_err(draw_err(plot))?;
        let (upper, lower) = root.split_vertically(PLOT_HEIGHT as i32 * 70 / 100 - 30);
        let mut chart = Frame {
            caption: None,
            margin_top: 5,
            y_max: 1.0,
            x_desc: None,
            y_desc: "Accuracy in bin",
            counts: false,
        }
        .draw(&upper, plot)?;
        let bar = PALETTE[0];
        chart
            .draw_series(bins.iter().filter_map(|b| {
                b.accuracy.map(|acc| {
                    Rectangle::new([(b.lower, 0.0), (b.upper, acc)], bar.mix(0.75).filled())
                })
            }))
            .map_err(draw_err(plot))?
            .label("accuracy")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 20, y + 6)], bar.mix(0.75).filled())
            });
        chart
            .draw_series(bins.iter().filter_map(|b| {
                b.accuracy.map(|_| {
                    Rectangle::new(
                        [(b.lower, 0.0), (b.upper, b.accuracy.unwrap_or(0.0))],
                        BLACK.stroke_width(1),
                    )
                })
            }))
            .map_err(draw_err(plot))?;
        chart
            .draw_series(
                bins.iter()
                    .filter_map(|b| match (b.accuracy, b.mean_confidence) {
                        (Some(acc), Some(conf)) => Some(Rectangle::new(
                            [(b.lower, acc), (b.upper, conf)],
                            WRONG_COLOR.mix(0.35).filled(),
                        )),
                        _ => None,
                    }),
            )
            .map_err(draw_err(plot))?
            .label("gap to mean P(correct)")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 6), (x + 20, y + 6)],
                    WRONG_COLOR.mix(0.35).filled(),
                )
            });
        let diag = BLACK.mix(0.6).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new([(0.0, 0.0), (1.0, 1.0)], 8, 6, diag))
            .map_err(draw_err(plot))?
            .label("perfect calibration")
            .legend(legend_line(diag));
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, plot)?;

        let max_count = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
        let mut counts = Frame {
            caption: None,
            margin_top: 0,
            y_max: max_count * 1.15,
            x_desc: Some("Predicted P(correct)"),
            y_desc: "Rows in bin",
            counts: true,
        }
        .draw(&lower, plot)?;
        counts
            .draw_series(bins.iter().map(|b| {
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, b.count as f64)],
                    BLACK.mix(0.45).filled(),
                )
            }))
            .map_err(draw_err(plot))?;
        counts
            .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
                Text::new(
                    b.count.to_string(),
                    (b.lower + 0.004, b.count as f64 + max_count * 0.12),
                    (FONT, 12),
                )
            }))
            .map_err(draw_err(plot))?;
        Ok(())
    })
}

/// Shares of rows per histogram bin (P(correct) clamped to [0, 1], NaN counted as 0, the last
/// bin closed), for correct and wrong rows separately; a group with no rows gives zeros.
fn hist_shares(probability: &[f32], correct: &[bool]) -> ([f64; HIST_BINS], [f64; HIST_BINS]) {
    let mut c = [0usize; HIST_BINS];
    let mut w = [0usize; HIST_BINS];
    for (&p, &ok) in probability.iter().zip(correct) {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        let b = ((p as f64 * HIST_BINS as f64) as usize).min(HIST_BINS - 1);
        if ok {
            c[b] += 1;
        } else {
            w[b] += 1;
        }
    }
    let share = |h: [usize; HIST_BINS]| {
        let n: usize = h.iter().sum();
        h.map(|k| if n == 0 { 0.0 } else { k as f64 / n as f64 })
    };
    (share(c), share(w))
}

/// Histograms of P(correct) for correct vs wrong predictions, side by side, to `path`.
pub fn score_hist_png(
    path: &Path,
    title_suffix: &str,
    probability: &[f32],
    correct: &[bool],
) -> Result<(), PlotError> {
    check_probability(probability, correct)?;
    let plot = "P(correct) histogram";
    let (c, w) = hist_shares(probability, correct);
    let n_correct = correct.iter().filter(|&&x| x).count();
    let n_wrong = correct.len() - n_correct;
    let y_max = c.iter().chain(&w).copied().fold(0.0, f64::max).max(0.01) * 1.1;
    render(path, plot, |root| {
        let mut chart = Frame {
            caption: Some(title("P(correct) by outcome", title_suffix)),
            margin_top: 20,
            y_max,
            x_desc: Some("Predicted P(correct)"),
            y_desc: "Share of the group's predictions",
            counts: false,
        }
        .draw(root, plot)?;
        let width = 1.0 / HIST_BINS as f64;
        let gap = width * 0.06;
        let bars = |h: [f64; HIST_BINS], left: bool, color: RGBColor| {
            (0..HIST_BINS).filter(move |&i| h[i] > 0.0).map(move |i| {
                let x0 = i as f64 * width + gap;
                let mid = (i as f64 + 0.5) * width;
                let x1 = (i + 1) as f64 * width - gap;
                let (a, b) = if left { (x0, mid) } else { (mid, x1) };
                Rectangle::new([(a, 0.0), (b, h[i])], color.mix(0.8).filled())
            })
        };
        chart
            .draw_series(bars(c, true, CORRECT_COLOR))
            .map_err(draw_err(plot))?
            .label(format!("correct (n = {n_correct})"))
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 6), (x + 20, y + 6)],
                    CORRECT_COLOR.mix(0.8).filled(),
                )
            });
        chart
            .draw_series(bars(w, false, WRONG_COLOR))
            .map_err(draw_err(plot))?
            .label(format!("wrong (n = {n_wrong})"))
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 6), (x + 20, y + 6)], WRONG_COLOR.mix(0.8).filled())
            });
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, plot)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic rows: accuracy ~85 %, a score that separates the classes well, one that
    /// barely does, and a probability that is somewhat over-confident.
    fn data(n: usize) -> (Vec<bool>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) as f32
        };
        let mut correct = Vec::new();
        let (mut good, mut weak, mut prob) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let c = uniform() < 0.85;
            let u = uniform();
            correct.push(c);
            good.push(if c { 0.35 + 0.65 * u } else { 0.75 * u });
            weak.push(if c { 0.1 + 0.9 * uniform() } else { uniform() });
            prob.push(if c {
                0.5 + 0.5 * u.sqrt()
            } else {
                0.3 + 0.65 * u
            });
        }
        (correct, good, weak, prob)
    }

    fn count_color(img: &RgbImage, color: RGBColor) -> usize {
        img.pixels()
            .filter(|p| p.0 == [color.0, color.1, color.2])
            .count()
    }

    /// Dark (text or axis) pixels in a band of rows.
    fn dark_pixels(img: &RgbImage, rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 100))
            .count()
    }

    #[test]
    fn writes_four_valid_pngs_with_curves_and_text() {
        let (correct, good, weak, prob) = data(600);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("figs");
        let paths = write_all(
            &out,
            "imagenette val, clean",
            &[("MetaNet", &good), ("MSP", &weak)],
            &correct,
            &prob,
        )
        .unwrap();
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, FILE_NAMES);
        let mut leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        leftovers.sort();
        let mut want = FILE_NAMES.map(String::from).to_vec();
        want.sort();
        assert_eq!(leftovers, want, "temporary files left behind");

        let imgs: Vec<RgbImage> = paths
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).unwrap();
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
                let img = image::load_from_memory_with_format(&bytes, ImageFormat::Png)
                    .unwrap()
                    .to_rgb8();
                assert_eq!(img.dimensions(), (PLOT_WIDTH, PLOT_HEIGHT));
                img
            })
            .collect();
        for (img, name) in imgs.iter().zip(FILE_NAMES) {
            // A title in the top band, and a figure that is not blank.
            assert!(dark_pixels(img, 0..45) > 300, "{name}: no title text");
            let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
            assert!(non_white > 10_000, "{name}: nearly blank");
        }
        // Both score curves are drawn in their palette colours on ROC and risk–coverage.
        for img in &imgs[..2] {
            assert!(count_color(img, PALETTE[0]) > 800);
            assert!(count_color(img, PALETTE[1]) > 800);
        }
        // Histogram bars in both group colours (blended with white by `mix(0.8)`).
        let blend = |c: RGBColor| {
            let f = |v: u8| (f64::from(v) * 0.8 + 255.0 * 0.2).round() as u8;
            RGBColor(f(c.0), f(c.1), f(c.2))
        };
        let near = |img: &RgbImage, c: RGBColor| {
            img.pixels()
                .filter(|p| {
                    p.0.iter()
                        .zip([c.0, c.1, c.2])
                        .all(|(&a, b)| a.abs_diff(b) <= 2)
                })
                .count()
        };
        assert!(near(&imgs[3], blend(CORRECT_COLOR)) > 2_000);
        assert!(near(&imgs[3], blend(WRONG_COLOR)) > 2_000);
    }

    #[test]
    fn different_data_gives_different_pictures() {
        let (correct, good, weak, prob) = data(300);
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.png");
        let b = dir.path().join("b.png");
        roc_png(&a, "x", &[("good", &good)], &correct).unwrap();
        roc_png(&b, "x", &[("weak", &weak)], &correct).unwrap();
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // Same inputs, same bytes.
        roc_png(&b, "x", &[("good", &good)], &correct).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let c = dir.path().join("c.png");
        reliability_png(&c, "", &prob, &correct).unwrap();
        score_hist_png(&c, "", &prob, &correct).unwrap();
        risk_coverage_png(&c, "", &[("g", &good)], &correct).unwrap();
    }

    #[test]
    fn single_class_rows_still_plot() {
        let correct = vec![true; 50];
        let s: Vec<f32> = (0..50).map(|i| i as f32 / 50.0).collect();
        let dir = tempfile::tempdir().unwrap();
        let paths = write_all(dir.path(), "all correct", &[("s", &s)], &correct, &s).unwrap();
        for p in &paths {
            let img = image::open(p).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (PLOT_WIDTH, PLOT_HEIGHT));
        }
        // The ROC carries the explanation (in the error colour) and no curve.
        let roc = image::open(&paths[0]).unwrap().to_rgb8();
        assert!(count_color(&roc, WRONG_COLOR) > 100);
        assert_eq!(count_color(&roc, PALETTE[0]), 0);
        // NaN and out-of-range probabilities do not break anything.
        let odd = [f32::NAN, -3.0, 2.0, 0.5];
        let c = [true, false, true, false];
        write_all(&dir.path().join("odd"), "", &[("odd", &odd)], &c, &odd).unwrap();
    }

    #[test]
    fn histogram_shares_are_per_group() {
        let p = [0.0, 0.01, 0.99, 1.0, 0.5, f32::NAN, 7.0];
        let c = [true, true, true, true, false, false, false];
        let (sc, sw) = hist_shares(&p, &c);
        assert_eq!(sc[0], 0.5);
        assert_eq!(sc[HIST_BINS - 1], 0.5);
        assert!((sw[10] - 1.0 / 3.0).abs() < 1e-12);
        assert!((sw[0] - 1.0 / 3.0).abs() < 1e-12);
        assert!((sw[HIST_BINS - 1] - 1.0 / 3.0).abs() < 1e-12);
        assert!((sc.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((sw.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn optimal_risk_curve() {
        assert_eq!(optimal_risk(0.5, 0.2), 0.0);
        assert_eq!(optimal_risk(0.8, 0.2), 0.0);
        assert!((optimal_risk(1.0, 0.2) - 0.2).abs() < 1e-12);
        assert!((optimal_risk(0.9, 0.2) - 0.1 / 0.9).abs() < 1e-12);
        assert_eq!(optimal_risk(0.0, 0.2), 0.0);
    }

    #[test]
    fn bad_inputs_are_clear_errors_and_write_nothing() {
        let (correct, good, _, prob) = data(20);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("never");

        let short = &good[..19];
        let err = write_all(
            &out,
            "",
            &[("MetaNet", &good), ("MSP", short)],
            &correct,
            &prob,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                PlotError::LengthMismatch {
                    len: 19,
                    expected: 20,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("`MSP`"), "{err}");

        let err = write_all(&out, "", &[("MetaNet", &good)], &correct, &prob[..3]).unwrap_err();
        assert!(err.to_string().contains("P(correct) has 3 values"), "{err}");

        let err = write_all(&out, "", &[], &correct, &prob).unwrap_err();
        assert!(matches!(err, PlotError::NoScores));
        let err = write_all(&out, "", &[("s", &[])], &[], &[]).unwrap_err();
        assert!(matches!(err, PlotError::NoRows));
        assert!(!out.exists(), "a failed call created the directory");

        // An unwritable directory: its would-be parent is a regular file.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let target = blocker.join("plots");
        let err = write_all(&target, "", &[("MetaNet", &good)], &correct, &prob).unwrap_err();
        match &err {
            PlotError::Io { path, .. } => assert_eq!(path, &target),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("cannot write plots to"), "{err}");

        // A destination that is a directory cannot be replaced by a PNG.
        let occupied = dir.path().join("occupied");
        std::fs::create_dir_all(occupied.join("roc.png")).unwrap();
        let err = write_all(&occupied, "", &[("MetaNet", &good)], &correct, &prob).unwrap_err();
        assert!(matches!(err, PlotError::Io { .. }), "{err:?}");
        let names: Vec<_> = std::fs::read_dir(&occupied)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("roc.png")],
            "temp file left"
        );
    }
}

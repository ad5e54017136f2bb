//! The figure of `reason explain`: one PNG per image with the picture, its saliency overlays
//! (predicted and labelled class) with their colour legend, the head's top-5 bars and
//! P(correct), and the strip of the nearest training images. Text is drawn with the plots'
//! built-in font; the pictures are composed with `image`.

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use crate::model::saliency;
use crate::report::plots::{draw_err, ensure_font, save_png, PlotError, FONT};

const MARGIN: u32 = 20;
const PANEL: u32 = 300;
const TILE: u32 = 136;
const GAP: u32 = 12;
const WIDTH: u32 = 1300;
const ROW1_Y: u32 = 64;
const LEGEND_Y: u32 = ROW1_Y + PANEL + 8;
const ROW2_Y: u32 = LEGEND_Y + 56;
const HEIGHT: u32 = ROW2_Y + 28 + TILE + 52;
/// Tiles that fit across the figure.
pub const MAX_TILES: usize = ((WIDTH - 2 * MARGIN + GAP) / (TILE + GAP)) as usize;

const RED: RGBColor = RGBColor(200, 30, 30);
const GREEN: RGBColor = RGBColor(30, 140, 60);
const GREY: RGBColor = RGBColor(110, 110, 110);

/// One of the nearest training images.
pub struct Tile {
    /// The picture, or `None` when it is missing (then `missing` says why, in its place).
    pub image: Option<RgbImage>,
    pub missing: String,
    /// Its class name.
    pub label: String,
    pub distance: f32,
    /// Not the predicted class: marked.
    pub other_class: bool,
}

pub struct Figure {
    /// The image's name (first line).
    pub title: String,
    /// (caption, picture): the image, then its saliency overlays.
    pub panels: Vec<(String, RgbImage)>,
    /// Text lines beside the panels (P(correct), verdict, prediction, label).
    pub lines: Vec<(String, bool)>,
    /// The head's top classes and probabilities, most probable first.
    pub top: Vec<(String, f32)>,
    /// Heading of the neighbours strip (also what to do when there are no pictures).
    pub neighbours_title: String,
    pub neighbours: Vec<Tile>,
}

/// `image` scaled to fit a `width` × `height` box, keeping its aspect ratio.
fn fit(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let s = (width as f32 / w.max(1) as f32).min(height as f32 / h.max(1) as f32);
    let (nw, nh) = (
        ((w as f32 * s).round() as u32).clamp(1, width),
        ((h as f32 * s).round() as u32).clamp(1, height),
    );
    imageops::resize(image, nw, nh, FilterType::Triangle)
}

/// Pastes `image` fitted and centred into the box at (x, y).
fn paste(canvas: &mut RgbImage, image: &RgbImage, x: u32, y: u32, side: u32) {
    let fitted = fit(image, side, side);
    let dx = (side - fitted.width()) / 2;
    let dy = (side - fitted.height()) / 2;
    imageops::overlay(canvas, &fitted, (x + dx) as i64, (y + dy) as i64);
}

/// The figure as an RGB image.
pub fn render(figure: &Figure) -> Result<RgbImage, PlotError> {
    ensure_font()?;
    let plot = "explain";
    let mut canvas = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255]));
    let panel_x = |i: usize| MARGIN + i as u32 * (PANEL + GAP);
    for (i, (_, image)) in figure.panels.iter().enumerate().take(3) {
        paste(&mut canvas, image, panel_x(i), ROW1_Y, PANEL);
    }
    // The colour legend under each saliency panel.
    for i in 1..figure.panels.len().min(3) {
        for dx in 0..PANEL {
            let c = saliency::colour(dx as f32 / (PANEL - 1) as f32);
            for dy in 0..10 {
                canvas.put_pixel(panel_x(i) + dx, LEGEND_Y + dy, Rgb(c));
            }
        }
    }
    let tile_x = |i: usize| MARGIN + i as u32 * (TILE + GAP);
    for (i, tile) in figure.neighbours.iter().take(MAX_TILES).enumerate() {
        let y = ROW2_Y + 28;
        match &tile.image {
            Some(image) => paste(&mut canvas, image, tile_x(i), y, TILE),
            None => {
                for dx in 0..TILE {
                    for dy in 0..TILE {
                        canvas.put_pixel(tile_x(i) + dx, y + dy, Rgb([235, 235, 235]));
                    }
                }
            }
        }
    }

    let mut buf = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let text = |s: &str, size: u32, colour: &RGBColor, x: u32, y: u32| {
            root.draw_text(
                s,
                &TextStyle::from((FONT, size).into_font()).color(colour),
                (x as i32, y as i32),
            )
            .map_err(draw_err(plot))
        };
        text(&figure.title, 22, &BLACK, MARGIN, 16)?;
        for (i, (caption, _)) in figure.panels.iter().enumerate().take(3) {
            text(caption, 16, &BLACK, panel_x(i), ROW1_Y - 22)?;
        }
        for i in 1..figure.panels.len().min(3) {
            text("low", 14, &GREY, panel_x(i), LEGEND_Y + 14)?;
            text(
                "high |∂ log p / ∂x|",
                14,
                &GREY,
                panel_x(i) + PANEL - 130,
                LEGEND_Y + 14,
            )?;
        }
        // The text column beside the panels.
        let x = panel_x(3);
        let mut y = ROW1_Y - 22;
        for (line, bad) in &figure.lines {
            text(line, 18, if *bad { &RED } else { &BLACK }, x, y)?;
            y += 28;
        }
        y += 8;
        text("head top-5", 16, &GREY, x, y)?;
        y += 24;
        let bar_width = (WIDTH - MARGIN - x - 60) as f64;
        for (name, p) in figure.top.iter().take(5) {
            text(name, 15, &BLACK, x, y)?;
            y += 20;
            let len = (bar_width * p.clamp(0.0, 1.0) as f64).round() as i32;
            root.draw(&Rectangle::new(
                [(x as i32, y as i32), (x as i32 + len.max(1), y as i32 + 12)],
                RGBColor(31, 119, 180).filled(),
            ))
            .map_err(draw_err(plot))?;
            text(
                &format!("{p:.3}"),
                14,
                &BLACK,
                x + bar_width as u32 + 8,
                y - 2,
            )?;
            y += 22;
        }
        text(&figure.neighbours_title, 16, &BLACK, MARGIN, ROW2_Y)?;
        for (i, tile) in figure.neighbours.iter().take(MAX_TILES).enumerate() {
            let y = ROW2_Y + 28;
            if tile.image.is_none() {
                text(&tile.missing, 14, &GREY, tile_x(i) + 8, y + TILE / 2 - 8)?;
            }
            let (mark, colour) = if tile.other_class {
                ("✗ ", &RED)
            } else {
                ("", &GREEN)
            };
            let label: String = format!("{mark}{}", tile.label).chars().take(18).collect();
            text(&label, 14, colour, tile_x(i), y + TILE + 4)?;
            text(
                &format!("d {:.2}", tile.distance),
                14,
                &GREY,
                tile_x(i),
                y + TILE + 22,
            )?;
        }
        root.present().map_err(draw_err(plot))?;
    }
    Ok(RgbImage::from_raw(WIDTH, HEIGHT, buf).expect("buffer has width × height × 3 bytes"))
}

/// Writes the figure to `path` as PNG (temp file + rename).
pub fn write_png(path: &Path, figure: &Figure) -> Result<(), PlotError> {
    save_png(path, &render(figure)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figure_holds_the_panels_the_bars_and_the_tiles() {
        let red = RgbImage::from_pixel(60, 30, Rgb([250, 0, 0]));
        let blue = RgbImage::from_pixel(20, 20, Rgb([0, 0, 250]));
        let figure = Figure {
            title: "a.jpg".into(),
            panels: vec![("image".into(), red.clone()), ("saliency".into(), red)],
            lines: vec![("P(correct) 0.91".into(), false)],
            top: vec![("tench".into(), 0.9), ("golf ball".into(), 0.1)],
            neighbours_title: "nearest".into(),
            neighbours: vec![
                Tile {
                    image: Some(blue),
                    missing: String::new(),
                    label: "tench".into(),
                    distance: 1.5,
                    other_class: false,
                },
                Tile {
                    image: None,
                    missing: "missing".into(),
                    label: "golf ball".into(),
                    distance: 2.0,
                    other_class: true,
                },
            ],
        };
        let image = render(&figure).unwrap();
        assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
        // The 2:1 picture is centred in its square panel: red in the middle, white above.
        let mid = ROW1_Y + PANEL / 2;
        assert_eq!(image.get_pixel(MARGIN + PANEL / 2, mid).0, [250, 0, 0]);
        assert_eq!(image.get_pixel(MARGIN + PANEL / 2, ROW1_Y + 5).0, [255; 3]);
        // The legend runs from the cold colour to the hot one.
        let legend = |dx| image.get_pixel(MARGIN + PANEL + GAP + dx, LEGEND_Y + 5).0;
        assert_eq!(legend(0), saliency::colour(0.0));
        assert_eq!(legend(PANEL - 1), saliency::colour(1.0));
        // The first tile is the blue picture, the second the grey "missing" box.
        let tile_y = ROW2_Y + 28 + TILE / 2;
        assert_eq!(image.get_pixel(MARGIN + TILE / 2, tile_y).0, [0, 0, 250]);
        assert_eq!(
            image.get_pixel(MARGIN + TILE + GAP + 2, ROW2_Y + 30).0,
            [235; 3]
        );
    }
}

//! Why the model decided: the saliency overlay of the preview (`x`) and the nearest training
//! images (the neighbours panel), computed on their own worker thread for the selected sample
//! only, cached, and never waited for by the UI thread.
//!
//! The worker loads what it needs on first use: the artifacts (the k-NN bank and its paths)
//! for neighbours, then the backbone for saliency. Without artifacts (`App` built by tests) or
//! with ones that do not fit, the panels say why instead.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use image::DynamicImage;
use ratatui::layout::{Rect, Size};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use ratatui_image::{FilterType, Resize};

use crate::model::saliency::{self, Saliency};
use crate::reliability::artifacts::Artifacts;
use crate::reliability::explain::{nearest_of_record, Explainer};
use crate::reliability::knn;
use crate::reliability::neighbours::{Neighbour, NeighbourImage};
use crate::reliability::records::SampleRecord;
use crate::reliability::scoring::ScoringModels;

use super::app::App;
use super::layout::inner;
use super::preview::{self, PreviewKey};

/// Overlays and neighbour lists kept (the selection and a few recently seen).
const CACHE_CAPACITY: usize = 12;
/// Saliency maps the worker keeps, so a resize or a class switch back re-encodes only.
const MAP_CAPACITY: usize = 8;
/// Neighbours listed (the k of the k-NN features).
pub const NEIGHBOURS: usize = knn::K;

/// What the preview shows over the image (`x` cycles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overlay {
    #[default]
    Off,
    /// Saliency of the predicted class.
    Predicted,
    /// Saliency of the labelled class.
    Labelled,
}

impl Overlay {
    pub fn next(self) -> Overlay {
        match self {
            Overlay::Off => Overlay::Predicted,
            Overlay::Predicted => Overlay::Labelled,
            Overlay::Labelled => Overlay::Off,
        }
    }

    /// The class whose saliency `record` shows, if any (`Labelled` on an unlabelled sample
    /// shows nothing).
    pub fn class(self, record: &SampleRecord) -> Option<u16> {
        match self {
            Overlay::Off => None,
            Overlay::Predicted => Some(record.pred),
            Overlay::Labelled => record.label,
        }
    }
}

/// One overlay: the saliency of `class` for sample `id`, encoded for `width` × `height` cells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaliencyKey {
    pub id: String,
    pub class: u16,
    pub width: u16,
    pub height: u16,
}

/// Where the inspection worker finds its models.
#[derive(Debug, Clone)]
pub struct InspectSource {
    pub artifacts_dir: PathBuf,
    /// The backbone weights file (`None`: not on this machine; the overlay says so, the
    /// neighbours need none).
    pub weights: Option<PathBuf>,
    pub device: candle_core::Device,
    /// Why the models cannot explain these records, when known before they load (a scored
    /// table from other artifacts): shown in place of the overlay and the neighbours.
    pub unavailable: Option<String>,
}

/// What the worker is asked for: the selected sample's overlay and neighbours, as wanted now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InspectRequest {
    pub saliency: Option<SaliencyKey>,
    /// The sample whose neighbours are wanted (its meta-vector holds its bank-space point).
    pub neighbours: Option<SampleRecord>,
}

pub enum InspectResult {
    Saliency {
        key: SaliencyKey,
        /// The encoded overlay and how long it took, or why there is none.
        image: Result<(Protocol, Duration), String>,
    },
    Neighbours {
        id: String,
        neighbours: Result<Vec<Neighbour>, String>,
    },
    /// What the worker is doing (loading the backbone), for the panels' waiting text.
    Status(String),
}

/// The encoded image is terminal escape data: shown as its outcome only.
impl std::fmt::Debug for InspectResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InspectResult::Saliency { key, image } => f
                .debug_struct("Saliency")
                .field("key", key)
                .field("image", &image.as_ref().map(|_| "encoded"))
                .finish(),
            InspectResult::Neighbours { id, neighbours } => f
                .debug_struct("Neighbours")
                .field("id", id)
                .field("neighbours", &neighbours.as_ref().map(Vec::len))
                .finish(),
            InspectResult::Status(s) => f.debug_tuple("Status").field(s).finish(),
        }
    }
}

/// A small least-recently-inserted cache.
struct Lru<K, V> {
    entries: VecDeque<(K, V)>,
    capacity: usize,
}

impl<K: PartialEq, V> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Lru {
            entries: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn insert(&mut self, key: K, value: V) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push_back((key, value));
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
    }
}

/// The dashboard's inspection state (read by the preview and neighbours widgets).
pub struct Inspect {
    pub overlay: Overlay,
    saliency: Lru<SaliencyKey, Result<(Protocol, Duration), String>>,
    neighbours: Lru<String, Result<Vec<Neighbour>, String>>,
    /// The worker's last status line (e.g. "loading the backbone…").
    pub status: Option<String>,
    /// Whether a worker exists (false: nothing will answer, say so instead of "loading").
    pub available: bool,
}

impl Default for Inspect {
    fn default() -> Self {
        Inspect {
            overlay: Overlay::Off,
            saliency: Lru::new(CACHE_CAPACITY),
            neighbours: Lru::new(CACHE_CAPACITY),
            status: None,
            available: false,
        }
    }
}

impl Inspect {
    pub fn saliency(&self, key: &SaliencyKey) -> Option<&Result<(Protocol, Duration), String>> {
        self.saliency.get(key)
    }

    pub fn neighbours(&self, id: &str) -> Option<&Result<Vec<Neighbour>, String>> {
        self.neighbours.get(&id.to_string())
    }

    pub fn apply(&mut self, result: InspectResult) {
        match result {
            InspectResult::Saliency { key, image } => self.saliency.insert(key, image),
            InspectResult::Neighbours { id, neighbours } => self.neighbours.insert(id, neighbours),
            InspectResult::Status(text) => self.status = Some(text),
        }
    }

    /// What the screen wants that is not cached yet.
    pub fn missing(&self, wanted: InspectRequest) -> InspectRequest {
        InspectRequest {
            saliency: wanted.saliency.filter(|k| self.saliency.get(k).is_none()),
            neighbours: wanted
                .neighbours
                .filter(|r| self.neighbours.get(&r.id).is_none()),
        }
    }
}

/// Thumbnail previews of neighbours: their absolute path as the preview id (the preview
/// worker joins ids to the dataset root, and joining an absolute path keeps it as it is).
pub fn thumbnail_key(file: &Path, width: u16, height: u16) -> PreviewKey {
    PreviewKey {
        id: file.display().to_string(),
        width,
        height,
    }
}

/// Sends requests to the worker, skipping one identical to the last one sent.
pub struct InspectRequester {
    sender: Option<Sender<InspectRequest>>,
    last_sent: InspectRequest,
}

impl InspectRequester {
    pub fn new(sender: Option<Sender<InspectRequest>>) -> Self {
        InspectRequester {
            sender,
            last_sent: InspectRequest::default(),
        }
    }

    pub fn request(&mut self, missing: InspectRequest) {
        if missing != self.last_sent {
            if let Some(sender) = &self.sender {
                // A closed worker only means no more overlays; the dashboard keeps working.
                let _ = sender.send(missing.clone());
            }
            self.last_sent = missing;
        }
    }
}

/// The worker's models, loaded on first use.
struct Models {
    source: InspectSource,
    artifacts: Option<Result<Artifacts, String>>,
    explainer: Option<Result<Explainer, String>>,
    bank_root: Option<PathBuf>,
}

impl Models {
    fn artifacts(&mut self) -> Result<&Artifacts, String> {
        if let Some(reason) = &self.source.unavailable {
            return Err(reason.clone());
        }
        if let Some(Ok(explainer)) = &self.explainer {
            return Ok(&explainer.models.artifacts);
        }
        let dir = self.source.artifacts_dir.clone();
        let loaded = self
            .artifacts
            .get_or_insert_with(|| Artifacts::load(&dir).map_err(|e| e.to_string()));
        if let Ok(a) = loaded {
            self.bank_root = a.bank_paths.as_ref().and_then(|p| p.resolve_root());
        }
        loaded.as_ref().map_err(Clone::clone)
    }

    fn neighbours(&mut self, record: &SampleRecord) -> Result<Vec<Neighbour>, String> {
        self.artifacts()?;
        let artifacts = match (&self.explainer, &self.artifacts) {
            (Some(Ok(e)), _) => &e.models.artifacts,
            (_, Some(Ok(a))) => a,
            _ => return Err("the artifacts did not load".into()),
        };
        Ok(nearest_of_record(
            artifacts,
            self.bank_root.as_deref(),
            record,
            NEIGHBOURS,
        ))
    }

    fn explainer(&mut self, status: &dyn Fn(String)) -> Result<&Explainer, String> {
        if self.explainer.is_none() {
            self.artifacts()?;
            let artifacts = match self.artifacts.take() {
                Some(Ok(a)) => a,
                _ => return Err("the artifacts did not load".into()),
            };
            status("loading the backbone for the saliency…".into());
            let kind = &artifacts.manifest.backbone.name;
            let loaded = match &self.source.weights {
                None => Err(format!(
                    "no saliency: the {kind} weights are not on this machine (pass --weights PATH)"
                )),
                Some(weights) => crate::model::backbone::BackboneKind::from_name(kind)
                    .and_then(|kind| ScoringModels::with_weights(artifacts, kind, weights))
                    .and_then(|models| Explainer::new(models, &self.source.device))
                    .map_err(|e| format!("no saliency: {e}")),
            };
            status(String::new());
            self.explainer = Some(loaded);
        }
        match self.explainer.as_ref().expect("set above") {
            Ok(e) => Ok(e),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Runs the inspection worker until `requests` is closed or `results` refuses a message.
/// A newer request replaces an older one not yet started.
pub fn run_worker(
    source: InspectSource,
    picker: Picker,
    dataset_root: PathBuf,
    requests: Receiver<InspectRequest>,
    results: impl Fn(InspectResult) -> bool,
) {
    let mut models = Models {
        source,
        artifacts: None,
        explainer: None,
        bank_root: None,
    };
    let mut maps: Lru<(String, u16), Saliency> = Lru::new(MAP_CAPACITY);
    while let Ok(first) = requests.recv() {
        let request = requests.try_iter().last().unwrap_or(first);
        // Neighbours first: they are fast, the saliency takes a backbone pass.
        if let Some(record) = request.neighbours {
            let neighbours = catch_unwind(AssertUnwindSafe(|| models.neighbours(&record)))
                .unwrap_or_else(|_| Err("the neighbour search crashed".into()));
            if !results(InspectResult::Neighbours {
                id: record.id,
                neighbours,
            }) {
                return;
            }
        }
        if let Some(key) = request.saliency {
            let status = |text: String| {
                let _ = results(InspectResult::Status(text));
            };
            let image = catch_unwind(AssertUnwindSafe(|| {
                overlay_for(
                    &mut models,
                    &mut maps,
                    &picker,
                    &dataset_root,
                    &key,
                    &status,
                )
            }))
            .unwrap_or_else(|_| Err("the saliency computation crashed".into()));
            if !results(InspectResult::Saliency { key, image }) {
                return;
            }
        }
    }
}

/// Decodes the sample, computes (or reuses) its saliency map and encodes the blended picture.
fn overlay_for(
    models: &mut Models,
    maps: &mut Lru<(String, u16), Saliency>,
    picker: &Picker,
    dataset_root: &Path,
    key: &SaliencyKey,
    status: &dyn Fn(String),
) -> Result<(Protocol, Duration), String> {
    let started = Instant::now();
    let path = dataset_root.join(&key.id);
    let image = preview::load(&path)?.to_rgb8();
    let explainer = models.explainer(status)?;
    let map_key = (key.id.clone(), key.class);
    let map = match maps.get(&map_key) {
        Some(map) => map.clone(),
        None => {
            let map = explainer
                .saliency(&image, key.class)
                .map_err(|e| format!("no saliency: {e}"))?;
            maps.insert(map_key, map.clone());
            map
        }
    };
    let pre = explainer.backbone.kind.preprocess();
    let blended = saliency::overlay(&image, &map, &pre);
    let protocol = picker
        .new_protocol(
            DynamicImage::ImageRgb8(blended),
            Size::new(key.width, key.height),
            Resize::Scale(Some(FilterType::Triangle)),
        )
        .map_err(|e| format!("cannot encode the overlay: {e}"))?;
    Ok((protocol, started.elapsed()))
}

/// The overlay's picture area and its legend's (the colour bar and what it shows; the
/// caption alone in a short panel), inside the preview's image area.
pub fn overlay_areas(image_area: Rect) -> (Rect, Rect) {
    let rows = if image_area.height >= 10 { 2 } else { 1 };
    let legend = rows.min(image_area.height.saturating_sub(2));
    let picture = Rect {
        height: image_area.height - legend,
        ..image_area
    };
    let legend = Rect {
        y: picture.bottom(),
        height: legend,
        ..image_area
    };
    (picture, legend)
}

/// Narrowest neighbour tile (a thumbnail with its class and distance under it).
const TILE_MIN_WIDTH: u16 = 14;
/// Caption lines under each thumbnail.
pub const CAPTION_ROWS: u16 = 2;
/// Smallest thumbnail height worth drawing.
const THUMB_MIN_HEIGHT: u16 = 3;

/// The thumbnail rectangles of up to `n` neighbour tiles inside `area` (row by row; each
/// tile's caption sits in the `CAPTION_ROWS` under its thumbnail).
pub fn tiles(area: Rect, n: usize) -> Vec<Rect> {
    if n == 0 || area.width < 4 || area.height == 0 {
        return Vec::new();
    }
    let cols = (area.width / TILE_MIN_WIDTH).max(1);
    let tile_width = area.width / cols;
    let needed = n.div_ceil(cols as usize) as u16;
    let mut rows = needed.max(1);
    if area.height / rows < THUMB_MIN_HEIGHT + CAPTION_ROWS {
        rows = (area.height / (THUMB_MIN_HEIGHT + CAPTION_ROWS)).max(1);
    }
    let tile_height = area.height / rows;
    let Some(thumb_height) = tile_height.checked_sub(CAPTION_ROWS).filter(|h| *h > 0) else {
        return Vec::new();
    };
    (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .take(n)
        .map(|(r, c)| Rect {
            x: area.x + c * tile_width,
            y: area.y + r * tile_height,
            // One column apart, so neighbouring pictures do not touch.
            width: tile_width.saturating_sub(1).max(1),
            height: thumb_height,
        })
        .collect()
}

impl App {
    /// The overlay the preview shows now, if any: its key at the current size.
    pub fn saliency_key(&self) -> Option<SaliencyKey> {
        let record = self.selected_record()?;
        let class = self.inspect.overlay.class(record)?;
        let (picture, _) = overlay_areas(self.screen()?.preview_image());
        (picture.width > 0 && picture.height > 0).then(|| SaliencyKey {
            id: record.id.clone(),
            class,
            width: picture.width,
            height: picture.height,
        })
    }

    /// What the inspection worker should have ready: the overlay and, when the neighbours
    /// panel is on screen, the selected sample's neighbours.
    pub fn wanted_inspection(&self) -> InspectRequest {
        let neighbours_shown = self.screen().is_some_and(|s| !s.neighbours.is_empty());
        InspectRequest {
            saliency: self.saliency_key(),
            neighbours: self.selected_record().filter(|_| neighbours_shown).cloned(),
        }
    }

    /// Thumbnail previews the neighbours panel shows now.
    pub fn wanted_thumbnails(&self) -> Vec<PreviewKey> {
        let Some(screen) = self.screen() else {
            return Vec::new();
        };
        let Some(Ok(list)) = self
            .selected_record()
            .and_then(|r| self.inspect.neighbours(&r.id))
        else {
            return Vec::new();
        };
        tiles(inner(screen.neighbours), list.len())
            .iter()
            .zip(list)
            .filter_map(|(tile, n)| match &n.image {
                NeighbourImage::Found(file) => Some(thumbnail_key(file, tile.width, tile.height)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, label: Option<u16>) -> SampleRecord {
        SampleRecord {
            id: id.into(),
            label,
            pred: 2,
            probs: vec![],
            p_correct: 0.5,
            diagnostics: Default::default(),
            meta: vec![],
            truncated: false,
        }
    }

    #[test]
    fn tiles_fill_a_strip_or_a_side_panel() {
        // The full screen's strip: one row of 8.
        let strip = tiles(Rect::new(1, 30, 118, 8), 10);
        assert_eq!(strip.len(), 8);
        assert!(strip.iter().all(|t| t.height == 6 && t.y == 30));
        // The compact side panel: two columns, three rows.
        let side = tiles(Rect::new(45, 2, 34, 16), 10);
        assert_eq!(side.len(), 6);
        assert_eq!(side[1].y, side[0].y);
        assert!(side[2].y > side[0].y && side[0].height >= 3);
        // Every tile (and its captions) stays inside.
        assert!(strip
            .iter()
            .all(|t| t.bottom() + CAPTION_ROWS <= 38 && t.right() <= 119));
        assert!(side
            .iter()
            .all(|t| t.bottom() + CAPTION_ROWS <= 18 && t.right() <= 79));
        assert!(tiles(Rect::new(0, 0, 30, 1), 3).is_empty());
    }

    #[test]
    fn the_overlay_cycles_through_predicted_and_labelled() {
        let r = record("a", Some(1));
        let seen: Vec<Option<u16>> = std::iter::successors(Some(Overlay::Off), |o| Some(o.next()))
            .take(4)
            .map(|o| o.class(&r))
            .collect();
        assert_eq!(seen, [None, Some(2), Some(1), None]);
        assert_eq!(Overlay::Labelled.class(&record("b", None)), None);
    }

    #[test]
    fn only_what_is_not_cached_is_asked_for() {
        let mut inspect = Inspect::default();
        let key = SaliencyKey {
            id: "a".into(),
            class: 2,
            width: 10,
            height: 5,
        };
        let wanted = InspectRequest {
            saliency: Some(key.clone()),
            neighbours: Some(record("a", None)),
        };
        assert_eq!(inspect.missing(wanted.clone()), wanted);
        inspect.apply(InspectResult::Saliency {
            key: key.clone(),
            image: Err("no".into()),
        });
        inspect.apply(InspectResult::Neighbours {
            id: "a".into(),
            neighbours: Ok(vec![]),
        });
        assert_eq!(inspect.missing(wanted), InspectRequest::default());
        assert!(inspect.saliency(&key).is_some());
    }

    #[test]
    fn a_worker_without_artifacts_answers_with_the_reason() {
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(InspectRequest {
            saliency: Some(SaliencyKey {
                id: "a.png".into(),
                class: 0,
                width: 10,
                height: 5,
            }),
            neighbours: Some(record("a.png", None)),
        })
        .unwrap();
        drop(tx);
        let seen = std::sync::Mutex::new(Vec::new());
        let source = InspectSource {
            artifacts_dir: PathBuf::from("/nonexistent/artifacts"),
            weights: None,
            device: candle_core::Device::Cpu,
            unavailable: None,
        };
        run_worker(
            source,
            Picker::halfblocks(),
            PathBuf::from("/nonexistent"),
            rx,
            |r| {
                seen.lock().unwrap().push(format!("{r:?}"));
                true
            },
        );
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].contains("Neighbours") && seen[0].contains("Err"),
            "{seen:?}"
        );
        // The picture is missing before any model is needed.
        assert!(
            seen[1].contains("Saliency") && seen[1].contains("Err"),
            "{seen:?}"
        );
    }
}

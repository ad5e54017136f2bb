//! Image previews: decoded, resized and encoded for the terminal's graphics protocol on a
//! worker thread, kept in a small LRU cache that the UI thread only reads.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};

use image::DynamicImage;
use ratatui::layout::Size;
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use ratatui_image::{FilterType, Resize};

use crate::data::imageio;
use crate::error::Error;

/// Encoded previews kept: the selection, its neighbours and a few recently seen.
pub const CACHE_CAPACITY: usize = 16;

/// How many rows above and below the selection are encoded ahead.
pub const NEIGHBOURS: usize = 2;

/// One preview: a sample encoded for an area of `width` × `height` cells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreviewKey {
    pub id: String,
    pub width: u16,
    pub height: u16,
}

pub struct PreviewResult {
    pub key: PreviewKey,
    /// The encoded image, or why there is none (shown in its place).
    pub image: Result<Protocol, String>,
}

/// The encoded image is terminal escape data: shown as its outcome only.
impl std::fmt::Debug for PreviewResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewResult")
            .field("key", &self.key)
            .field("image", &self.image.as_ref().map(|_| "encoded"))
            .finish()
    }
}

/// Least-recently-used cache of encoded previews (failures included, so a broken file is not
/// decoded again on every frame).
pub struct PreviewCache {
    entries: VecDeque<(PreviewKey, Result<Protocol, String>)>,
    capacity: usize,
}

impl Default for PreviewCache {
    fn default() -> Self {
        Self::new(CACHE_CAPACITY)
    }
}

impl PreviewCache {
    pub fn new(capacity: usize) -> Self {
        PreviewCache {
            entries: VecDeque::with_capacity(capacity + 1),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, key: &PreviewKey) -> Option<&Result<Protocol, String>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains(&self, key: &PreviewKey) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Marks an entry as just used, so it is evicted last.
    pub fn touch(&mut self, key: &PreviewKey) {
        if let Some(pos) = self.entries.iter().position(|(k, _)| k == key) {
            if let Some(entry) = self.entries.remove(pos) {
                self.entries.push_back(entry);
            }
        }
    }

    pub fn insert(&mut self, key: PreviewKey, image: Result<Protocol, String>) {
        if let Some(pos) = self.entries.iter().position(|(k, _)| *k == key) {
            self.entries.remove(pos);
        }
        self.entries.push_back((key, image));
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Decodes `path` with the decoder the model uses (EXIF orientation, size limits against
/// decompression bombs), so the preview is the picture that was scored; the error is the text
/// shown in the preview's place.
pub fn load(path: &Path) -> Result<DynamicImage, String> {
    match imageio::decode_rgb(path) {
        Ok(image) => Ok(DynamicImage::ImageRgb8(image)),
        Err(Error::Io { path, source }) => Err(format!("cannot open {}: {source}", path.display())),
        Err(Error::Decode { path, reason }) => {
            Err(format!("cannot decode {}: {reason}", path.display()))
        }
        Err(other) => Err(other.to_string()),
    }
}

/// Decodes `path` and encodes it to fit `width` × `height` cells with `picker`'s protocol,
/// keeping the aspect ratio. Slow (decoding, resizing, encoding): call it off the UI thread.
pub fn encode(picker: &Picker, path: &Path, width: u16, height: u16) -> Result<Protocol, String> {
    let image = load(path)?;
    picker
        .new_protocol(
            image,
            Size::new(width, height),
            Resize::Scale(Some(FilterType::Triangle)),
        )
        .map_err(|e| format!("cannot encode {}: {e}", path.display()))
}

/// Runs the preview worker until `requests` is closed or `results` refuses a message.
///
/// Each request is the full list of previews the UI still lacks, most wanted first; a newer
/// list replaces an older one that is not finished, so scrolling fast never builds a backlog.
pub fn run_worker(
    picker: Picker,
    dataset_root: PathBuf,
    requests: Receiver<Vec<PreviewKey>>,
    results: impl Fn(PreviewResult) -> bool,
) {
    let Ok(mut queue) = requests.recv().map(VecDeque::from) else {
        return;
    };
    loop {
        // A newer list replaces what is left of the current one.
        if let Some(batch) = requests.try_iter().last() {
            queue = VecDeque::from(batch);
        }
        let Some(key) = queue.pop_front() else {
            match requests.recv() {
                Ok(batch) => queue = VecDeque::from(batch),
                Err(_) => return,
            }
            continue;
        };
        let path = dataset_root.join(&key.id);
        let image = catch_unwind(AssertUnwindSafe(|| {
            encode(&picker, &path, key.width, key.height)
        }))
        .unwrap_or_else(|_| Err(format!("decoding {} crashed", path.display())));
        if !results(PreviewResult { key, image }) {
            return;
        }
    }
}

/// Sends preview requests to the worker, skipping a list identical to the last one sent.
pub struct PreviewRequester {
    sender: Sender<Vec<PreviewKey>>,
    last_sent: Vec<PreviewKey>,
}

impl PreviewRequester {
    pub fn new(sender: Sender<Vec<PreviewKey>>) -> Self {
        PreviewRequester {
            sender,
            last_sent: Vec::new(),
        }
    }

    pub fn request(&mut self, missing: Vec<PreviewKey>) {
        if missing != self.last_sent {
            // A closed worker only means no more previews; the dashboard keeps working.
            let _ = self.sender.send(missing.clone());
            self.last_sent = missing;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> PreviewKey {
        PreviewKey {
            id: id.into(),
            width: 10,
            height: 5,
        }
    }

    #[test]
    fn cache_evicts_least_recently_used() {
        let mut cache = PreviewCache::new(2);
        cache.insert(key("a"), Err("a".into()));
        cache.insert(key("b"), Err("b".into()));
        cache.touch(&key("a"));
        cache.insert(key("c"), Err("c".into()));
        assert!(cache.contains(&key("a")));
        assert!(!cache.contains(&key("b")));
        assert!(cache.contains(&key("c")));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn missing_file_gives_an_error_text() {
        let err = encode(&Picker::halfblocks(), Path::new("/no/such/file.png"), 10, 5)
            .err()
            .unwrap();
        assert!(err.contains("cannot open /no/such/file.png"), "{err}");
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn previews_are_upright_like_the_scored_image() {
        // Stored 8x16 with EXIF orientation 6: the model sees it 16x8, and so does the preview.
        let image = load(&fixture("exif_rotate90.jpg")).unwrap();
        assert_eq!((image.width(), image.height()), (16, 8));
        let wide = encode(&Picker::halfblocks(), &fixture("exif_rotate90.jpg"), 40, 40).unwrap();
        let size = wide.size();
        assert!(size.width > size.height, "{size:?}");
    }

    #[test]
    fn oversized_images_are_refused_with_the_reason_as_the_preview_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        let width = imageio::MAX_DIMENSION + 1;
        image::RgbImage::new(width, 1).save(&path).unwrap();
        let err = encode(&Picker::halfblocks(), &path, 10, 5).err().unwrap();
        assert!(err.starts_with("cannot decode"), "{err}");
        assert!(err.contains("wide.png") && err.contains("refused"), "{err}");
        assert!(err.contains("decompression bomb"), "{err}");
    }

    #[test]
    fn worker_answers_the_newest_batch_and_stops_when_closed() {
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(vec![key("old")]).unwrap();
        tx.send(vec![key("new1"), key("new2")]).unwrap();
        drop(tx);
        let seen = std::sync::Mutex::new(Vec::new());
        run_worker(
            Picker::halfblocks(),
            PathBuf::from("/nonexistent"),
            rx,
            |r| {
                seen.lock().unwrap().push(r.key.id);
                true
            },
        );
        // "old" is replaced by the newer batch before it is started.
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen, vec!["new1", "new2"]);
    }
}

//! Hugging Face hub weights, through hf-hub and its standard cache.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::Cache;

use super::{detail_for, escaped, DownloadProgress, FetchError};

/// Which hub to talk to and where its downloads are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSource {
    /// Base URL of the hub, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// The hub cache folder (the `hub` folder of the Hugging Face cache).
    pub cache_dir: PathBuf,
}

impl HubSource {
    /// What hf-hub itself uses: `$HF_ENDPOINT` (default `https://huggingface.co`) and
    /// `$HF_HOME/hub` (default `~/.cache/huggingface/hub`).
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        Self {
            endpoint,
            cache_dir: Cache::from_env().path().clone(),
        }
    }
}

/// Returns the local path of `filename` from hub repository `hub_id` (e.g.
/// `timm/resnet18.a1_in1k`, `model.safetensors`), downloading it into the standard Hugging
/// Face cache the first time (the transfer is reported to `progress`). Honours `HF_ENDPOINT`
/// and `HF_HOME` like hf-hub does.
pub fn fetch_hub_weights(
    hub_id: &str,
    filename: &str,
    progress: &dyn Fn(DownloadProgress),
) -> Result<PathBuf, FetchError> {
    fetch_hub_weights_from(&HubSource::from_env(), hub_id, filename, progress)
}

/// [`fetch_hub_weights`] with an explicit hub and cache folder (no environment lookups).
pub fn fetch_hub_weights_from(
    source: &HubSource,
    hub_id: &str,
    filename: &str,
    progress: &dyn Fn(DownloadProgress),
) -> Result<PathBuf, FetchError> {
    // The cache answers first, so this works offline once downloaded.
    if let Some(path) = cached_hub_weights_in(&source.cache_dir, hub_id, filename) {
        return Ok(path);
    }
    let url = hub_url(&source.endpoint, hub_id, filename);
    let fail = |detail: String| FetchError::HubDownload {
        hub_id: hub_id.to_string(),
        filename: filename.to_string(),
        detail: detail_for(&detail, &url),
        url: url.clone(),
        cache_dir: source.cache_dir.clone(),
    };
    let api = ApiBuilder::from_cache(Cache::new(source.cache_dir.clone()))
        .with_endpoint(source.endpoint.trim_end_matches('/').to_string())
        .with_progress(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let reporter = Reporter { progress, done: 0 };
    let result = api
        .model(hub_id.to_string())
        .download_with_progress(filename, reporter);
    if result.is_err() {
        progress(DownloadProgress::Finished { complete: false });
    }
    result.map_err(|e| fail(e.to_string()))
}

/// hf-hub's progress hooks, turned into [`DownloadProgress`] events.
struct Reporter<'a> {
    progress: &'a dyn Fn(DownloadProgress),
    done: u64,
}

impl hf_hub::api::Progress for Reporter<'_> {
    // Called again (with the bytes already there as the first update) for each retry.
    fn init(&mut self, size: usize, filename: &str) {
        self.done = 0;
        (self.progress)(DownloadProgress::Started {
            name: escaped(filename),
            done: 0,
            total: Some(size as u64),
        });
    }

    fn update(&mut self, size: usize) {
        if size == 0 {
            return; // hf-hub reports every read, the last (empty) one included
        }
        self.done += size as u64;
        (self.progress)(DownloadProgress::Advanced { done: self.done });
    }

    fn finish(&mut self) {
        (self.progress)(DownloadProgress::Finished { complete: true });
    }
}

/// The cached copy of `filename` from `hub_id` in the standard Hugging Face cache
/// (`$HF_HOME/hub` or `~/.cache/huggingface/hub`), if there is one. Never uses the network.
pub fn cached_hub_weights(hub_id: &str, filename: &str) -> Option<PathBuf> {
    cached_hub_weights_in(Cache::from_env().path(), hub_id, filename)
}

/// [`cached_hub_weights`] in an explicit hub cache folder.
pub fn cached_hub_weights_in(cache_dir: &Path, hub_id: &str, filename: &str) -> Option<PathBuf> {
    Cache::new(cache_dir.to_path_buf())
        .model(hub_id.to_string())
        .get(filename)
}

/// The hub's download URL for a file on the `main` revision.
pub fn hub_url(endpoint: &str, hub_id: &str, filename: &str) -> String {
    format!(
        "{}/{hub_id}/resolve/main/{filename}",
        endpoint.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_url_is_the_resolve_url() {
        assert_eq!(
            hub_url(
                "https://huggingface.co/",
                "timm/resnet18.a1_in1k",
                "model.safetensors"
            ),
            "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors"
        );
    }
}

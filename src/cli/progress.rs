//! indicatif bars for long engine stages: one bar per stage, replaced when the stage changes;
//! and byte bars for downloads. The engine only reports progress; drawing happens here.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::data::download::DownloadProgress;

pub struct StageBars {
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl StageBars {
    pub fn new() -> Self {
        Self {
            current: Mutex::new(None),
        }
    }

    pub fn update(&self, stage: &str, done: usize, total: usize) {
        let mut current = self.current.lock().expect("progress lock");
        if current.as_ref().map(|(s, _)| s.as_str()) != Some(stage) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let bar = ProgressBar::new(total as u64).with_style(
                ProgressStyle::with_template(
                    "{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(stage.to_string());
            *current = Some((stage.to_string(), bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    pub fn finish(&self) {
        if let Some((_, bar)) = self.current.lock().expect("progress lock").take() {
            bar.finish();
        }
    }
}

impl Default for StageBars {
    fn default() -> Self {
        Self::new()
    }
}

/// A byte bar for the engine's downloads (a spinner when the size is unknown), one transfer at
/// a time: pass `&|event| bar.update(event)` as the progress callback.
pub struct DownloadBar {
    current: Mutex<Option<ProgressBar>>,
}

impl DownloadBar {
    pub fn new() -> Self {
        Self {
            current: Mutex::new(None),
        }
    }

    pub fn update(&self, event: DownloadProgress) {
        let mut current = self.current.lock().expect("progress lock");
        match event {
            DownloadProgress::Started { name, done, total } => {
                // A restarted transfer (a retry) replaces the bar of the previous attempt.
                if let Some(bar) = current.take() {
                    bar.finish_and_clear();
                }
                let (bar, template) = match total {
                    Some(total) => (
                        ProgressBar::new(total),
                        "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
                    ),
                    None => (
                        ProgressBar::new_spinner(),
                        "{msg} {spinner} {bytes} {bytes_per_sec}",
                    ),
                };
                bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
                bar.set_message(name);
                bar.set_position(done);
                *current = Some(bar);
            }
            DownloadProgress::Advanced { done } => {
                if let Some(bar) = current.as_ref() {
                    bar.set_position(done);
                }
            }
            DownloadProgress::Finished { complete } => {
                if let Some(bar) = current.take() {
                    if complete {
                        bar.finish();
                    } else {
                        bar.abandon();
                    }
                }
            }
        }
    }
}

impl Default for DownloadBar {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_bar_follows_a_transfer() {
        let bars = DownloadBar::new();
        bars.update(DownloadProgress::Advanced { done: 1 }); // before any start: ignored
        bars.update(DownloadProgress::Started {
            name: "imagenette2-160.tgz".into(),
            done: 10,
            total: Some(100),
        });
        bars.update(DownloadProgress::Advanced { done: 60 });
        {
            let current = bars.current.lock().unwrap();
            let bar = current.as_ref().expect("a bar while downloading");
            assert_eq!((bar.position(), bar.length()), (60, Some(100)));
            assert_eq!(bar.message(), "imagenette2-160.tgz");
        }
        bars.update(DownloadProgress::Finished { complete: false });
        assert!(bars.current.lock().unwrap().is_none());
        bars.update(DownloadProgress::Finished { complete: true }); // nothing to finish
    }
}

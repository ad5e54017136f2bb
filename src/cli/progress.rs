//! indicatif bars for long engine stages: one bar per stage, replaced when the stage changes.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

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

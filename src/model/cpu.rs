//! The CPU a figure was measured on, so that every benchmark row is attributable: the same
//! kernels ran at very different ratios on an AMD EPYC and an Intel Xeon.

use serde::Serialize;

/// The processor, the threads used, and the instruction sets the kernels run with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuInfo {
    /// `model name` of `/proc/cpuinfo`, with vendor, family and model numbers (a virtual
    /// machine may name only "AMD EPYC"; the family tells Zen 4 from Zen 5).
    pub model: String,
    /// Logical CPUs the process may run on.
    pub logical_cpus: usize,
    /// Threads the kernels use (rayon's pool).
    pub threads: usize,
    /// SIMD extensions the CPU reports, of those that matter here.
    pub detected: Vec<&'static str>,
    /// What the GEMMs (convolutions, linear layers) dispatch to at run time.
    pub gemm: &'static str,
    /// What REASON's own loops (depthwise, im2col, elementwise) run with on this CPU.
    pub loops: &'static str,
}

impl CpuInfo {
    /// This machine, with `threads` kernel threads.
    pub fn detect(threads: usize) -> CpuInfo {
        CpuInfo {
            model: model_name(),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
            detected: detected(),
            gemm: gemm_dispatch(),
            loops: crate::model::backbone::kernel::widest_simd_name(),
        }
    }

    /// One line for a table caption.
    pub fn summary(&self) -> String {
        format!(
            "{}, {} logical CPUs, {} threads; CPU has {}; GEMM kernels: {}; own loops: {}",
            self.model,
            self.logical_cpus,
            self.threads,
            if self.detected.is_empty() {
                "no SIMD extensions of note".to_string()
            } else {
                self.detected.join(" ")
            },
            self.gemm,
            self.loops
        )
    }
}

fn model_name() -> String {
    let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") else {
        return std::env::consts::ARCH.to_string();
    };
    let field = |name: &str| {
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.trim().to_string())
    };
    let name = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    match (field("vendor_id"), field("cpu family"), field("model")) {
        (Some(vendor), Some(family), Some(model)) => {
            format!("{name} ({vendor} family {family} model {model})")
        }
        _ => name,
    }
}

#[cfg(target_arch = "x86_64")]
fn detected() -> Vec<&'static str> {
    let mut found = Vec::new();
    macro_rules! check {
        ($($feature:tt),*) => {
            $(if std::arch::is_x86_feature_detected!($feature) {
                found.push($feature);
            })*
        };
    }
    check!("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl");
    found
}

#[cfg(target_arch = "aarch64")]
fn detected() -> Vec<&'static str> {
    if std::arch::is_aarch64_feature_detected!("neon") {
        vec!["neon"]
    } else {
        Vec::new()
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detected() -> Vec<&'static str> {
    Vec::new()
}

/// The `gemm` crate's own choice, as it makes it (built with its `x86-v4` feature, see
/// Cargo.toml): AVX-512 kernels when the CPU has AVX-512F, else FMA (256-bit), else scalar.
fn gemm_dispatch() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "avx512f (512-bit)"
        } else if std::arch::is_x86_feature_detected!("fma") {
            "fma (256-bit)"
        } else {
            "scalar"
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_names_this_machine() {
        let info = CpuInfo::detect(2);
        assert!(!info.model.is_empty());
        assert!(info.logical_cpus >= 1);
        assert_eq!(info.threads, 2);
        if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") {
            let name = text
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string());
            if let Some(name) = name {
                assert!(info.model.starts_with(&name), "{info:?}");
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                info.detected.contains(&"avx512f"),
                std::arch::is_x86_feature_detected!("avx512f")
            );
            // AVX-512 machines get gemm's AVX-512 kernels, other FMA machines its FMA ones.
            let avx512 = std::arch::is_x86_feature_detected!("avx512f");
            assert_eq!(info.gemm == "avx512f (512-bit)", avx512);
            assert_eq!(
                info.gemm == "fma (256-bit)",
                !avx512 && std::arch::is_x86_feature_detected!("fma")
            );
        }
        assert!(info.summary().contains(&info.model));
    }
}

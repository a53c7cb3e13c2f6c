//! The instruction sets the multiversioned kernels outside the GEMM
//! (Winograd convolution, streamed dense layers) are compiled for, detected
//! once. Kernels take an `Isa` so that tests can run every path the CPU has.

/// The instruction set a kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Whatever the target's baseline is (SSE2 on x86-64).
    Portable,
    Avx2,
    Avx512,
}

impl Isa {
    /// The fastest this CPU supports.
    pub fn best() -> Isa {
        Isa::supported().last().copied().unwrap_or(Isa::Portable)
    }

    /// `self` if the CPU supports it, else the portable one.
    pub fn if_supported(self) -> Isa {
        if Isa::supported().contains(&self) {
            self
        } else {
            Isa::Portable
        }
    }

    /// Every one this CPU supports, slowest first. Detected once.
    pub fn supported() -> &'static [Isa] {
        static SUPPORTED: std::sync::OnceLock<Vec<Isa>> = std::sync::OnceLock::new();
        SUPPORTED.get_or_init(|| {
            let mut isas = vec![Isa::Portable];
            #[cfg(target_arch = "x86_64")]
            {
                let fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
                if fma {
                    isas.push(Isa::Avx2);
                }
                if fma && is_x86_feature_detected!("avx512f") {
                    isas.push(Isa::Avx512);
                }
            }
            isas
        })
    }
}

//! `NUQ_KERNEL` overrides the detected path. This file holds a single test so that setting
//! the variable cannot race with other tests (each integration-test file is its own
//! process).

use nuq_kernels::{KernelError, KernelPath};

#[test]
fn nuq_kernel_env_selects_or_rejects() {
    std::env::set_var("NUQ_KERNEL", "scalar");
    assert_eq!(KernelPath::detect().unwrap(), KernelPath::Scalar);
    std::env::set_var("NUQ_KERNEL", "Portable");
    assert_eq!(KernelPath::detect().unwrap(), KernelPath::Portable);
    std::env::set_var("NUQ_KERNEL", "avx512");
    if KernelPath::Avx512Vnni.is_available() {
        assert_eq!(KernelPath::detect().unwrap(), KernelPath::Avx512Vnni);
    } else {
        assert!(matches!(
            KernelPath::detect(),
            Err(KernelError::PathUnavailable { path: "avx512vnni" })
        ));
    }
    std::env::set_var("NUQ_KERNEL", "avx512vnni-novbmi");
    if KernelPath::Avx512VnniNoVbmi.is_available() {
        assert_eq!(KernelPath::detect().unwrap(), KernelPath::Avx512VnniNoVbmi);
    } else {
        assert!(matches!(
            KernelPath::detect(),
            Err(KernelError::PathUnavailable {
                path: "avx512vnni-novbmi"
            })
        ));
    }
    // AMX is chosen by name only (never by `best_available` yet).
    std::env::set_var("NUQ_KERNEL", "amx");
    if KernelPath::Amx.is_available() {
        assert_eq!(KernelPath::detect().unwrap(), KernelPath::Amx);
    } else {
        assert!(matches!(
            KernelPath::detect(),
            Err(KernelError::PathUnavailable { path: "amx" })
        ));
    }
    assert_ne!(KernelPath::best_available(), KernelPath::Amx);
    std::env::set_var("NUQ_KERNEL", " AvxVnni ");
    if KernelPath::AvxVnni.is_available() {
        assert_eq!(KernelPath::detect().unwrap(), KernelPath::AvxVnni);
    } else {
        assert!(matches!(
            KernelPath::detect(),
            Err(KernelError::PathUnavailable { path: "avxvnni" })
        ));
    }
    std::env::set_var("NUQ_KERNEL", "sse9");
    assert!(matches!(
        KernelPath::detect(),
        Err(KernelError::UnknownPath { .. })
    ));
    std::env::remove_var("NUQ_KERNEL");
    assert_eq!(KernelPath::detect().unwrap(), KernelPath::best_available());
}

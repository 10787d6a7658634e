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
    // Names (an alias, any case, spaces around) of the paths a CPU may lack: chosen where
    // available, refused by name elsewhere.
    for (name, path) in [
        ("avx512", KernelPath::Avx512Vnni),
        ("avx512vnni-novbmi", KernelPath::Avx512VnniNoVbmi),
        ("amx", KernelPath::Amx),
        (" AvxVnni ", KernelPath::AvxVnni),
    ] {
        std::env::set_var("NUQ_KERNEL", name);
        if path.is_available() {
            assert_eq!(KernelPath::detect().unwrap(), path, "{name}");
        } else {
            match KernelPath::detect() {
                Err(KernelError::PathUnavailable { path: p }) => assert_eq!(p, path.name()),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    // Unnamed, AMX is chosen only by its probe, and only where it was exact and faster.
    if KernelPath::best_available() == KernelPath::Amx {
        let probe = nuq_kernels::probe::PathProbe::amx().expect("AMX is available");
        let probe = probe.as_ref().expect("the probe ran");
        assert!(probe.exact && probe.chosen() == KernelPath::Amx, "{probe}");
    }
    std::env::set_var("NUQ_KERNEL", "sse9");
    assert!(matches!(
        KernelPath::detect(),
        Err(KernelError::UnknownPath { .. })
    ));
    std::env::remove_var("NUQ_KERNEL");
    assert_eq!(KernelPath::detect().unwrap(), KernelPath::best_available());
}

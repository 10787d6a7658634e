//! What the reports say about the machine they ran on: the CPU model name, its vendor,
//! family and model numbers, and the core count, so that every figure carries it (absolute
//! speeds are only comparable on one machine). A virtual machine may show only a generic
//! name (`AMD EPYC`); the family and model numbers still tell the microarchitecture apart
//! (AMD family 25 model 17 is a Zen 4 EPYC, family 26 a Zen 5; Intel family 6 model 143 a
//! Sapphire Rapids Xeon). The cache sizes are the ones the kernels' tiles are cut for
//! ([`nuq_kernels::CacheSizes`]).

/// The value of the first `/proc/cpuinfo` line whose key is `key`, if any.
fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
}

fn cpuinfo() -> String {
    std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
}

/// The CPU model name from `/proc/cpuinfo` (`model name`), or `unknown` where it cannot be
/// read.
pub fn model_name() -> String {
    model_name_in(&cpuinfo())
}

fn model_name_in(info: &str) -> String {
    cpuinfo_field(info, "model name").unwrap_or_else(|| "unknown".to_string())
}

/// `vendor=… family=… model_id=… stepping=…` from `/proc/cpuinfo` (`vendor_id`,
/// `cpu family`, `model`, `stepping`), each `unknown` where it cannot be read.
pub fn identity() -> String {
    identity_in(&cpuinfo())
}

fn identity_in(info: &str) -> String {
    let field = |key: &str| {
        cpuinfo_field(info, key)
            .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace))
            .unwrap_or_else(|| "unknown".to_string())
    };
    format!(
        "vendor={} family={} model_id={} stepping={}",
        field("vendor_id"),
        field("cpu family"),
        field("model"),
        field("stepping")
    )
}

/// `l1d=32K l2=1024K l3=32768K`: one core's caches as CPUID describes them, or
/// `caches=unknown`.
fn caches() -> String {
    match nuq_kernels::CacheSizes::from_cpu() {
        Some(c) => format!("l1d={}K l2={}K l3={}K", c.l1d >> 10, c.l2 >> 10, c.l3 >> 10),
        None => "caches=unknown".to_string(),
    }
}

/// One line for a report's head, naming the machine, its caches, the kernel path chosen,
/// the thread counts run and the kernels' tuning: `cpu model="AMD EPYC"
/// vendor=AuthenticAMD family=25 model_id=17 stepping=1 logical_cpus=2 l1d=32K l2=1024K
/// l3=32768K path=avx512vnni threads=2 tuning="l2=1024K cb4_int8_rows=off
/// tiles_per_thread=4 min_tile_macs=524288"`, and where the CPU has AMX-INT8 what its
/// probe found (`amx_probe="amx vs avx512vnni: exact, 1.85x"`, see
/// [`nuq_kernels::probe`]).
pub fn header(path: &str, threads: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let info = cpuinfo();
    let probe = match nuq_kernels::probe::PathProbe::amx() {
        Some(Ok(p)) => format!(" amx_probe=\"{p}\""),
        Some(Err(e)) => format!(" amx_probe=\"failed: {e}\""),
        None => String::new(),
    };
    format!(
        "cpu model=\"{}\" {} logical_cpus={cpus} {} path={path} threads={threads} tuning=\"{}\"{probe}",
        model_name_in(&info),
        identity_in(&info),
        caches(),
        nuq_kernels::Tuning::current()
    )
}

/// Installs the kernels' tuning named by `NUQ_TUNE` (a [`nuq_kernels::Tuning`] text, e.g.
/// `NUQ_TUNE="cb4_int8_rows=off l2=2M"`), if set: a report measures a tuning number on a
/// machine without rebuilding. Call before any kernel runs.
///
/// # Errors
/// The variable's text is not a tuning ([`nuq_kernels::KernelError::BadTuning`]).
pub fn install_tuning_from_env() -> Result<(), nuq_kernels::KernelError> {
    match std::env::var("NUQ_TUNE") {
        Ok(text) if !text.trim().is_empty() => text.parse::<nuq_kernels::Tuning>()?.install(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_exact_key() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
                    model\t\t: 17\nmodel name\t: AMD EPYC 9R14\nstepping\t: 1\n";
        // `model` must not match `model name`, nor `model name` the `model` line.
        assert_eq!(cpuinfo_field(info, "model").as_deref(), Some("17"));
        assert_eq!(
            cpuinfo_field(info, "model name").as_deref(),
            Some("AMD EPYC 9R14")
        );
        assert_eq!(cpuinfo_field(info, "cpu family").as_deref(), Some("25"));
        assert_eq!(cpuinfo_field(info, "flags"), None);
    }

    #[test]
    fn header_names_path_and_threads() {
        let h = header("avx512vnni", "1,2");
        assert!(h.starts_with("cpu model=\""), "{h}");
        assert!(h.contains(" family=") && h.contains(" model_id="), "{h}");
        assert!(h.contains(" l2=") || h.contains(" caches=unknown"), "{h}");
        let tuning = format!(" tuning=\"{}\"", nuq_kernels::Tuning::current());
        assert!(
            h.contains(&format!(" path=avx512vnni threads=1,2{tuning}")),
            "{h}"
        );
        assert_eq!(
            h.contains(" amx_probe=\""),
            nuq_kernels::KernelPath::Amx.is_available(),
            "{h}"
        );
    }
}

//! What the reports say about the machine they ran on: the CPU model name and core count,
//! so that every figure carries it (absolute speeds are only comparable on one machine).

/// The CPU model name from `/proc/cpuinfo` (`model name`), or `unknown` where it cannot be
/// read.
pub fn model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// One line for a report's head, naming the machine, the kernel path chosen and the thread
/// counts run: `cpu model="AMD EPYC" logical_cpus=2 path=avx512vnni threads=2`.
pub fn header(path: &str, threads: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "cpu model=\"{}\" logical_cpus={cpus} path={path} threads={threads}",
        model_name()
    )
}

//! Single-thread GEMM efficiency on the convolution shapes, measured in thread CPU time
//! (robust to other processes sharing the cores). Profiling aid for chunk sizing.
//!
//! `gemm_shapes par` instead compares, on 2 threads, the two ways of parallelising a forward
//! conv GEMM of 2048 rows: rayon over two row halves each running a single-threaded `gemm`
//! (what `Conv2d` does) versus one `gemm` call with its own 2-thread parallelism, in process
//! CPU time and wall time.

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn run(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ars: isize,
    acs: isize,
    b: &[f32],
    brs: isize,
    bcs: isize,
    c: &mut [f32],
    acc: bool,
) {
    // SAFETY: callers size a (m×k), b (k×n) and c (m×n, row-major) for the strides given.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.as_ptr(),
            acs,
            ars,
            b.as_ptr(),
            bcs,
            brs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn process_cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn compare_parallelism() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool");
    let rows = 2048;
    for &(cin, cout) in &[(64usize, 64usize), (128, 128), (256, 256), (512, 512)] {
        let k = 9 * cin;
        let a = vec![0.5f32; rows * k];
        let b = vec![0.25f32; k * cout];
        let mut c = vec![0.0f32; rows * cout];
        let reps = (1e11 / (2.0 * (rows * k * cout) as f64)).ceil() as usize;
        let flops = 2.0 * (rows * k * cout) as f64 * reps as f64;
        // Touch every buffer once so that neither variant pays the first page faults.
        run(
            rows,
            cout,
            k,
            &a,
            k as isize,
            1,
            &b,
            cout as isize,
            1,
            &mut c,
            false,
        );
        pool.install(|| {
            let (cpu, t) = (process_cpu_s(), std::time::Instant::now());
            for _ in 0..reps {
                let (top, bottom) = c.split_at_mut(rows / 2 * cout);
                let half = rows / 2 * k;
                rayon::join(
                    || run(rows / 2, cout, k, &a[..half], k as isize, 1, &b, cout as isize, 1, top, false),
                    || run(rows / 2, cout, k, &a[half..], k as isize, 1, &b, cout as isize, 1, bottom, false),
                );
            }
            let (cg, wg) = (process_cpu_s() - cpu, t.elapsed().as_secs_f64());
            let (cpu, t) = (process_cpu_s(), std::time::Instant::now());
            for _ in 0..reps {
                // SAFETY: a is rows×k, b is k×cout, c is rows×cout, all row-major.
                unsafe {
                    gemm::gemm(rows, cout, k, c.as_mut_ptr(), 1, cout as isize, false, a.as_ptr(), 1, k as isize, b.as_ptr(), 1, cout as isize, 1.0, 1.0, false, false, false, gemm::Parallelism::Rayon(2));
                }
            }
            let (ci, wi) = (process_cpu_s() - cpu, t.elapsed().as_secs_f64());
            println!(
                "{cin:>3}->{cout:<3} rows {rows}: row halves {:6.1} GFLOP/cpu-s ({:6.1} wall) | gemm Rayon(2) {:6.1} GFLOP/cpu-s ({:6.1} wall)",
                flops / cg / 1e9, flops / wg / 1e9, flops / ci / 1e9, flops / wi / 1e9
            );
        });
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("par") {
        compare_parallelism();
        return;
    }
    let shapes = [
        (32usize, 64usize, 64usize),
        (16, 128, 128),
        (8, 256, 256),
        (4, 512, 512),
    ];
    for &(hw, cin, cout) in &shapes {
        let k = 9 * cin;
        for &rows in &[128usize, 256, 512, 1024, 2048] {
            let a = vec![0.5f32; rows * k];
            let b = vec![0.25f32; k * cout];
            let dy = vec![0.1f32; rows * cout];
            let mut c = vec![0.0f32; rows * cout];
            let mut dw = vec![0.0f32; k * cout];
            let mut dcol = vec![0.0f32; rows * k];
            let reps = (2e9 / (2.0 * (rows * k * cout) as f64)).ceil() as usize;
            let flops = 2.0 * (rows * k * cout) as f64 * reps as f64;
            let t = cpu_ns();
            for _ in 0..reps {
                run(
                    rows,
                    cout,
                    k,
                    &a,
                    k as isize,
                    1,
                    &b,
                    cout as isize,
                    1,
                    &mut c,
                    false,
                );
            }
            let f = flops / (cpu_ns() - t) as f64;
            let t = cpu_ns();
            for _ in 0..reps {
                run(
                    k,
                    cout,
                    rows,
                    &a,
                    1,
                    k as isize,
                    &dy,
                    cout as isize,
                    1,
                    &mut dw,
                    true,
                );
            }
            let w = flops / (cpu_ns() - t) as f64;
            let t = cpu_ns();
            for _ in 0..reps {
                run(
                    rows,
                    k,
                    cout,
                    &dy,
                    cout as isize,
                    1,
                    &b,
                    1,
                    cout as isize,
                    &mut dcol,
                    false,
                );
            }
            let d = flops / (cpu_ns() - t) as f64;
            println!("{hw:>2}x{hw:<2} {cin:>3}->{cout:<3} rows {rows:>4}: fwd {f:5.1}  dW {w:5.1}  dcol {d:5.1} GFLOP/cpu-s");
        }
    }
}

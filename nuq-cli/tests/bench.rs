//! `nuq bench`: images/s of a `.nuq` model per batch size and kernel path.

mod common;

use common::{
    fails, json, nuq, ok, os, quick_bench, stderr, tiny_nuq, usage_error, write_fashion_like,
};

#[test]
fn bench_reports_each_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, 10);
    let model = tiny_nuq(dir.path());
    let o = nuq(os([
        &"bench",
        &model,
        &"--batch",
        &"1,3",
        &"--seconds",
        &"0.05",
        &"--threads",
        &"1",
        &"--json",
    ]));
    // stdout is exactly the JSON document; the text lines go to stderr.
    let v = json(&o);
    let text = stderr(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("bench model=") && lines[0].contains("batch=1 threads=1"),
        "{text}"
    );
    assert!(lines[1].contains("batch=3"), "{text}");
    // `auto` reports the AMX probe where the CPU has AMX, and only there.
    let amx = nuq_kernels::KernelPath::Amx.is_available();
    assert_eq!(v.get("amx_probe").is_some(), amx, "{v}");
    assert_eq!(
        lines[0].contains(" amx_probe=\"amx vs avx512vnni: "),
        amx,
        "{text}"
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["img_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["passes"].as_u64().unwrap() >= 3, "{r}");
    }
    // Every kernel path can be chosen by name; scalar is always available.
    let text = ok(&nuq(quick_bench(&model, &["--kernel", "scalar"])));
    assert!(text.contains("kernel=scalar"), "{text}");
    usage_error(&nuq(os([&"bench", &model, &"--kernel", &"gpu"])));
    usage_error(&nuq(os([&"bench", &model, &"--batch", &"0"])));
    let err = fails(&nuq(os([&"bench", &model, &"--seconds", &"0"])));
    assert!(err.contains("--seconds"), "{err}");
    // A tuning moves work, never results; it is named on every line and in the JSON, and a
    // bad entry is a usage error naming it.
    let o = nuq(quick_bench(
        &model,
        &["--tune", "tiles_per_thread=8, cb4_int8_rows=off", "--json"],
    ));
    let v = json(&o);
    let tuning = v["tuning"].as_str().unwrap();
    assert!(
        tuning.contains("tiles_per_thread=8") && tuning.contains("cb4_int8_rows=off"),
        "{tuning}"
    );
    assert!(stderr(&o).contains("tiles_per_thread=8"), "{}", stderr(&o));
    let err = usage_error(&nuq(quick_bench(&model, &["--tune", "l2=64K"])));
    assert!(err.contains("l2=64K") && err.contains("256K"), "{err}");
    let err = fails(&nuq(os([&"bench", &dir.path().join("nope.nuq")])));
    assert!(err.contains("nope.nuq: no such file"), "{err}");
}

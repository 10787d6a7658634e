//! Builds the freestanding C loader and a small shim for the `fmt_c_loader` differential target.
//! The C code is compiled with UBSan in trap mode (no runtime needed), so undefined behaviour in
//! the loader aborts the fuzzer instead of passing silently.

fn main() {
    println!("cargo:rerun-if-changed=../nuq-fpga-fmt/c/nuq_fmt.c");
    println!("cargo:rerun-if-changed=../nuq-fpga-fmt/c/nuq_fmt.h");
    println!("cargo:rerun-if-changed=c_shim/shim.c");
    cc::Build::new()
        .file("../nuq-fpga-fmt/c/nuq_fmt.c")
        .file("c_shim/shim.c")
        .include("../nuq-fpga-fmt/c")
        .std("c99")
        .opt_level(1)
        .flag("-fsanitize=undefined")
        .flag("-fsanitize-undefined-trap-on-error")
        .flag("-fno-sanitize-recover=all")
        .warnings_into_errors(true)
        .compile("nuq_fmt_c");
}

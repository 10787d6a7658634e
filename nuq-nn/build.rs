//! Compiles the ONNX schema subset (`proto/onnx_subset.proto`) to Rust with prost; protox
//! parses the schema in pure Rust, so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const SCHEMA: &str = "proto/onnx_subset.proto";
    println!("cargo:rerun-if-changed={SCHEMA}");
    let descriptors = protox::compile([SCHEMA], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}

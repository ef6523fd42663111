//! Compiles AVA's gRPC extension contract (`proto/`, research/extensions.md §2) into Rust with
//! a pure-Rust protobuf compiler, so building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["extension.proto"], ["proto"])?;
    tonic_prost_build::configure().build_server(false).build_transport(false).compile_fds(fds)?;
    Ok(())
}

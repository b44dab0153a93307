//! Compiles the kernel programs (agent-observer-ebpf) on the nightly toolchain and leaves the
//! object in OUT_DIR, where `probes` embeds it.
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root_dir = manifest_dir.join("../agent-observer-ebpf").canonicalize()?;
    let root_dir = root_dir.to_str().ok_or_else(|| anyhow::anyhow!("non-UTF-8 path"))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "agent-observer-ebpf", root_dir, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}

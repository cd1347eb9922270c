"""The Java bridge (``java_bridge/``): where its jar is, and building it when the source is newer.

An installed wheel carries the jar compiled (``pt_dense/java/pt-dense-bridge.jar``, built by setup.py when the wheel
was built), so nothing is compiled at run time; a checkout builds ``java_bridge/build/pt-dense-bridge.jar`` from
source on first use and again whenever the source is newer (Debian's ``ecj``, which the Makefile installs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pt_dense.errors import DeploymentError

JAR_NAME = "pt-dense-bridge.jar"
#: the jar a wheel ships inside the package
PACKAGED_JAR = Path(__file__).resolve().parents[1] / "java" / JAR_NAME
#: the bridge's source and build script beside the package, in a checkout
BRIDGE_DIR = Path(__file__).resolve().parents[2] / "java_bridge"
JAR = BRIDGE_DIR / "build" / JAR_NAME


def bridge_jar(*, build: bool = True, required: bool = True) -> Path | None:
    """The bridge jar: ``$PT_DENSE_BRIDGE_JAR``, else the one packaged in an installed wheel, else (in a checkout)
    ``java_bridge/build/``, built first if missing or stale.

    With ``required=False`` a bridge that cannot be built (no source, no ecj) gives None instead of an error, so the
    JVM still starts for BM25.
    """
    override = os.environ.get("PT_DENSE_BRIDGE_JAR")
    if override:
        return Path(override)
    if PACKAGED_JAR.is_file():
        return PACKAGED_JAR
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
        raise DeploymentError("the Java bridge jar is missing: in a checkout run java_bridge/build.sh (needs "
                              "`apt-get install ecj`); an installed wheel carries it in pt_dense/java/, so "
                              "reinstall pt-dense from a wheel built with its build hook (setup.py)")
    return None

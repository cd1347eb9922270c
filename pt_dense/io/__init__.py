"""The ground floor every other floor may use: atomic writes, the cache folder, content hashes, input validation,
and the one place that starts Java (with the Java bridge on its classpath)."""

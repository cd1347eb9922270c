"""The on-disk layout of a DenseIndex folder: file names, format name and version, PyTerrier artifact identity.

Shared by the index (reading), the indexer (writing) and the refresh (rewriting), so none of them imports another.
"""

FORMAT = "pt_dense.dense_index"
FORMAT_VERSION = 1
META_FILE, VECTORS_FILE, DOCNOS_FILE, BASE_FILE = "meta.json", "vectors.f32", "docnos.txt", "base.f32"
ARTIFACT_FILE = "pt_meta.json"
ARTIFACT = {"type": "dense_index", "format": "pt_dense", "package_hint": "pt-dense"}

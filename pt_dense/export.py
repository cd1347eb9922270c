"""Export targets: ``onnx`` (an encoder), ``pyserini_faiss`` and ``lucene`` (a DenseIndex).

    ptd.export.onnx(enc, "out/model")                 # model.onnx + tokenizer + config.json + parity.json
    ptd.export.onnx(enc, "out/model-int8", quantize="int8")
    ptd.export.pyserini_faiss(index, "out/faiss")     # Pyserini FaissSearcher layout
    ptd.export.lucene(index, "out/lucene-hnsw")       # Anserini HNSW index (queries encoded by java_bridge)
"""

from pt_dense.deploy.lucene import lucene, pyserini_faiss
from pt_dense.deploy.onnx_export import export_onnx as onnx

__all__ = ["lucene", "onnx", "pyserini_faiss"]

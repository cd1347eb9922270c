"""pt_dense's exceptions: one base class, so a caller can catch everything we raise on purpose."""


class PtDenseError(Exception):
    """Base class of every error pt_dense raises on purpose."""


class InputError(PtDenseError, ValueError):
    """Bad input from the user: a missing column, an empty query, a NaN text, a wrong vector dimension..."""


class UnknownModelError(PtDenseError, LookupError):
    """A model name that is neither a packaged short name, a local folder nor a reachable hub id."""


class IndexExistsError(PtDenseError, FileExistsError):
    """An index is already at the destination and ``overwrite=True`` was not given."""


class IndexFormatError(PtDenseError):
    """A folder that is not a pt_dense index, or one written by an incompatible format version."""


class EncoderMismatchError(PtDenseError):
    """Vectors from an encoder other than the one that built (or refreshed) the index."""


class DeploymentError(PtDenseError, RuntimeError):
    """Java, Pyserini, Lucene or ONNX could not be set up."""


class MissingColumnsError(InputError, KeyError):
    """A stage's input frame lacks columns it needs."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ModelFolderError(UnknownModelError):
    """A model or encoder folder that does not say what model it holds (e.g. a config.json without model_type)."""


class PromptsUnsupportedError(InputError):
    """Deep prompts asked of a model family that cannot take per-layer key/value prefixes."""


class BaseModelMismatchError(PtDenseError):
    """A saved adapter's base model, found by name, is not the one it was trained on (its content hash differs)."""


class IndexReadOnlyError(PtDenseError, PermissionError):
    """A change asked of an index (or an output folder) this user may not write."""

"""The table of negative sources by name, which ``fit(negatives=...)`` and ``pt-dense train --negatives`` read.

An entry is a factory ``factory(corpus, encoder, n, depth, **settings) -> NegativeSource`` (see
:data:`pt_dense.registry.NegativeSourceFactory`). The built-in ones live in :mod:`pt_dense.training.sources` and are
named here by reference, so that reading the table (the CLI's help) imports neither torch nor PyTerrier; another
package adds a source with an entry point in the ``pt_dense.negative_sources`` group.
"""

from __future__ import annotations

from collections.abc import Callable

from pt_dense.registry import GROUPS, Registry

#: negative-source factories by name
NEGATIVE_SOURCES: Registry = Registry("negative source", GROUPS["negative source"])
for _name, _factory in [("in-batch", "in_batch"), ("bm25", "bm25"), ("unified", "unified"), ("hybrid", "hybrid"),
                        ("cache:stale", "cache_stale"), ("cache:corrected", "cache_corrected"),
                        ("cache:reencode", "cache_reencode")]:
    NEGATIVE_SOURCES.register(_name, f"pt_dense.training.sources:{_factory}")


def register_negative_source(name: str, factory: Callable) -> None:
    """Make ``fit(negatives=name)`` (and ``pt-dense train --negatives name``) use ``factory``.

    Args:
        name: The name ``negatives=`` takes.
        factory: ``factory(corpus, encoder, n, depth, **settings) -> NegativeSource``: the training corpus, the
            encoder as training starts, negatives per query, pool depth, and the source's own settings (fit's
            ``negative_settings``).

    Raises:
        InputError: ``name`` is registered already.
    """
    NEGATIVE_SOURCES.register(name, factory)

"""Past one machine on Ray (the extra ``pip install 'pt-dense[ray]'``): a corpus encoded by a pool of actors
(:func:`encode_on_ray`, ``pt-dense index --ray``) and an index searched in shards held by actors
(:class:`ShardedRetriever`).

Names load on first use (a Ray Data read task imports :mod:`.reading` alone, without torch), and Ray itself is
imported only when one of them runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pt_dense.io.lazy import lazy_exports

_EXPORTS = {
    "RayMissingError": ".cluster", "ShardLostError": ".cluster", "WorkerError": ".cluster", "connect": ".cluster",
    "disconnect": ".cluster", "require_ray": ".cluster",
    "DEFAULT_BLOCK_SIZE": ".encoding", "BlockPlan": ".encoding", "encode_on_ray": ".encoding",
    "ShardServer": ".search", "ShardedRetriever": ".search", "merge_top_k": ".search", "split_index": ".search",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["DEFAULT_BLOCK_SIZE", "BlockPlan", "RayMissingError", "ShardLostError", "ShardServer", "ShardedRetriever",
           "WorkerError", "connect", "disconnect", "encode_on_ray", "merge_top_k", "require_ray", "split_index"]

if TYPE_CHECKING:
    from pt_dense.distributed.cluster import (
        RayMissingError,
        ShardLostError,
        WorkerError,
        connect,
        disconnect,
        require_ray,
    )
    from pt_dense.distributed.encoding import DEFAULT_BLOCK_SIZE, BlockPlan, encode_on_ray
    from pt_dense.distributed.search import ShardedRetriever, ShardServer, merge_top_k, split_index

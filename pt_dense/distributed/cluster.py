"""Reaching Ray: the one place ``ray`` is imported (lazily, so ``import pt_dense`` never loads it), the errors of
this package, and joining or starting a cluster."""

from __future__ import annotations

import importlib
from types import ModuleType

from pt_dense.errors import PtDenseError
from pt_dense.io.signals import kept_fault_handlers

INSTALL_HINT = "install it with `pip install 'pt-dense[ray]'` (Ray 2.60 or newer with Ray Data)"
#: the addresses that mean "the cluster named by RAY_ADDRESS or one running on this machine, else a local one"
LOCAL = ("auto", "local", "")


class RayMissingError(PtDenseError, ImportError):
    """A Ray option was asked for but Ray (or Ray Data) is not installed."""


class ShardLostError(PtDenseError, RuntimeError):
    """A shard of a sharded search could not answer (its actor died and was not restarted in time, or it timed
    out): the search fails rather than return part of the results."""


class WorkerError(PtDenseError, RuntimeError):
    """Work on the cluster failed for a reason other than a user error (which is raised as itself)."""


def require_ray() -> ModuleType:
    """The ``ray`` module with Ray Data.

    Returns:
        The imported ``ray`` module.

    Raises:
        RayMissingError: Ray or Ray Data is not installed; the message says how to install them.
    """
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as err:
        raise RayMissingError(f"this needs Ray, which is not installed here ({err}): {INSTALL_HINT}") from err
    return ray


def connect(address: str | None = "auto", **init_args) -> ModuleType:
    """Join a Ray cluster (or start a local one), once per process.

    Args:
        address: ``"auto"`` (or None): the cluster in ``$RAY_ADDRESS`` or the one last started on this machine,
            else a new local one with this machine's CPUs and GPUs; otherwise a cluster address
            (``"10.0.0.1:6379"`` from a node of the cluster, ``"ray://head:10001"`` from outside it).
        **init_args: passed to ``ray.init`` (e.g. ``num_cpus=2``, ``_temp_dir=...``) when this call starts or joins.

    Returns:
        The ``ray`` module, initialised.

    Raises:
        RayMissingError: Ray is not installed.
        WorkerError: the address could not be reached.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    settings = {"include_dashboard": False, "log_to_driver": False, **init_args}
    try:
        with kept_fault_handlers():  # Ray's crash handlers would take SIGSEGV from a JVM already running here
            if address is None or address in LOCAL:
                ray.init(**settings)
            else:
                ray.init(address=address, **settings)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise WorkerError(f"could not reach the Ray cluster at {address!r}: {err}. Start it with `ray start --head` "
                          "on the head node (and `ray start --address=<head>:6379` on each worker), or give "
                          "--ray auto to run on this machine alone") from err
    return ray


def disconnect() -> None:
    """Leave the Ray cluster (stopping a local one this process started), keeping this process's fault handlers
    (``ray.shutdown`` resets them, which would leave a running JVM to die on its next ordinary fault)."""
    ray = require_ray()
    with kept_fault_handlers():
        ray.shutdown()


def user_error(err: BaseException) -> PtDenseError | None:
    """The pt_dense error a Ray failure wraps (a user error raised in a worker), if it wraps one."""
    seen: set[int] = set()
    queue: list[BaseException | None] = [err]
    while queue:
        current = queue.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, PtDenseError):  # Ray's RayTaskError subclasses the cause's class: unwrap it
            cause = getattr(current, "cause", None)
            return cause if isinstance(cause, PtDenseError) else current
        queue.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return None

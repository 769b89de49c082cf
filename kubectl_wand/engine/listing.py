"""`ps`: the process table of every box of a target, listed in parallel (no injection)."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional

from kubectl_wand.backends.base import Box
from kubectl_wand.engine.procs import Proc
from kubectl_wand.engine.session import Session
from kubectl_wand.errors import WandError
from kubectl_wand.options import Scope, TargetOptions


@dataclass
class ListOptions:
    target: Optional[str]  # None: the pods of the current namespace
    where: TargetOptions
    all_namespaces: bool = False  # ps -A


def targets(opts: ListOptions):
    """(backend, boxes) to list: every running pod and container the target names."""
    from kubectl_wand.backends import backend_for
    from kubectl_wand.backends.kubernetes import KubernetesBackend
    from kubectl_wand.targets import parse_target

    opts.where.all_namespaces = opts.all_namespaces
    opts.where.scope = Scope.LIST
    if opts.target is None:
        backend = KubernetesBackend(opts.where)
        return backend, backend.resolve(None)
    target = parse_target(opts.target)
    backend = backend_for(target, opts.where)
    return backend, backend.resolve(target)


@dataclass
class Listing:
    """One box's processes, or why they could not be listed."""

    box: Box
    procs: List[Proc]
    error: Optional[WandError] = None
    cut: int = 0  # processes the helper left out (the list is bounded)


def list_box(backend, box: Box, timeout: float = 60.0) -> Listing:
    try:
        s = Session(backend, box, timeout=timeout)
        procs = s.open("ps")
        return Listing(box, procs, None, s.meta.get("procs_cut") or 0)
    except WandError as e:
        return Listing(box, [], e)


def list_processes(backend, boxes: List[Box], parallel: int = 8) -> List[Listing]:
    """Every box's listing, in the boxes' order; per-pod work in parallel."""
    with ThreadPoolExecutor(max_workers=min(parallel, max(1, len(boxes)))) as pool:
        return list(pool.map(lambda b: list_box(backend, b), boxes))

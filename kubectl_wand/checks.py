"""`validate`'s vocabulary: one check (✓, ✗ with a remedy, or skipped) and the report."""

from dataclasses import asdict, dataclass, field
from typing import Any, List, Optional


@dataclass
class Check:
    section: str
    name: str
    ok: Optional[bool]  # None: skipped or unknown, never blocking
    detail: str
    remedy: Optional[str] = None
    pid: Optional[int] = None  # set on the checks of one process


@dataclass
class Report:
    target: str
    checks: List[Check]
    pid: Optional[int] = None  # the process attach would pick
    verdict: bool = False
    why: str = ""

    def to_json(self):
        return {"target": self.target, "attach_would_work": self.verdict, "why": self.why,
                "pid": self.pid, "checks": [asdict(c) for c in self.checks]}


@dataclass
class Preflight:
    """What a backend checks before any process is looked at (its tools, the cluster, RBAC,
    Pod Security…): the checks, the box attach would use, or why nothing more can be checked."""

    checks: List[Check] = field(default_factory=list)
    box: Any = None
    stop: Optional[str] = None  # set when the process checks cannot run
    listing: Any = None  # a future of the process listing, started by the backend early
    psa_ok: Optional[bool] = None  # Kubernetes: the namespace allows SYS_PTRACE
    after: List[Check] = field(default_factory=list)  # shown after the process checks

"""A worker's routing state: one immutable object per revision of the endpoint file (the
versions it loaded, the request schema, the split), which a request reads in one attribute
and which is rebuilt, off the request path, when the file changes."""

from __future__ import annotations

import random
import zlib
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from stack_bentoml.isolation import IsolatedVersion, load_isolated
from stack_bentoml.runtime import LoadedVersion, load_version
from stack_bentoml.schema import RequestSchema
from stack_bentoml.spec import EndpointSpec


class VersionLoadFailed(RuntimeError):
    """A version named in the endpoint file could not be loaded in this worker."""


@dataclass(frozen=True, slots=True)
class Routing:
    spec: EndpointSpec
    schema: RequestSchema
    versions: dict[str, LoadedVersion]
    refs: tuple[str, ...]
    cumulative: tuple[float, ...]
    by_weight: tuple[str, ...]  # every routed version, heaviest first (weight 0 included)
    champion: str  # the version in this process
    deadline_s: float  # how long a version in its own process may take to answer

    def fallback(self, failed: str) -> str | None:
        """Who answers when `failed` cannot: the champion (also when a canary takes all
        the traffic); for the champion, the heaviest other version (the previous version,
        kept at weight 0, after a promotion)."""
        if failed != self.champion:
            return self.champion
        return next((ref for ref in self.by_weight if ref != failed), None)

    def choose(self, subject: bytes | None) -> str:
        if len(self.refs) == 1:
            return self.refs[0]
        point = (zlib.crc32(subject) % 10_000) / 10_000 if subject else random.random()
        return self.refs[min(bisect_right(self.cumulative, point), len(self.refs) - 1)]


def build_routing(
    spec: EndpointSpec, loaded: dict[tuple[str, bool], LoadedVersion], pid_dir: Path
) -> Routing:
    """The champion (named by the spec, else the heaviest) in this process, every other
    version in its own (a promoted challenger is loaded in-process when it becomes the
    champion). `loaded` is the worker's: what the spec needs is added to it, what it no
    longer needs is dropped, each process of its own closed once the requests the replaced
    revision sent it are done (within the challenger deadline)."""
    champion = spec.in_worker()
    for ref, isolated in sorted(spec.loads() - loaded.keys()):  # staged ones too (spec.py)
        version_spec = spec.versions[ref]
        try:
            loaded[ref, isolated] = (
                load_isolated(version_spec, pid_dir)
                if isolated
                else load_version(version_spec, probe=True)
            )
        except Exception as exc:
            raise VersionLoadFailed(
                f"{ref} could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc
    versions = {ref: loaded[ref, ref != champion] for ref in [*spec.weights, *spec.shadows]}
    refs = tuple(ref for ref, weight in spec.weights.items() if weight > 0)
    total = sum(spec.weights[r] for r in refs)
    cumulative = tuple(c / total for c in accumulate(spec.weights[r] for r in refs))
    by_weight = tuple(sorted(spec.weights, key=lambda r: -spec.weights[r]))
    # what the champion was found to take (probe.py) narrows the schema every version shares
    schema = RequestSchema(spec.live_inputs(), spec.max_rows, versions[champion].bounds)
    deadline_s = spec.challenger_deadline_ms / 1000
    needed = spec.loads()  # only now: the old routing stays whole should a load above fail
    for key in [key for key in loaded if key not in needed]:
        dropped = loaded.pop(key)
        if isinstance(dropped, IsolatedVersion):
            dropped.close(grace_s=deadline_s + 1)
    return Routing(spec, schema, versions, refs, cumulative, by_weight, champion, deadline_s)

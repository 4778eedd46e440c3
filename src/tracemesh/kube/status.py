"""A `Jaeger` resource's status: phase (as Jaeger's operator reports it), version, the warnings
of the last reading, and conditions whose transition times move only when their status does."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import version

from tracemesh.kube.jaeger_resource import JaegerInstance, Json

RUNNING, FAILED = "Running", "Failed"
VERSION = version("tracemesh")


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _condition(
    previous: list[Json], kind: str, ok: bool, reason: str, message: str, generation: int
) -> Json:
    status = "True" if ok else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    since = before.get("lastTransitionTime") if before and before.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": since or _now(),
        "observedGeneration": generation,
    }


def available(workloads: list[Json]) -> tuple[bool, str]:
    """Whether every Deployment and DaemonSet has all its replicas ready, and which do not."""
    waiting = []
    for item in workloads:
        status = item.get("status") or {}
        if item.get("kind") == "DaemonSet":
            want, have = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
        else:
            want = (item.get("spec") or {}).get("replicas", 1)
            have = status.get("availableReplicas", 0)
        if have < want:
            waiting.append(f"{item['metadata']['name']} {have}/{want}")
    return not waiting, ("waiting for " + ", ".join(waiting)) if waiting else "all replicas ready"


def build(
    inst: JaegerInstance, previous: Json, *, error: str = "", workloads: list[Json] | None = None
) -> Json:
    """`error` is a reconcile failure (an API call refused); `inst.errors` are the spec's own."""
    given = previous.get("conditions")
    conditions: list[Json] = given if isinstance(given, list) else []
    problems = inst.errors or ([error] if error else [])
    reason = "InvalidSpec" if inst.errors else "ApplyFailed" if error else "Applied"
    message = "; ".join(problems) if problems else "every object is in place"
    out: list[Json] = [
        _condition(conditions, "Reconciled", not problems, reason, message, inst.generation)
    ]
    if workloads is not None and not problems:
        ok, why = available(workloads)
        out.append(
            _condition(
                conditions,
                "Available",
                ok,
                "ReplicasReady" if ok else "ReplicasNotReady",
                why,
                inst.generation,
            )
        )
    return {
        "phase": FAILED if inst.errors else RUNNING if not error else previous.get("phase", FAILED),
        "version": VERSION,
        "observedGeneration": inst.generation,
        "warnings": inst.warnings,
        "conditions": out,
    }

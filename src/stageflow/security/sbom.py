"""The SBOM: CycloneDX 1.5 JSON of stageflow's runtime dependencies (from ``importlib.metadata``, no
subprocess) plus the packages the service ships; written to ``reports/sbom.cdx.json``, status ``info``."""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from stageflow.security.interface import GateContext, Package, ScannerError, ScanResult, Status
from stageflow.security.packages import runtime_closure, shipped_packages

SBOM_NAME = "sbom.cdx.json"


def cyclonedx(
    top: Package,
    packages: Sequence[Package],
    *,
    now: _dt.datetime | None = None,
    service: str | None = None,
    shipped: Sequence[Package] = (),
) -> dict:
    """A CycloneDX 1.5 JSON document: ``top`` as the described component, ``packages`` as libraries;
    with ``service``, the service as an application component whose libraries are ``shipped`` (what its
    requirements pin and its zip carries), each marked with the property ``stageflow:ships-with``."""
    now = now or _dt.datetime.now(_dt.UTC)
    service_components: list[dict] = []
    service_deps: list[dict] = []
    if service is not None:
        ref = f"stageflow:service:{service}"
        service_components.append({"type": "application", "bom-ref": ref, "name": service})
        known = {p.purl for p in packages}
        for p in shipped:
            if p.purl not in known:
                c = _component(p, "library")
                c["properties"] = [{"name": "stageflow:ships-with", "value": service}]
                service_components.append(c)
                known.add(p.purl)
        service_deps.append({"ref": ref, "dependsOn": sorted({p.purl for p in shipped})})
    purls = {p.name: p.purl for p in reversed(packages)}
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "tools": {"components": [{"type": "application", "name": "stageflow", "version": top.version}]},
            "component": _component(top, "application"),
        },
        "components": [_component(p, "library") for p in packages] + service_components,
        "dependencies": [
            {"ref": p.purl, "dependsOn": [purls[n] for n in p.requires if n in purls]}
            for p in (top, *packages)
        ]
        + service_deps,
    }


def _component(p: Package, kind: str) -> dict:
    c: dict[str, Any] = {
        "type": kind,
        "bom-ref": p.purl,
        "name": p.name,
        "version": p.version,
        "purl": p.purl,
    }
    if p.summary:
        c["description"] = p.summary
    if p.license:
        c["licenses"] = [{"license": {"name": p.license}}]
    return c


class Sbom:
    name = "sbom"

    def cache_key(self, ctx: GateContext) -> None:
        return None  # always rebuilt (0.2 s): it is a file, not a verdict

    def scan(self, ctx: GateContext) -> ScanResult:
        t0 = time.monotonic()
        top, packages = runtime_closure()
        shipped = shipped_packages(ctx.root, ctx.service_source, ctx.artifact)
        doc = cyclonedx(top, packages, service=ctx.service_source, shipped=shipped.packages)
        reports_dir = ctx.reports_dir or ctx.root / "reports"
        path = reports_dir / SBOM_NAME
        try:
            reports_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ScannerError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return ScanResult(
            "sbom",
            Status.INFO,
            f"CycloneDX 1.5, {len(packages)} runtime components of {top.name} {top.version} and "
            f"{len(shipped.packages)} shipped with the service → {ctx.shown(path)}",
            {"components": len(packages), "service_components": len(shipped.packages)},
            (),
            time.monotonic() - t0,
            detail="written",
        )

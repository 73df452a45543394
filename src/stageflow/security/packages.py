"""Which packages there are to audit: stageflow's own runtime closure (as installed) and what the
service ships (``<source>/requirements.txt`` pins and the packaged zip's ``*.dist-info``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stageflow.security.interface import Package, ScannerError


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(root_dist: str = "stageflow") -> tuple[Package, list[Package]]:
    """``root_dist`` and every package its runtime requirements pull in (no extras), as installed."""
    from importlib import metadata

    def dist_of(name: str):
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return None

    root = dist_of(root_dist)
    if root is None:
        raise ScannerError(f"{root_dist} is not installed in this environment")
    top = _package(root, dist_of)
    seen: dict[str, Package] = {}
    todo = list(top.requires)
    while todo:
        name = todo.pop()
        if name in seen or name == top.name:
            continue
        dist = dist_of(name)
        if dist is None:
            continue
        pkg = _package(dist, dist_of)
        seen[name] = pkg
        todo.extend(pkg.requires)
    return top, sorted(seen.values(), key=lambda p: p.name)


def _package(dist, dist_of) -> Package:
    from packaging.requirements import InvalidRequirement, Requirement

    reqs = []
    for raw in dist.requires or []:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if dist_of(req.name) is not None:
            reqs.append(norm(req.name))
    md = dist.metadata
    lic = md.get("License-Expression") or md.get("License")
    if not lic or len(lic) > 80 or "\n" in lic:
        classifiers = [
            c.split(" :: ")[-1] for c in md.get_all("Classifier") or [] if c.startswith("License ::")
        ]
        lic = classifiers[0] if classifiers else None
    return Package(norm(md["Name"]), dist.version, tuple(sorted(set(reqs))), lic, md.get("Summary"))


@dataclass(frozen=True)
class ShippedPackages:
    packages: tuple[Package, ...]  # exact versions: auditable
    unpinned: tuple[str, ...]  # requirement lines without an exact version: cannot be audited
    sources: tuple[str, ...]  # where they were found


def requirements_pins(text: str) -> tuple[list[Package], list[str]]:
    """Exact pins (``name==version``) of a requirements file, and the lines that are not pins (the one
    reader, :mod:`stageflow.packaging.requirements`: hash-locked files and continuations included)."""
    from stageflow.packaging.requirements import pins as read_pins

    found, other = read_pins(text)
    return [Package(norm(p.name), p.version, ()) for p in found], other


def zip_packages(data: bytes) -> list[Package]:
    """Distributions vendored into a Lambda zip: every ``*.dist-info/METADATA`` it carries."""
    import email.parser
    import io
    import zipfile

    found = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if re.fullmatch(r"(?:[^/]+/)*[^/]+\.dist-info/METADATA", name):
                md = email.parser.Parser().parsestr(
                    zf.read(name).decode("utf-8", "replace"), headersonly=True
                )
                if md.get("Name") and md.get("Version"):
                    found.append(Package(norm(md["Name"]), md["Version"], (), None, md.get("Summary")))
    return found


def shipped_packages(root: Path, source: str, artifact: bytes | None) -> ShippedPackages:
    """The service's third-party packages: ``<source>/requirements.txt`` pins and the zip's contents."""
    by_name: dict[tuple[str, str], Package] = {}
    unpinned: list[str] = []
    sources = []
    req = root / source / "requirements.txt"
    if req.is_file():
        pins, other = requirements_pins(req.read_text(encoding="utf-8"))
        by_name.update({(p.name, p.version): p for p in pins})
        unpinned += other
        sources.append(str(req.relative_to(root)) if req.is_relative_to(root) else str(req))
    if artifact is not None:
        by_name.update({(p.name, p.version): p for p in zip_packages(artifact)})
        sources.append("the Lambda zip")
    return ShippedPackages(
        tuple(sorted(by_name.values(), key=lambda p: p.name)), tuple(unpinned), tuple(sources)
    )

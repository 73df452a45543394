"""Benchmark: a cold multi-stage build vs a rebuild after a source-only change, and image sizes.

    .venv/bin/python bench/docker_build.py [--repeat N] [--out bench/results/docker_build.json]

Needs the engine of scripts/docker-engine.sh up (DOCKER_HOST or its engine.json). Works on a copy of
app/ and docker/ in a temporary directory, so the repository's own images and cache are not touched
except for sharing base layers. "cold" builds the runtime target (with the classic builder that also runs
base, builder and test) on a fresh copy of the base image (a LABEL with a new id), so no layer above the
base can come from the cache; "source change" appends a comment to app/service/handler.py and rebuilds
with the cache; "no change" rebuilds with nothing changed. (nocache=True is not used: its new layers make
the classic builder's later cache lookups wander between old and new parents.)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from stageflow.packaging import docker_build as db  # noqa: E402
from stageflow.packaging import docker_engine as de  # noqa: E402
from stageflow.packaging import images as im  # noqa: E402


def _fresh_base(client, base: str) -> str:
    """A new image id on top of ``base``: everything built from it starts cold."""
    tag = f"stageflow-bench-base:{uuid.uuid4().hex[:12]}"
    dockerfile = f"FROM {base}\nLABEL org.stageflow.bench={tag.rsplit(':', 1)[1]}\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, network_mode="none")
    return tag


def _build(client, project: Path, base: str, target: str, no_cache: bool) -> tuple[float, im.BuildResult]:
    git = im.GitInfo(sha="b" * 40, version="bench", created="2026-01-01T00:00:00Z")
    options = im.BuildOptions(
        root=project,
        service="stageflow-bench",
        targets=(target,),
        push=False,
        base_image=base,
        no_cache=no_cache,
    )
    t0 = time.perf_counter()
    result = db.build_images(client, options, de.RegistryTarget(None), git=git)
    return time.perf_counter() - t0, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "docker_build.json")
    args = ap.parse_args()

    engine = de.engine_info()
    client = de.docker_client(engine)
    base = de.default_base_image(client, engine) or "python:3.11-slim"
    cold, change, noop = [], [], []
    with tempfile.TemporaryDirectory(prefix="stageflow-bench-") as tmp:
        project = Path(tmp)
        for sub in ("app", "docker"):
            shutil.copytree(ROOT / sub, project / sub, ignore=shutil.ignore_patterns("__pycache__"))
        handler = project / "app" / "service" / "handler.py"
        bases: list[str] = []
        for i in range(args.repeat):
            bases.append(_fresh_base(client, base))
            t, _ = _build(client, project, bases[-1], "runtime", no_cache=False)
            cold.append(t)
            handler.write_text(handler.read_text() + f"\n# bench change {uuid.uuid4()}\n")
            t, runtime = _build(client, project, bases[-1], "runtime", no_cache=False)
            change.append(t)
            t, _ = _build(client, project, bases[-1], "runtime", no_cache=False)
            noop.append(t)
            print(f"run {i + 1}: cold {cold[-1]:.1f}s, source change {change[-1]:.1f}s, ", end="")
            print(f"no change {noop[-1]:.2f}s")
        _, builder = _build(client, project, bases[-1], "builder", no_cache=False)
        _, tested = _build(client, project, bases[-1], "test", no_cache=False)
    runtime_size = runtime.images[0].size
    builder_size = builder.images[0].size
    test_size = tested.images[0].size
    base_size = int(client.images.get(base).attrs["Size"])
    version = client.version()
    result = {
        "benchmark": "docker_build",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "engine": {"version": version.get("Version"), "api": version.get("ApiVersion")},
        "base_image": base,
        "repeat": args.repeat,
        "cold_build_s": round(statistics.median(cold), 2),
        "source_change_rebuild_s": round(statistics.median(change), 2),
        "no_change_rebuild_s": round(statistics.median(noop), 2),
        "cold_over_source_change": round(statistics.median(cold) / statistics.median(change), 1),
        "runtime_image_bytes": runtime_size,
        "builder_image_bytes": builder_size,
        "test_image_bytes": test_size,
        "base_image_bytes": base_size,
        "runtime_over_builder": round(runtime_size / builder_size, 3),
        "runtime_added_over_base_bytes": runtime_size - base_size,
        "builder_added_over_base_bytes": builder_size - base_size,
        "samples": {"cold_s": cold, "source_change_s": change, "no_change_s": noop},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    # Drop the bench's own images (and with them the layers built on the fresh bases).
    refs = [t for r in (runtime, builder, tested) for t in r.images[0].tags]
    for ref in (*refs, *bases):
        with contextlib.suppress(Exception):
            client.images.remove(ref, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

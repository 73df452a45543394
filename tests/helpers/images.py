"""Image checks for tests: a chart is a real PNG; a base image with another CPython for Docker builds."""

from __future__ import annotations

import io


def assert_chart(png: bytes, size: tuple[int, int], *, min_colours: int = 4) -> None:
    from PIL import Image

    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == size, f"{img.size} != {size}"
    colours = img.getcolors(maxcolors=1 << 20) or []
    assert len(colours) >= min_colours, f"only {len(colours)} colours: an empty image"
    # not one flat colour with specks: the most common colour (the background) leaves room for drawing
    top = max(n for n, _ in colours)
    assert top < 0.99 * size[0] * size[1], "almost all one colour"


# -- base images with another Python, for Docker builds of services on other runtimes ----------------
_SKIP_DIRS = {"test", "tests", "__pycache__", "idlelib", "tkinter", "turtledemo", "site-packages"}


def python_base_image(client, base: str, version: str) -> str | None:
    """``<base repo>:python<version>`` on the engine: ``base`` (stageflow-base:bookworm) plus this
    machine's pyenv CPython ``version`` (same Debian, so its shared libraries match), first on PATH and
    readable by the Dockerfile's non-root user. None when pyenv has no such version."""
    import os
    import tarfile
    from pathlib import Path

    tag = f"{base.rsplit(':', 1)[0]}:python{version}"
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    root = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))) / "versions"
    found = sorted(
        root.glob(f"{version}.*"), key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()]
    )
    if not found:
        return None
    src = found[-1]
    prefix = f"/opt/python{version}"
    dockerfile = (
        f"FROM {base}\nCOPY python {prefix}\n"
        # pyenv's interpreter finds libpython through its absolute build prefix: link it there too
        f"RUN mkdir -p {src.parent} && ln -s {prefix} {src} && chmod 755 /root\n"
        f"ENV PATH={prefix}/bin:$PATH PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

        def keep(ti: tarfile.TarInfo):
            parts = Path(ti.name).parts
            if any(p in _SKIP_DIRS for p in parts[1:]) and not ti.name.endswith("site-packages"):
                return None
            if parts[1:2] == ("include",) or "config-" in ti.name or ti.name.endswith(".a"):
                return None
            return ti

        tar.add(src, arcname="python", filter=keep)
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="host", rm=True, pull=False)
    return tag

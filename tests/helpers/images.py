"""Checks that an image is a real chart: a PNG of the expected size with more than a few colours."""

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

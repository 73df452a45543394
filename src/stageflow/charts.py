"""matplotlib, imported only when a chart is drawn (``stageflow --help`` never pays for it).

Headless everywhere: the Agg backend, no display, no font cache in the user's home when it is not
writable (matplotlib falls back to a temporary directory by itself).
"""

from __future__ import annotations

import base64
import io


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

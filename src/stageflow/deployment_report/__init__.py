"""One deployment as a report: timeline, every check's gates with numbers, and per-minute charts of
error rate and p95, stable vs canary, with the gate thresholds and the decision points drawn.

- :mod:`.data` — what a report shows, read through the ``DeploymentHistory`` port (``gather``);
- :mod:`.series` — pure: the points each chart draws;
- :mod:`.render` — the charts (matplotlib, imported only when drawn), the self-contained HTML file
  (images embedded as data URIs, so the file can be attached to an approval) and the text lines.

The per-minute numbers come from the verdict items (``minutes``, written by the driver at each check:
exactly what the judge read, kept as long as the history is). Verdicts recorded before that field
existed give one point per check (the window's figures) instead.
"""

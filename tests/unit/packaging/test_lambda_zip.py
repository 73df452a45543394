import io
import zipfile

import pytest

from stageflow.errors import ExitCode, UsageError
from stageflow.packaging.lambda_zip import package, placeholder, with_files


def make_src(tmp_path):
    src = tmp_path / "app"
    (src / "service").mkdir(parents=True)
    (src / "service" / "__init__.py").write_text("")
    (src / "service" / "handler.py").write_text("def handler(e, c=None):\n    return 1\n")
    (src / "tests").mkdir()
    (src / "tests" / "test_x.py").write_text("def test(): pass\n")
    (src / "service" / "__pycache__").mkdir()
    (src / "service" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    return src


def names(z):
    with zipfile.ZipFile(io.BytesIO(z.data)) as zf:
        return sorted(zf.namelist())


def test_same_source_same_bytes_and_digest(tmp_path):
    src = make_src(tmp_path)
    a, b = package(src), package(src)
    assert a.data == b.data and a.code_sha256 == b.code_sha256 and a.digest.startswith("sha256:")
    assert names(a) == ["service/__init__.py", "service/handler.py"]  # no tests, no caches


def test_a_source_change_changes_the_digest(tmp_path):
    src = make_src(tmp_path)
    before = package(src)
    (src / "service" / "handler.py").write_text("def handler(e, c=None):\n    return 2\n")
    assert package(src).code_sha256 != before.code_sha256


def test_with_files_adds_and_stays_reproducible(tmp_path):
    base = package(make_src(tmp_path))
    one, two = with_files(base, {"marker.txt": b"x"}), with_files(base, {"marker.txt": b"x"})
    assert one.data == two.data and "marker.txt" in names(one) and one.files == base.files + 1


def test_placeholder_has_the_handler_module():
    z = placeholder("service.handler.handler")
    assert names(z) == ["service/__init__.py", "service/handler.py"]
    with pytest.raises(UsageError):
        placeholder("nohandler")


def test_missing_or_empty_source_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as exc:
        package(tmp_path / "nope")
    assert exc.value.exit_code == ExitCode.USAGE
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no Python files"):
        package(tmp_path / "empty")

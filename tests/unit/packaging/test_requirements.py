"""The one requirements.txt reader: the lines lambda_zip installs and the pins service-deps audits."""

from __future__ import annotations

from stageflow.packaging.requirements import Pin, pins, read_requirement_lines, requirement_lines

TEXT = """\
# a comment
tinydep==1.0  # trailing comment
six===1.16.0
requests>=2
flask==2.*
-r other.txt
not a requirement ==
"""


def test_lines_drop_comments_and_blanks():
    assert requirement_lines(TEXT) == [
        "tinydep==1.0",
        "six===1.16.0",
        "requests>=2",
        "flask==2.*",
        "-r other.txt",
        "not a requirement ==",
    ]
    assert requirement_lines("# nothing third-party\n\n") == []


def test_pins_are_exact_versions_only():
    found, other = pins(TEXT)
    assert found == [Pin("tinydep", "1.0"), Pin("six", "1.16.0")]
    assert other == ["requests>=2", "flask==2.*", "-r other.txt", "not a requirement =="]


def test_a_missing_file_has_no_lines(tmp_path):
    assert read_requirement_lines(tmp_path / "requirements.txt") == []
    (tmp_path / "requirements.txt").write_text("six==1.16.0 # pinned\n")
    assert read_requirement_lines(tmp_path / "requirements.txt") == ["six==1.16.0"]

"""The leak scanner itself must find what it is looking for, or every zero-hit test is worthless."""

import base64
import json
import urllib.parse

from tests.helpers.leakscan import scan_for_values

VALUE = 'pw "wörd"/+?&=1'


def test_finds_every_form_in_files_and_texts_and_honours_exclude(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b64.log").write_text("x " + base64.b64encode(VALUE.encode()).decode())
    (tmp_path / "url.txt").write_text(urllib.parse.quote(VALUE, safe=""))
    (tmp_path / "doc.json").write_text(json.dumps({"v": VALUE}))
    (tmp_path / "asked.env").write_text(f"K={VALUE}\n")
    (tmp_path / "clean.txt").write_text("nothing here ***")
    hits = scan_for_values(
        [tmp_path], {"stdout": f"raw {VALUE}", "stderr": b"clean"}, [VALUE], exclude=[tmp_path / "asked.env"]
    )
    where = {h.where.split("/")[-1]: h.form for h in hits}
    assert where.keys() == {"stdout", "b64.log", "url.txt", "doc.json"}
    assert where["stdout"] == "raw" and where["b64.log"].startswith("base64")
    assert all(VALUE not in str(h) for h in hits)


def test_no_hits_when_masked(tmp_path):
    (tmp_path / "out.log").write_text("password: ***\n")
    assert scan_for_values([tmp_path], {"stdout": "***"}, [VALUE]) == []


def test_looks_inside_zip_members_like_terraform_plans(tmp_path):
    import zipfile

    plan = tmp_path / "dev.tfplan"
    with zipfile.ZipFile(plan, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("tfplan", b"\x00variables\x00" + VALUE.encode() * 3)
    assert VALUE.encode() not in plan.read_bytes()  # invisible in the compressed file
    hits = scan_for_values([tmp_path], {}, [VALUE])
    assert [h.where.split("/")[-1] for h in hits] == ["dev.tfplan!tfplan"]

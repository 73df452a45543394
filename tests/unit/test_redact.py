"""Redaction by value: encodings, overlapping values, short values, JSON-escaped and embedded forms."""

import base64
import io
import json
import urllib.parse

import pytest

from stageflow.redact import MASK, MIN_LEN, Redactor, Secret, encodings
from stageflow.report import Reporter


def _r(*values):
    r = Redactor()
    for v in values:
        r.add(v)
    return r


def test_secret_never_prints_its_value():
    s = Secret("hunter22-value")
    assert str(s) == MASK and f"{s}" == MASK and f"{s:>20}" == MASK
    assert "hunter22" not in repr(s) and "hunter22" not in repr([s]) and "hunter22" not in str({"k": s})
    assert json.dumps({"k": s}, default=str) == '{"k": "***"}'
    assert s.reveal() == "hunter22-value"
    assert s == Secret("hunter22-value") and s != "hunter22-value"


@pytest.mark.parametrize(
    "form",
    [
        lambda v: v,
        lambda v: base64.b64encode(v.encode()).decode(),
        lambda v: base64.b64encode(v.encode()).decode().rstrip("="),
        lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
        lambda v: urllib.parse.quote(v, safe=""),
        lambda v: urllib.parse.quote(v),
        lambda v: urllib.parse.quote_plus(v),
        lambda v: json.dumps(v)[1:-1],
        lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    ],
)
def test_each_form_is_masked(form):
    value = 'p@ss "wörd"/+?&=\\ x~'
    leaked = f"before {form(value)} after"
    assert _r(value).redact(leaked) == f"before {MASK} after"


def test_value_inside_json_output_is_masked():
    value = 'quote" back\\slash ünïcode\nnewline'
    r = _r(value)
    for text in (json.dumps({"v": value}), json.dumps({"v": value}, ensure_ascii=False)):
        out = r.redact(text)
        assert out in ('{"v": "***"}',), out


def test_overlapping_values_leave_nothing_of_either():
    a, b = "abcdef12", "ef12ghij"
    r = _r(a, b)
    assert r.redact("xx abcdef12ghij yy") == f"xx {MASK} yy"
    assert r.redact("ef12ghij-abcdef12") == f"{MASK}-{MASK}"
    # one value inside another
    r2 = _r("password-long-value", "long")
    assert r2.redact("A password-long-value B long C") == f"A {MASK} B {MASK} C"


def test_a_mask_never_completes_another_value():
    # masking sequentially could create new text; spans are computed on the original text
    r = _r("aaaa1111", "*aaa")
    assert r.redact("*aaaa1111") == MASK


def test_short_values_are_not_added():
    r = _r("abc", "", "xy")
    assert not r
    assert r.redact("abc xy") == "abc xy"
    assert all(len(f) >= MIN_LEN for f in encodings("abcd"))


def test_base64_of_value_embedded_in_longer_text_is_masked():
    secret = "s3cr3t-Passw0rd-42"
    r = _r(secret)
    for prefix in ("", "u:", "us:", "use:", "user:", "longer-user:"):
        for suffix in ("", "!", "!!", "!!!"):
            encoded = base64.b64encode((prefix + secret + suffix).encode()).decode()
            out = r.redact(f"Authorization: Basic {encoded}")
            assert MASK in out, (prefix, suffix)
            left = out.split("Basic ", 1)[1].replace(MASK, "")
            # only the few characters that mix in the neighbouring bytes remain
            assert len(left) <= len(base64.b64encode(prefix.encode())) + 4 + 4, (prefix, suffix, out)


def test_each_line_of_a_multiline_value_is_masked():
    body = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"
    pem = f"-----BEGIN KEY-----\n{body}\n-----END KEY-----"
    r = _r(pem)
    assert r.redact(pem) == MASK
    assert r.redact(f"line: {body}") == f"line: {MASK}"


def test_secret_objects_are_accepted():
    r = Redactor()
    r.add(Secret("value-from-secret"))
    assert r.redact("x value-from-secret") == f"x {MASK}"


def test_reporter_masks_child_lines_and_results():
    err, out = io.StringIO(), io.StringIO()
    r = _r("tok_abcdef123456")
    rep = Reporter(err=err, out=out, redactor=r)
    rep.child("child says tok_abcdef123456 and " + base64.b64encode(b"tok_abcdef123456").decode())
    rep.info("phase", "subject", "tok_abcdef123456")
    rep.result("tok_abcdef123456", {})
    json_rep = Reporter(err=err, out=out, redactor=_r('tok"quoted\\value'), json_mode=True)
    json_rep.result(None, {"v": 'tok"quoted\\value'})
    assert "tok_abcdef123456" not in err.getvalue() + out.getvalue()
    assert "quoted" not in out.getvalue()
    assert err.getvalue().count(MASK) == 3

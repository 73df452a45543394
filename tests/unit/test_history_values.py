from decimal import Decimal

import pytest

from stageflow.history import _dynamo, _plain


def test_tiny_p_values_and_floats_are_storable():
    out = _dynamo({"p": 1.6e-174, "x": 0.1 + 0.2, "n": [1, 2.5], "ok": True, "none": None, "t": (1,)})
    assert out == {
        "p": Decimal(0),
        "x": Decimal("0.3"),
        "n": [1, Decimal("2.5")],
        "ok": True,
        "none": None,
        "t": [1],
    }
    assert _plain(out) == {"p": 0, "x": 0.3, "n": [1, 2.5], "ok": True, "none": None, "t": [1]}


def test_nan_refused():
    with pytest.raises(ValueError):
        _dynamo(float("nan"))

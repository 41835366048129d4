"""Every value a service may log is written as JSON that parses back, with what changed noted."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from logshipper import encoding, events


class Color(enum.Enum):
    RED = "red"


def line_for(features: dict, **kwargs) -> dict:
    event, notes = events.prediction_event(
        events.Service("svc"),
        time_ns=1_700_000_000_000_000_000,
        prediction_id="id-1",
        model="m",
        version="v1",
        features=features,
        prediction=kwargs.pop("prediction", 1),
        **kwargs,
    )
    raw = events.encode(event, notes)
    assert raw.endswith(b"\n"), "one event, one line"
    assert raw.count(b"\n") == 1, "one event, one line"
    return json.loads(raw.decode("utf-8"))  # strict stdlib parser: no NaN, valid UTF-8


def test_non_finite_values_become_null_and_are_listed() -> None:
    doc = line_for({"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.5, "e": np.float32("nan")}, score=math.nan)
    assert doc["ml"]["features"] == {"a": None, "b": None, "c": None, "d": 1.5, "e": None}
    assert doc["ml"]["prediction"]["score"] is None
    assert sorted(doc["ml"]["non_finite"]) == sorted(
        ["ml.features.a", "ml.features.b", "ml.features.c", "ml.features.e", "ml.prediction.score"]
    )


def test_numpy_and_pandas_values() -> None:
    doc = line_for(
        {
            "i": np.int64(3),
            "f": np.float64(0.25),
            "b": np.bool_(True),
            "arr": np.array([1.0, np.inf, 2.0]),
            "ts": pd.Timestamp("2026-01-02 03:04:05", tz="Europe/Berlin"),
            "na": pd.NA,
            "nat": pd.NaT,
            "series": pd.Series([1, 2]),
            "dt64": np.datetime64("2026-01-01T00:00:00"),
        },
        prediction=np.int64(1),
    )
    f = doc["ml"]["features"]
    assert f["i"] == 3
    assert f["f"] == 0.25
    assert f["b"] is True
    assert f["arr"] == [1.0, None, 2.0]
    assert "ml.features.arr[1]" in doc["ml"]["non_finite"]
    assert f["ts"] == "2026-01-02T02:04:05.000000Z"
    assert f["na"] is None
    assert f["nat"] is None
    assert f["series"] == [1, 2]
    assert f["dt64"] == "2026-01-01T00:00:00.000000Z"
    assert doc["ml"]["prediction"]["label"] == 1


def test_standard_library_types() -> None:
    u = uuid.uuid4()
    doc = line_for(
        {
            "naive": dt.datetime(2026, 1, 1, 12),
            "aware": dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "day": dt.date(2026, 1, 1),
            "dur": dt.timedelta(minutes=1),
            "dec": decimal.Decimal("1.25"),
            "dec_int": decimal.Decimal("7"),
            "dec_nan": decimal.Decimal("NaN"),
            "uuid": u,
            "set": {3, 1, 2},
            "mixed_set": {1, "a"},
            "enum": Color.RED,
            "path": Path("/tmp/x"),
            "tuple": (1, 2),
            "big": 10**40,
        }
    )
    f = doc["ml"]["features"]
    assert f["naive"] == "2026-01-01T12:00:00.000000Z"
    assert f["aware"] == "2026-01-01T10:00:00.000000Z"
    assert f["day"] == "2026-01-01"
    assert f["dur"] == 60.0
    assert f["dec"] == 1.25
    assert f["dec_int"] == 7
    assert f["dec_nan"] is None
    assert f["uuid"] == str(u)
    assert f["set"] == [1, 2, 3]
    assert sorted(map(str, f["mixed_set"])) == ["1", "a"]
    assert f["enum"] == "red"
    assert f["path"] == "/tmp/x"
    assert f["tuple"] == [1, 2]
    assert f["big"] == str(10**40)
    assert any(e.startswith("ml.features.big") for e in doc["ml"]["encoding_errors"])


def test_bytes_huge_strings_and_bad_unicode_are_written_and_noted() -> None:
    doc = line_for({"ok": b"caf\xc3\xa9", "bad": b"\xff\xfeA", "huge": "x" * 100_000, "surrogate": "a\udcffb"})
    f = doc["ml"]["features"]
    assert f["ok"] == "café"
    assert f["bad"] == "\\xff\\xfeA"
    assert len(f["huge"]) == encoding.MAX_STRING
    assert f["surrogate"] == "a\\udcffb"
    errors = " ".join(doc["ml"]["encoding_errors"])
    assert "ml.features.bad" in errors
    assert "ml.features.huge" in errors
    assert "surrogate" in errors


def test_unknown_and_broken_objects_never_raise() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    nested: dict = {}
    node = nested
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    doc = line_for({"o": Opaque(), "b": Broken(), "deep": nested, 3: "int key"}, prediction=Opaque())
    f = doc["ml"]["features"]
    assert f["o"] == "opaque!"
    assert f["b"] == "<unprintable Broken>"
    assert f["3"] == "int key"
    assert doc["ml"]["prediction"]["label"] == "opaque!"
    assert any("nested too deep" in e for e in doc["ml"]["encoding_errors"])


def test_features_that_are_not_a_mapping_are_kept_and_noted() -> None:
    doc = line_for([1, 2, 3])  # type: ignore[arg-type]
    assert doc["ml"]["features"] == {"value": [1, 2, 3]}
    assert "expected a mapping" in doc["ml"]["encoding_errors"][0]


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=True)
    | st.datetimes(timezones=st.none() | st.timezones()),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), values, max_size=6), values, values)
def test_any_value_gives_one_parseable_line(features: dict, prediction: object, score: object) -> None:
    doc = line_for(features, prediction=prediction, score=score)
    assert doc["ml"]["prediction_id"] == "id-1"
    assert set(doc["ml"]["features"]) == {str(k) for k in features}

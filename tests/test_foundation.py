"""The shared contracts: windows, durations, findings and configuration models."""

from datetime import datetime, timedelta, timezone

import pytest

from analyzers.config.models import Config
from analyzers.findings import DriftMetrics, Finding, Signal
from analyzers.timeutil import Window, format_duration, parse_duration, parse_time
from logshipper import schema


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (30, timedelta(seconds=30)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


def test_bad_duration_names_the_value():
    with pytest.raises(ValueError, match="'7 days'"):
        parse_duration("7 days")


def test_time_without_offset_is_utc():
    assert parse_time("2026-11-22T10:00:00") == datetime(2026, 11, 22, 10, tzinfo=timezone.utc)
    assert parse_time("2026-11-22T11:00:00+01:00") == datetime(2026, 11, 22, 10, tzinfo=timezone.utc)


def test_window_days_and_shift():
    w = Window(parse_time("2026-11-21T12:00:00Z"), parse_time("2026-11-23T00:00:00Z"))
    assert [d.day for d in w.days()] == [21, 22]
    assert w.shift(-timedelta(days=7)).start.day == 14
    with pytest.raises(ValueError):
        Window(w.end, w.start)


def test_finding_json_shape_and_round_trip():
    w = Window.ending("2026-11-22T00:00:00Z", "1d")
    f = Finding(
        "fraud",
        "drift",
        w,
        "alert",
        DriftMetrics(n_cur=10, share_drifted=float("nan")),
        signals=[Signal("feature:amount", "amount drifted", value=0.3, threshold=0.1)],
    )
    d = f.to_dict()
    assert d["window"] == {"start": "2026-11-21T00:00:00Z", "end": "2026-11-22T00:00:00Z"}
    assert d["share_drifted"] is None
    back = Finding.from_dict(d)
    assert back.id == f.id
    assert back.signals[0].subject == "feature:amount"
    assert isinstance(back.metrics, DriftMetrics)
    assert back.metrics.features == []
    assert back.to_dict() == d


def test_config_shape_from_design():
    cfg = Config.model_validate(
        {
            "store": {"local": {"path": "./logs"}},
            "models": {
                "fraud": {
                    "drift": {"reference": {"last": "7d", "ending": "7d"}, "window": "1d", "schedule": {"every": "1h"}},
                    "fairness": {"window": "7d", "groups": ["region"], "positive_label": 1, "min_group_size": 100},
                    "performance": {"window": "7d"},
                    "ops": {"window": "1h"},
                }
            },
        }
    )
    assert set(cfg.models["fraud"].jobs()) == {"drift", "fairness", "performance", "ops"}


def test_schema_column_paths():
    assert schema.column_path("features.amount") == "ml.features.amount"
    assert schema.column_path("score") == "ml.prediction.score"
    with pytest.raises(KeyError, match="unknown column"):
        schema.column_path("nope")

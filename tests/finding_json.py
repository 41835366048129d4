"""A finding's JSON, checked to read back into the same typed payload and to write the same JSON again."""

from __future__ import annotations

from typing import Any

import orjson

from analyzers.findings import Finding


def as_json(finding: Finding) -> dict[str, Any]:
    """``finding.to_dict()``, asserting that stored and read back it gives exactly the same JSON."""
    data = finding.to_dict()
    stored = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    back = Finding.from_dict(orjson.loads(stored))
    assert orjson.dumps(back.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) == stored
    assert type(back.metrics) is type(finding.metrics)
    return data

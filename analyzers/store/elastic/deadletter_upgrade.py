"""Dead-letter indices made before dead letters named their model, brought up to date by ``predwatch setup``.

The template gives each new dead-letter index (one a day, at rollover) the model pipeline and the
``ml.model.name`` field.  The indices that already exist (today's write index and the days before it) get the
same setting and field here, and their stored dead letters without a model are re-read through the pipeline by
an update by query, run as a task: each stays where it is, with what it held, and gains the model its text
names, if any.  Safe to run again: the setting and the field are upserts, and a dead letter whose text names no
model is re-read and left as it is.
"""

from __future__ import annotations

from typing import Any

from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.pipelines import DEAD_LETTER_PIPELINE
from analyzers.store.elastic.templates import KEYWORD_IGNORE_ABOVE
from logshipper.schema import DEAD_LETTER_INDEX, MODEL_NAME

DEAD_LETTER_INDICES = f"{DEAD_LETTER_INDEX}-*"
_WITHOUT_MODEL = {"bool": {"must_not": [{"exists": {"field": MODEL_NAME}}]}}


def _model_field() -> dict[str, dict[str, Any]]:
    """``ml.model.name`` as a mapping's nested ``properties``."""
    *parents, leaf = MODEL_NAME.split(".")
    node: dict[str, dict[str, Any]] = {leaf: {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}
    for part in reversed(parents):
        node = {part: {"properties": node}}
    return node


def upgrade(conn: Connection) -> str:
    """Give every existing dead-letter index the model pipeline and field, and start re-reading the stored dead
    letters without a model; what was done, in words."""
    conn.call(
        f"setting the model pipeline of {DEAD_LETTER_INDICES}",
        lambda es: es.indices.put_settings(
            index=DEAD_LETTER_INDICES, settings={"index.default_pipeline": DEAD_LETTER_PIPELINE}
        ),
    )
    conn.call(
        f"adding {MODEL_NAME} to {DEAD_LETTER_INDICES}",
        lambda es: es.indices.put_mapping(index=DEAD_LETTER_INDICES, properties=_model_field()),
    )
    answer = conn.call(
        f"counting the dead letters without a model in {DEAD_LETTER_INDICES}",
        lambda es: es.search(index=DEAD_LETTER_INDICES, query=_WITHOUT_MODEL, size=0, track_total_hits=True),
    )
    waiting = int(((answer.get("hits") or {}).get("total") or {}).get("value") or 0)
    if not waiting:
        return "pipeline and field set; every stored dead letter names its model"
    task = conn.call(
        f"re-reading the dead letters of {DEAD_LETTER_INDICES} for their model",
        lambda es: es.update_by_query(
            index=DEAD_LETTER_INDICES,
            query=_WITHOUT_MODEL,
            pipeline=DEAD_LETTER_PIPELINE,
            conflicts="proceed",
            wait_for_completion=False,
        ),
    )
    return f"pipeline and field set; {waiting} stored dead letters without a model re-read in task {task.get('task')}"

"""The ingest pipeline of the dead-letter indices: a dead letter names the model its text seems to be about.

A dead letter holds its line only as text (``message``: the raw line Filebeat could not decode, or the JSON of
the event the cluster refused), so no search can tell whose it is.  This pipeline, the dead-letter indices'
``index.default_pipeline``, reads ``ml.model.name`` out of that text with the pattern the local store uses
for a line it sets aside (``"model": {"name": "..."``, see :mod:`analyzers.store.jsonparse`).  A line with no
readable model is stored as it came (the processor's failure is ignored), without a model: such a dead letter
cannot be attributed, and every model's quality counts it.
"""

from __future__ import annotations

from typing import Any

from logshipper.schema import MESSAGE, MODEL_NAME

DEAD_LETTER_PIPELINE = "ml-deadletter"
# Oniguruma (grok's regular expressions): the local store's model pattern, a name of 1 to 256 characters
# without a quote or a backslash, found anywhere in the text.
MODEL_PATTERN = r'"model"\s*:\s*\{\s*"name"\s*:\s*"%{PREDWATCH_MODEL_NAME:' + MODEL_NAME + '}"'
MODEL_NAME_PATTERN = r'[^"\\]{1,256}'


def dead_letter_pipeline() -> dict[str, Any]:
    """The body of ``PUT _ingest/pipeline/ml-deadletter``: one ``grok`` on the text, its failure ignored."""
    return {
        "description": "predwatch dead letters: the model the text of each seems to be about",
        "processors": [
            {
                "grok": {
                    "tag": "model-from-text",
                    "field": MESSAGE,
                    "patterns": [MODEL_PATTERN],
                    "pattern_definitions": {"PREDWATCH_MODEL_NAME": MODEL_NAME_PATTERN},
                    "ignore_missing": True,
                    "ignore_failure": True,
                }
            }
        ],
        "_meta": {"managed_by": "predwatch"},
    }


def pipelines() -> dict[str, dict[str, Any]]:
    """Ingest pipeline id -> body, installed before the index templates that name them."""
    return {DEAD_LETTER_PIPELINE: dead_letter_pipeline()}

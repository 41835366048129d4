"""The Elasticsearch adapter: the ``Store`` interface over ``ml-predictions-<model>-YYYY.MM.DD`` indices.

Aggregates are Elasticsearch aggregations over the window's daily indices (never a pull of every
document); every count is the sum of the weight ``1 / ml.sample_rate`` computed by a script.
Rows stream through a point in time with ``search_after``.

Labels live on ``ml.feedback`` documents, possibly in later days' indices.  Aggregates that need
them (a ``label`` column, a ``has_label`` filter) first read the model's feedback since the window's
first day, from all its daily indices (prediction id -> latest label) and hand it to Elasticsearch as the parameters
of a runtime field ``ml.label`` on the prediction documents: that costs one pass over the feedback
and a request body of O(labelled predictions).  Rows look their labels up chunk by chunk instead.
Percentiles are Elasticsearch's TDigest estimates, so quantiles are approximate.

Modules: ``connection`` (client, errors), ``indices`` (index names), ``mapping`` (field caps),
``queries`` (filter, weight, label runtime field), ``hits`` (point-in-time paging), ``labels``
(feedback), ``aggregates``, ``rows``, ``findings``, ``alert_state``, ``templates``, and ``store``
wiring them.  Page sizes and cache lifetimes are in ``limits`` (set them there, not here).
"""

from analyzers.store.elastic.alert_state import state_id
from analyzers.store.elastic.connection import RETRY_ON_STATUS, safe_host
from analyzers.store.elastic.limits import (
    COMPOSITE_PAGE,
    FIELD_CAPS_TTL,
    LABELS_TTL,
    MAX_LISTED_DAYS,
    PAGE,
    PIT_KEEP_ALIVE,
)
from analyzers.store.elastic.queries import weight_agg
from analyzers.store.elastic.rows import ROW_COLUMNS
from analyzers.store.elastic.store import ElasticsearchStore

__all__ = [
    "COMPOSITE_PAGE",
    "FIELD_CAPS_TTL",
    "LABELS_TTL",
    "MAX_LISTED_DAYS",
    "PAGE",
    "PIT_KEEP_ALIVE",
    "RETRY_ON_STATUS",
    "ROW_COLUMNS",
    "ElasticsearchStore",
    "safe_host",
    "state_id",
    "weight_agg",
]

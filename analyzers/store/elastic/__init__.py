"""The Elasticsearch adapter: the ``Store`` interface over a model's daily indices.

Predictions live in ``ml-predictions-<model>-YYYY.MM.DD``, feedback in ``ml-feedback-<model>-YYYY.MM.DD``
(the day it arrived; ``_id`` = the prediction id it labels), rejected lines behind the ``ml-deadletter``
alias.  Aggregates are Elasticsearch aggregations inside sample-rate strata (no scripts); a window's column
profile is one search; anything involving the label is computed over the window's labelled predictions,
read once per job (the label join: cost grows with labelled predictions, request bodies stay under 1 MB).
Every request has a time budget (``request_timeout``, retries included, and the job's timeout).

Modules: ``connection`` (client, budgets, retries), ``indices`` (patterns), ``queries`` (filters, strata),
``mapping`` (field caps), ``keys`` (aggregation keys as values), ``profile`` (one-search column profile),
``aggregates``, ``rowset`` (aggregates over rows read back), ``labels`` (the join), ``hits`` (point-in-time
paging that survives a deleted index), ``rows``, ``findings``, ``alert_state``, ``deadletters``,
``templates`` (index templates and policies from the schema), ``install`` (what ``predwatch setup`` puts),
and ``store`` wiring them.  Page sizes and cache lifetimes are in ``limits``.
"""

from analyzers.store.elastic.alert_state import state_id
from analyzers.store.elastic.connection import RETRY_ON_STATUS, deadline, safe_host
from analyzers.store.elastic.deadletters import DeadLetters
from analyzers.store.elastic.store import ElasticsearchStore

__all__ = ["RETRY_ON_STATUS", "DeadLetters", "ElasticsearchStore", "deadline", "safe_host", "state_id"]

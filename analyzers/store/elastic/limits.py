"""Page sizes, keep-alives and cache lifetimes of the Elasticsearch store.

The other modules read them as ``limits.NAME`` at call time, so a test can shrink a page here.
"""

MAX_LISTED_DAYS = 45  # beyond this many daily indices, name them by wildcard (the time filter still applies)
PAGE = 10_000  # hits per page: Elasticsearch's default max_result_window
COMPOSITE_PAGE = 1_000
PIT_KEEP_ALIVE = "2m"
FIELD_CAPS_TTL = 30.0  # seconds a window's mapping is reused
LABELS_TTL = 30.0  # seconds a window's feedback map is reused by the aggregates of one job run
MAX_BUCKETS = 65_536  # Elasticsearch's default search.max_buckets: the buckets one response may hold

"""Page sizes, batch sizes, keep-alives and cache lifetimes of the Elasticsearch store.

The other modules read them as ``limits.NAME`` at call time, so a test can shrink a page here.
"""

PAGE = 10_000  # hits per page of a scan: Elasticsearch's default max_result_window
SAMPLE_MAX = 50_000  # a sample up to this size is one search (the templates' index.max_result_window)
COMPOSITE_PAGE = 1_000  # buckets per page of a composite aggregation
PROFILE_TERMS = 1_000  # categories per column counted with the column profile (more: a composite of its own)
MAX_SAMPLE_RATES = 100  # distinct ml.sample_rate values a window may hold
LOOKUP_BATCH = 10_000  # prediction ids per label lookup: about 0.4 MB of request body
PIT_KEEP_ALIVE = "2m"
FIELD_CAPS_TTL = 30.0  # seconds a window's mapping is reused
CACHE_TTL = 600.0  # seconds a window's profile and label join serve the calls of one job
CACHE_ENTRIES = 8  # windows kept at once in each cache
MAX_BUCKETS = 65_536  # Elasticsearch's default search.max_buckets: the buckets one response may hold

"""The ``store:`` section of the configuration: one key per kind of store, exactly one of them given.

Each kind's settings live here and its adapter is opened by :mod:`analyzers.store.factory`, so a new
store changes nothing outside ``analyzers/store/``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from analyzers.config.base import Strict

# DuckDB's working memory in the local store: past it, sorts, joins and aggregates spill to disk instead
# of growing the process, so a window costs about this much memory whatever its size.
DEFAULT_MEMORY_LIMIT = "256MB"
_MEMORY_SIZE = r"(?i)^\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)\s*$"


class LocalStoreConfig(Strict):
    """The embedded default: the logger's daily files under ``path``, scanned in place."""

    path: str = "./logs"
    # DuckDB's working memory for scans ("256MB", "2GB", "25%"); beyond it, work spills to <state>/spill.
    memory_limit: str = Field(default=DEFAULT_MEMORY_LIMIT, pattern=_MEMORY_SIZE)
    # Beyond these a log line is set aside (and counted in quality) instead of parsed: Filebeat's max_bytes,
    # and caps on feature and group keys per line and per file, so that hostile lines cost a line, not a day.
    max_line_bytes: int = Field(default=10 * 2**20, ge=1024)
    max_keys_per_line: int = Field(default=1000, ge=1)
    max_keys_per_file: int = Field(default=1000, ge=1)

    def describe(self) -> str:
        return f"local files in {self.path}"


class ElasticsearchStoreConfig(Strict):
    """Daily Elasticsearch indices; secrets come from the environment through ``${VAR}``."""

    hosts: list[str]
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0
    max_retries: int = 5

    def describe(self) -> str:
        return "Elasticsearch"


StoreSettings = LocalStoreConfig | ElasticsearchStoreConfig


class StoreConfig(Strict):
    """Exactly one kind of store; local files when none is given."""

    local: LocalStoreConfig | None = None
    elasticsearch: ElasticsearchStoreConfig | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StoreConfig:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of {' or '.join(repr(n) for n in type(self).model_fields)}, not both")
        if not given:
            self.local = LocalStoreConfig()
        return self

    def chosen(self) -> tuple[str, StoreSettings]:
        """The kind of store configured (its key) and its settings."""
        name = next(n for n in type(self).model_fields if getattr(self, n) is not None)
        settings: StoreSettings = getattr(self, name)
        return name, settings

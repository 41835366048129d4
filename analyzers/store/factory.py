"""Open the store a configuration names: the one place that picks an adapter.

Each kind of store in ``store:`` (see :mod:`analyzers.store.settings`) has an opener here; the adapter's
module is imported only when it is opened, so a local installation never loads Elasticsearch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzers.store.base import Store

if TYPE_CHECKING:
    from analyzers.config.models import Config
    from analyzers.store.settings import ElasticsearchStoreConfig, LocalStoreConfig


def _resolve(path: str, base: Path | None) -> Path:
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() or base is None else base / candidate


def _open_local(config: Config, settings: LocalStoreConfig, base: Path | None) -> Store:
    from analyzers.store.jsonparse import Limits
    from analyzers.store.local import LocalStore, default_state_dir

    log_dir = _resolve(settings.path, base)
    state_dir = _resolve(config.state.path, base) if config.state.path else default_state_dir(log_dir)
    limits = Limits(settings.max_line_bytes, settings.max_keys_per_line, settings.max_keys_per_file)
    return LocalStore(log_dir, state_dir, memory_limit=settings.memory_limit, limits=limits)


def _open_elasticsearch(config: Config, settings: ElasticsearchStoreConfig, base: Path | None) -> Store:
    from analyzers.store.elastic import ElasticsearchStore

    return ElasticsearchStore.from_config(settings, config_dir=base)


OPENERS: dict[str, Callable[[Config, Any, Path | None], Store]] = {
    "local": _open_local,
    "elasticsearch": _open_elasticsearch,
}


def open_store(config: Config, config_dir: str | os.PathLike[str] | None = None) -> Store:
    """The configured store; relative paths are taken from the config file's directory."""
    kind, settings = config.store.chosen()
    return OPENERS[kind](config, settings, Path(config_dir) if config_dir is not None else None)

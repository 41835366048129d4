"""Open the store a configuration names: local files by default, Elasticsearch when configured."""

from __future__ import annotations

import os
from pathlib import Path

from analyzers.config.models import Config, LocalStoreConfig
from analyzers.store.base import Store
from analyzers.store.jsonparse import Limits
from analyzers.store.local import LocalStore, default_state_dir


def _resolve(path: str, base: Path | None) -> Path:
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() or base is None else base / candidate


def open_store(config: Config, config_dir: str | os.PathLike[str] | None = None) -> Store:
    """The configured store; relative paths are taken from the config file's directory."""
    base = Path(config_dir) if config_dir is not None else None
    if config.store.elasticsearch is not None:
        from analyzers.store.elastic import ElasticsearchStore

        return ElasticsearchStore.from_config(config.store.elasticsearch, config_dir=base)
    local = config.store.local or LocalStoreConfig()
    log_dir = _resolve(local.path, base)
    state_dir = _resolve(config.state.path, base) if config.state.path else default_state_dir(log_dir)
    limits = Limits(local.max_line_bytes, local.max_keys_per_line, local.max_keys_per_file)
    return LocalStore(log_dir, state_dir, memory_limit=local.memory_limit, limits=limits)

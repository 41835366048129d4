"""Installing the lifecycle policy and the composable index templates generated from the log schema."""

from __future__ import annotations

import functools

from analyzers.store.elastic.connection import Connection
from logshipper import index_template


def install(conn: Connection, delete_after_days: int = 30) -> None:
    """Put the lifecycle policy and the composable index templates generated from the schema."""
    policy = index_template.lifecycle_policy(delete_after_days)
    conn.call(
        f"putting lifecycle policy {index_template.LIFECYCLE_POLICY}",
        lambda: conn.es.ilm.put_lifecycle(name=index_template.LIFECYCLE_POLICY, policy=policy["policy"]),
    )
    for name, body in (
        (index_template.PREDICTIONS_TEMPLATE, index_template.index_template()),
        (index_template.MONITOR_TEMPLATE, index_template.monitor_index_template()),
    ):
        conn.call(
            f"putting index template {name}",
            functools.partial(conn.es.indices.put_index_template, name=name, body=body),
        )

"""Findings become alerts (rules, dedup, cooldown, resolve), kept in an outbox and delivered through a channel.

``rules`` (findings to alerts), ``state`` (what fires, cooldowns, resolves), ``outbox`` (nothing lost or sent
twice), ``message`` (what a message says), ``channels`` (Slack, the terminal: how it is shown and sent),
``errors`` (the one exception tree), ``dispatch`` (the path ``analyze`` and the scheduler call).
"""

"""Findings become alerts (rules, dedup, cooldown, resolve), kept in an outbox and delivered to Slack."""

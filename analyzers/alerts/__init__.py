"""Alerting: findings to alerts (rules, dedup, cooldown, resolve) and delivery (Slack)."""

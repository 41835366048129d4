"""Prometheus metrics: the catalogue of exported families, samples from stored documents, the collector and
the ``/metrics`` server that ``predwatch run --metrics-port`` starts."""

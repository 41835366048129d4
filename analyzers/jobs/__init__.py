"""Jobs: read a window through a ``PredictionReader``, call the statistics, return a finding.

The job table is ``registry.py``; each job is a module with ``run(store, model, config, window)``.
"""

"""Configuration: the models (``models.py``, ``jobs.py``) and the YAML loader with environment interpolation."""

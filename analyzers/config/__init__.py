"""Configuration: the models (``models.py``) and the YAML loader with environment interpolation."""

from analyzers.config.models import Config, ModelConfig

__all__ = ["Config", "ModelConfig"]

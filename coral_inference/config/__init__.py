"""Coral's configuration: the ``RuntimeDescriptor`` schema and the source-aware loader."""

from coral_inference.config.loader import ConfigError, LoadedConfig, load_config, parse_override
from coral_inference.config.schema import RuntimeDescriptor

__all__ = ["ConfigError", "LoadedConfig", "RuntimeDescriptor", "load_config", "parse_override"]

"""The run's config: schema (pydantic), YAML loading, --set overrides, and the one ConfigError.

Every value is checked here, before any rank starts work; errors name the dotted key and say
what is allowed.
"""
from ..errors import ConfigError
from .loading import apply_overrides, load, parse_override, validate
from .schema import Config, schema_for
from .yamlio import parse_yaml, read_yaml

__all__ = ["Config", "ConfigError", "apply_overrides", "load", "parse_override", "parse_yaml",
           "read_yaml", "schema_for", "validate"]

"""YAML loading, ``${ENV}`` resolution, line-accurate errors and JSON Schema export."""

from okrsync.config.fields import parse_duration
from okrsync.config.loader import (
    DEFAULT_SECRETS_DIR,
    SUPPORTED_VERSION,
    load_config,
    load_config_text,
)
from okrsync.config.models import (
    DEFAULT_SCHEDULE,
    Config,
    ConfigDocument,
    CycleDef,
    KeyResultDef,
    MetricDef,
    MirrorDef,
    ObjectiveDef,
)
from okrsync.config.references import ReferenceResolver, Resolution
from okrsync.config.reporting import did_you_mean
from okrsync.config.schema import config_json_schema, render_schema, write_schema
from okrsync.config.yaml_source import KeyPath, YamlDocument, format_path, read_yaml

__all__ = [
    "DEFAULT_SCHEDULE",
    "DEFAULT_SECRETS_DIR",
    "SUPPORTED_VERSION",
    "Config",
    "ConfigDocument",
    "CycleDef",
    "KeyPath",
    "KeyResultDef",
    "MetricDef",
    "MirrorDef",
    "ObjectiveDef",
    "ReferenceResolver",
    "Resolution",
    "YamlDocument",
    "config_json_schema",
    "did_you_mean",
    "format_path",
    "load_config",
    "load_config_text",
    "parse_duration",
    "read_yaml",
    "render_schema",
    "write_schema",
]

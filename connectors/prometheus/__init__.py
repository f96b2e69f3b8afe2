"""``prometheus``: one number from an instant PromQL query (reliability key results)."""

from connectors.prometheus.models import PrometheusConnection, PrometheusQuery
from connectors.prometheus.source import PrometheusSource
from okrsync.sdk.connector import Connector, ImportedFactory

connector = Connector(
    type="prometheus",
    summary="A number from an instant PromQL query: scalar or one-series vector",
    connection_model=PrometheusConnection,
    implementation=PrometheusSource,
    fake=ImportedFactory("connectors.prometheus.fake:prometheus_app"),
)

__all__ = ["PrometheusConnection", "PrometheusQuery", "PrometheusSource", "connector"]

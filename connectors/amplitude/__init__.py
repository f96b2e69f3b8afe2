"""``amplitude``: an event's totals or uniques over the cycle (Dashboard REST API)."""

from connectors.amplitude.source import AmplitudeConnection, AmplitudeQuery, AmplitudeSource
from okrsync.sdk.connector import Connector, ImportedFactory

connector = Connector(
    type="amplitude",
    summary="Amplitude: totals or uniques of an event over the cycle (event segmentation)",
    connection_model=AmplitudeConnection,
    implementation=AmplitudeSource,
    fake=ImportedFactory("connectors.amplitude.fake:amplitude_app"),
)

__all__ = ["AmplitudeConnection", "AmplitudeQuery", "AmplitudeSource", "connector"]

"""``mixpanel``: an event's count over the cycle from Mixpanel's Query API (segmentation)."""

from connectors.mixpanel.source import MixpanelConnection, MixpanelQuery, MixpanelSource
from okrsync.sdk.connector import Connector, ImportedFactory

connector = Connector(
    type="mixpanel",
    summary="Mixpanel: total or unique count of an event over the cycle (Query API, paced to 60/h)",
    connection_model=MixpanelConnection,
    implementation=MixpanelSource,
    fake=ImportedFactory("connectors.mixpanel.fake:mixpanel_app"),
)

__all__ = ["MixpanelConnection", "MixpanelQuery", "MixpanelSource", "connector"]

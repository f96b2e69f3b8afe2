"""``posthog``: a number from a HogQL query through PostHog's query API."""

from connectors.posthog.source import PostHogConnection, PostHogQuery, PostHogSource
from okrsync.sdk.connector import Connector, ImportedFactory

connector = Connector(
    type="posthog",
    summary="PostHog: one number from a HogQL query, cycle dates bound as placeholders",
    connection_model=PostHogConnection,
    implementation=PostHogSource,
    fake=ImportedFactory("connectors.posthog.fake:posthog_app"),
)

__all__ = ["PostHogConnection", "PostHogQuery", "PostHogSource", "connector"]

"""``posthog``: a number from a HogQL query through PostHog's query API."""

from connectors.posthog.fake import posthog_app
from connectors.posthog.source import PostHogConnection, PostHogQuery, PostHogSource
from okrsync.sdk.connector import Connector

connector = Connector(
    type="posthog",
    summary="PostHog: one number from a HogQL query, cycle dates bound as placeholders",
    connection_model=PostHogConnection,
    implementation=PostHogSource,
    fake=posthog_app,
)

__all__ = ["PostHogConnection", "PostHogQuery", "PostHogSource", "connector"]

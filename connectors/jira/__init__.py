"""``jira``: JQL counts, sums, averages, done ratios in; a field, a comment, a property out."""

from connectors.jira.connector import JiraConnector
from connectors.jira.models import JiraConnection, JiraMirror, JiraQuery
from connectors.jira.webhooks import verify_webhook
from okrsync.sdk.connector import Connector, ImportedFactory


def sandbox_credentials() -> dict[str, str]:
    """What the fake accepts (imported from it only when asked)."""
    from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL

    return {"email": DEFAULT_EMAIL, "api_token": DEFAULT_API_TOKEN}


connector = Connector(
    type="jira",
    summary="Jira Cloud / Data Center: JQL metrics; field, comment and property mirrors",
    connection_model=JiraConnection,
    implementation=JiraConnector,
    verify_webhook=verify_webhook,
    fake=ImportedFactory("connectors.jira.fake:jira_app"),
    sandbox_credentials=sandbox_credentials,
)

__all__ = ["JiraConnection", "JiraConnector", "JiraMirror", "JiraQuery", "connector"]

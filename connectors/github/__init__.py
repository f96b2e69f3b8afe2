"""``github``: issue/PR counts and milestone completion in, one edited issue comment out."""

from connectors.github.models import GitHubCommentMirror, GitHubConnection, GitHubQuery
from connectors.github.sink import GitHubSink
from connectors.github.source import GitHubSource
from connectors.github.webhooks import verify_webhook
from connectors.github.work import GitHubWorkTracker
from okrsync.sdk.connector import Connector, ImportedFactory


class GitHubConnector(GitHubSource, GitHubSink, GitHubWorkTracker):
    """One GitHub connection that is a source (search, milestones), a sink (comments) and a
    work tracker (issues and pull requests behind a key result, a label as backlink)."""


connector = Connector(
    type="github",
    summary="GitHub: issue/PR search counts, milestone completion; one issue comment per KR",
    connection_model=GitHubConnection,
    implementation=GitHubConnector,
    verify_webhook=verify_webhook,
    fake=ImportedFactory("connectors.github.fake:github_app"),
)

__all__ = [
    "GitHubCommentMirror",
    "GitHubConnection",
    "GitHubConnector",
    "GitHubQuery",
    "GitHubSink",
    "GitHubSource",
    "connector",
]

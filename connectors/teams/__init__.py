"""``teams``: post key result progress as Adaptive Cards to a Microsoft Teams channel webhook."""

from connectors.teams.models import TeamsConnection, TeamsMirror
from connectors.teams.sink import TeamsSink
from okrsync.sdk.connector import Connector, ImportedFactory


def sandbox_credentials() -> dict[str, str]:
    """What the fake accepts (imported from it only when asked)."""
    from connectors.teams.fake import SIGNATURE, WORKFLOW_ID

    return {"workflow": WORKFLOW_ID, "sig": SIGNATURE}


connector = Connector(
    type="teams",
    summary="Post a key result (or objective digest) as an Adaptive Card to a Teams webhook",
    connection_model=TeamsConnection,
    implementation=TeamsSink,
    fake=ImportedFactory("connectors.teams.fake:teams_app"),
    sandbox_credentials=sandbox_credentials,
)

__all__ = ["TeamsConnection", "TeamsMirror", "TeamsSink", "connector"]

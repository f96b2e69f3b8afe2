"""``teams``: post key result progress as Adaptive Cards to a Microsoft Teams channel webhook."""

from connectors.teams.fake import SIGNATURE, WORKFLOW_ID, teams_app
from connectors.teams.models import TeamsConnection, TeamsMirror
from connectors.teams.sink import TeamsSink
from okrsync.sdk.connector import Connector

connector = Connector(
    type="teams",
    summary="Post a key result (or objective digest) as an Adaptive Card to a Teams webhook",
    connection_model=TeamsConnection,
    implementation=TeamsSink,
    fake=teams_app,
    sandbox_credentials={"workflow": WORKFLOW_ID, "sig": SIGNATURE},
)

__all__ = ["TeamsConnection", "TeamsMirror", "TeamsSink", "connector"]

"""My Domain for the client credentials flow (config and fake), and the org's limits/describe."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import ValidationError
from simple_salesforce.api import Salesforce, SFType

from connectors.salesforce.fake import CLIENT_ID, CLIENT_SECRET, OrgData, salesforce_app
from connectors.salesforce.models import SalesforceConnection
from okrsync.sandbox import SandboxServer

TODAY = date(2026, 11, 15)
ROOT = Path(__file__).resolve().parents[3]
CLIENT_CREDENTIALS = {
    "flow": "client_credentials",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
}
CONFIG = """\
version: 1
connections:
  crm:
    type: salesforce
{login_url}    auth: {{flow: client_credentials, client_id: abc, client_secret: def}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  n: {{connection: crm, soql: "SELECT COUNT() FROM Opportunity"}}
objectives: []
"""


def validate(tmp_path: Path, login_url_line: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "okrsync.yaml"
    config.write_text(CONFIG.format(login_url=login_url_line))
    return subprocess.run(
        [sys.executable, "-m", "okrsync", "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("", ":3: connections.crm:"),
        ("    login_url: https://login.salesforce.com\n", ":5: connections.crm.login_url:"),
        ("    login_url: https://test.salesforce.com/\n", ":5: connections.crm.login_url:"),
    ],
)
def test_validate_refuses_client_credentials_without_my_domain(
    tmp_path: Path, line: str, where: str
) -> None:
    done = validate(tmp_path, line)
    assert done.returncode == 2, done.stdout
    assert f"{tmp_path / 'okrsync.yaml'}{where}" in done.stderr
    assert "My Domain" in done.stderr
    assert "https://acme.my.salesforce.com" in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_accepts_a_my_domain(tmp_path: Path) -> None:
    done = validate(tmp_path, "    login_url: https://acme.my.salesforce.com\n")
    assert done.returncode == 0, done.stderr


def test_the_jwt_bearer_flow_may_keep_the_shared_login_host() -> None:
    from connectors.salesforce.tests.test_salesforce import PRIVATE_KEY

    jwt_auth = {
        "flow": "jwt_bearer",
        "client_id": CLIENT_ID,
        "username": "u@example.com",
        "private_key": PRIVATE_KEY,
    }
    for login_url in ("https://login.salesforce.com", "https://test.salesforce.com"):
        config = SalesforceConnection.model_validate(
            {"type": "salesforce", "login_url": login_url, "auth": jwt_auth}
        )
        assert config.login_url == login_url
    # a sandbox fake on the loopback interface counts as the org's own domain
    local = SalesforceConnection.model_validate(
        {"type": "salesforce", "login_url": "http://127.0.0.1:8765", "auth": CLIENT_CREDENTIALS}
    )
    assert local.login_url == "http://127.0.0.1:8765"
    with pytest.raises(ValidationError, match="My Domain"):
        SalesforceConnection.model_validate(
            {
                "type": "salesforce",
                "login_url": "https://LOGIN.salesforce.com",
                "auth": CLIENT_CREDENTIALS,
            }
        )


@pytest.fixture
def served() -> Iterator[tuple[SandboxServer, OrgData]]:
    app = salesforce_app(today=TODAY)
    with SandboxServer(app, name="salesforce") as running:
        yield running, app.state.org


def token_request(server: SandboxServer, host: str | None) -> httpx.Response:
    headers = {"Host": host} if host else {}
    return httpx.post(
        f"{server.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        headers=headers,
    )


@pytest.mark.parametrize("host", ["login.salesforce.com", "test.salesforce.com"])
def test_the_fake_refuses_client_credentials_on_a_shared_login_host(
    served: tuple[SandboxServer, OrgData], host: str
) -> None:
    server, org = served
    refused = token_request(server, host)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "request not supported on this domain",
    }
    assert org.tokens_issued == 0


def test_the_fake_issues_a_token_on_its_my_domain(served: tuple[SandboxServer, OrgData]) -> None:
    server, org = served
    for host in (None, "acme.my.salesforce.com"):
        issued = token_request(server, host)
        assert issued.status_code == 200, issued.text
        assert issued.json()["access_token"] in org.tokens


@pytest.fixture
def https_fake(tmp_path: Path) -> Iterator[tuple[SandboxServer, str, OrgData]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    app = salesforce_app(today=TODAY, api_used=120)
    with SandboxServer(
        app, name="salesforce-tls", ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)
    ) as running:
        yield running, str(ca_file), app.state.org


def test_simple_salesforce_limits_and_describe(
    https_fake: tuple[SandboxServer, str, OrgData], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_file, org = https_fake
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    sf = Salesforce(instance_url=server.url, session_id=org.issue_token(), version="60.0")

    limits = sf.limits()
    daily = limits["DailyApiRequests"]
    assert daily["Max"] == org.api_limit
    assert daily["Remaining"] == org.api_limit - org.api_used  # this call counted, as all do
    assert all(set(v) >= {"Max", "Remaining"} for v in limits.values())

    opportunity = sf.Opportunity
    assert isinstance(opportunity, SFType)
    described = opportunity.describe()
    assert described["name"] == "Opportunity" and described["keyPrefix"] == "006"
    fields = {f["name"]: f for f in described["fields"]}
    assert {"Id", "Amount", "CloseDate", "StageName", "OwnerId"} <= set(fields)
    assert fields["Amount"]["type"] == "currency" and fields["Amount"]["soapType"] == "xsd:double"
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["OwnerId"]["relationshipName"] == "Owner"
    assert described["urls"]["describe"] == "/services/data/v60.0/sobjects/Opportunity/describe"

    everything = sf.describe()
    assert everything is not None
    assert [s["name"] for s in everything["sobjects"]] == ["Opportunity"]
    assert os.environ["REQUESTS_CA_BUNDLE"] == ca_file


def test_describe_of_an_unknown_sobject_is_not_found(
    served: tuple[SandboxServer, OrgData],
) -> None:
    server, org = served
    token = org.issue_token()
    answer = httpx.get(
        f"{server.url}/services/data/v60.0/sobjects/Widget__c/describe",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 404
    assert answer.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]

"""What the sandbox org says about itself: sObject describes and the org's limits.

Shapes as Salesforce's REST API reference documents them: ``GET /services/data/vXX.X/sobjects``
(global describe: ``encoding``, ``maxBatchSize``, ``sobjects``), ``GET
…/sobjects/{name}/describe`` (a DescribeSObjectResult: ``name``, ``label``, ``labelPlural``,
``keyPrefix``, ``fields`` with ``name``/``label``/``type``/``soapType``/``length``/``nillable``/
``referenceTo``…, ``urls``) and ``GET …/limits`` (each limit as ``{"Max": n, "Remaining": n}``,
``DailyApiRequests`` among them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "picklist": "xsd:string",
    "boolean": "xsd:boolean",
    "currency": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


@dataclass(frozen=True)
class FieldInfo:
    name: str
    label: str
    type: str
    length: int = 0
    nillable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    precision: int = 0
    scale: int = 0

    def describe(self) -> dict[str, Any]:
        system = self.name in ("Id", "CreatedDate", "IsWon", "IsClosed")
        return {
            "aggregatable": self.type not in ("boolean",),
            "autoNumber": False,
            "byteLength": self.length * 3,
            "calculated": False,
            "createable": not system,
            "custom": False,
            "defaultValue": None,
            "defaultedOnCreate": system or self.name == "OwnerId",
            "digits": 0,
            "externalId": False,
            "filterable": True,
            "groupable": self.type not in ("currency", "datetime"),
            "idLookup": self.name == "Id",
            "label": self.label,
            "length": self.length,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable,
            "picklistValues": [],
            "precision": self.precision,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "scale": self.scale,
            "soapType": SOAP_TYPES[self.type],
            "sortable": True,
            "type": self.type,
            "unique": False,
            "updateable": not system,
        }


@dataclass(frozen=True)
class SObjectInfo:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldInfo, ...]

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
        }

    def summary(self, version: str) -> dict[str, Any]:
        """The entry of the global describe's ``sobjects`` list."""
        return {
            "activateable": False,
            "createable": True,
            "custom": False,
            "customSetting": False,
            "deletable": True,
            "deprecatedAndHidden": False,
            "feedEnabled": True,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": False,
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": True,
            "updateable": True,
            "urls": self.urls(version),
        }

    def describe(self, version: str) -> dict[str, Any]:
        return {
            **self.summary(version),
            "actionOverrides": [],
            "childRelationships": [],
            "compactLayoutable": True,
            "fields": [f.describe() for f in self.fields],
            "namedLayoutInfos": [],
            "recordTypeInfos": [],
            "searchLayoutable": True,
            "supportedScopes": [{"label": "All opportunities", "name": "everything"}],
        }


OPPORTUNITY = SObjectInfo(
    name="Opportunity",
    label="Opportunity",
    label_plural="Opportunities",
    key_prefix="006",
    fields=(
        FieldInfo("Id", "Opportunity ID", "id", length=18, nillable=False),
        FieldInfo("Name", "Name", "string", length=120, nillable=False),
        FieldInfo("StageName", "Stage", "picklist", length=255, nillable=False),
        FieldInfo("IsWon", "Won", "boolean", nillable=False),
        FieldInfo("IsClosed", "Closed", "boolean", nillable=False),
        FieldInfo("Amount", "Amount", "currency", precision=18, scale=2),
        FieldInfo("CloseDate", "Close Date", "date", nillable=False),
        FieldInfo("CreatedDate", "Created Date", "datetime", nillable=False),
        FieldInfo(
            "OwnerId",
            "Owner ID",
            "reference",
            length=18,
            nillable=False,
            reference_to=("User",),
            relationship_name="Owner",
        ),
        FieldInfo(
            "AccountId",
            "Account ID",
            "reference",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        FieldInfo("Type", "Opportunity Type", "picklist", length=255),
    ),
)
SOBJECTS = {OPPORTUNITY.name: OPPORTUNITY}


def global_describe(version: str) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [s.summary(version) for s in SOBJECTS.values()],
    }


def org_limits(api_limit: int, api_used: int) -> dict[str, dict[str, int]]:
    """The limits resource; ``DailyApiRequests`` is the org's rolling 24 h API allocation."""

    def limit(maximum: int, used: int = 0) -> dict[str, int]:
        return {"Max": maximum, "Remaining": max(0, maximum - used)}

    return {
        "ConcurrentAsyncGetReportInstances": limit(200),
        "ConcurrentSyncReportRuns": limit(20),
        "DailyApiRequests": limit(api_limit, api_used),
        "DailyAsyncApexExecutions": limit(250_000),
        "DailyBulkApiBatches": limit(15_000),
        "DailyBulkV2QueryFileStorageMB": limit(976_562),
        "DailyBulkV2QueryJobs": limit(10_000),
        "DataStorageMB": limit(5, 1),
        "FileStorageMB": limit(20),
        "HourlyAsyncReportRuns": limit(1_200),
        "HourlySyncReportRuns": limit(500),
        "SingleEmail": limit(5_000),
    }

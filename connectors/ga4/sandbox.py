"""A made-up service account the GA4 fake trusts, for ``okrsync demo`` and examples.

The key pair is generated once per process (never stored): the fake registers its public half,
and the demo hands the private half to the connector, as a real key file would.
"""

from __future__ import annotations

import json
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

SANDBOX_EMAIL = "okrsync-sandbox@okrsync-demo.iam.gserviceaccount.com"
SANDBOX_PROPERTY = "123456789"


@cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sandbox_public_key() -> PublicKeyTypes:
    return _key().public_key()


def sandbox_credentials() -> dict[str, str]:
    """``private_key_json``: the PEM as a JSON string body (newlines escaped), for a key file
    written inline in YAML: ``credentials_json: '{"private_key": "${..._PRIVATE_KEY_JSON}", …}'``.
    """
    pem = (
        _key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return {
        "client_email": SANDBOX_EMAIL,
        "private_key_json": json.dumps(pem)[1:-1],
        "property": SANDBOX_PROPERTY,
    }

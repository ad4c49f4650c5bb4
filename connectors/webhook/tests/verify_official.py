#!/usr/bin/env python3
"""Verify civicbus webhook deliveries with the official Standard Webhooks Python library.

Run by `connectors/webhook/tests/official_library.rs`, which captures real deliveries of
`WebhookSink` and sends them here as JSON on stdin:

    {"checks": [{"name": ..., "kind": ..., "body_b64": ..., "headers": {...}, ...}]}

Kinds:
  official      `standardwebhooks.webhooks.Webhook(secret).verify(body, headers)` (v1, HMAC)
  ed25519       every `v1a,<sig>` of `webhook-signature` against the `whpk_` public key, with
                `cryptography` (the official library 1.1.0 has no asymmetric support)
  public_key    the `whpk_` key derived independently from the `whsk_` signing key

Prints one JSON object per line, {"name": ..., "ok": true|false, "error": ...}, and exits
0; exits 3 with a message naming the `pip install` to run when a library is missing.
"""

import base64
import importlib.metadata
import json
import sys
import time

try:
    from standardwebhooks.webhooks import Webhook
except ImportError as e:  # pragma: no cover - the failure is the message
    print(
        f"the official Standard Webhooks library is not installed ({e}); "
        "run `python3 -m pip install standardwebhooks==1.1.0` (scripts/test.sh does)",
        file=sys.stderr,
    )
    sys.exit(3)

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError as e:  # pragma: no cover
    print(
        f"the `cryptography` package is not installed ({e}); "
        "run `python3 -m pip install cryptography` (scripts/test.sh does)",
        file=sys.stderr,
    )
    sys.exit(3)

TOLERANCE_SECONDS = 5 * 60


def official(check):
    body = base64.b64decode(check["body_b64"])
    Webhook(check["secret"]).verify(body, check["headers"], json_parse=False)


def ed25519(check):
    """Verify the v1a signatures the way the spec says, independently of civicbus."""
    body = base64.b64decode(check["body_b64"])
    headers = {k.lower(): v for k, v in check["headers"].items()}
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise ValueError("webhook-timestamp out of tolerance")
    public = check["public_key"]
    if not public.startswith("whpk_"):
        raise ValueError("the public key does not start with whpk_")
    raw = base64.b64decode(public[len("whpk_") :], validate=True)
    key = Ed25519PublicKey.from_public_bytes(raw)
    content = f"{msg_id}.{timestamp}.".encode() + body
    for token in headers["webhook-signature"].split(" "):
        version, _, sig = token.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(sig, validate=True), content)
            return
        except InvalidSignature:
            continue
    raise ValueError("no v1a signature matches the public key")


def public_key(check):
    secret = check["signing_key"]
    if not secret.startswith("whsk_"):
        raise ValueError("the signing key does not start with whsk_")
    seed = base64.b64decode(secret[len("whsk_") :], validate=True)
    derived = Ed25519PrivateKey.from_private_bytes(seed[:32]).public_key()
    raw = derived.public_bytes(Encoding.Raw, PublicFormat.Raw)
    expected = "whpk_" + base64.b64encode(raw).decode()
    if expected != check["public_key"]:
        raise ValueError("the whpk_ key is not the public key of the whsk_ key")


KINDS = {"official": official, "ed25519": ed25519, "public_key": public_key}


def main():
    request = json.load(sys.stdin)
    print(json.dumps({"library_version": importlib.metadata.version("standardwebhooks")}))
    for check in request["checks"]:
        try:
            KINDS[check["kind"]](check)
            result = {"name": check["name"], "ok": True, "error": None}
        except Exception as e:  # every failure is a result, reported to the Rust test
            result = {"name": check["name"], "ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""The e2e tier's HTTP client: a request to the local runtime, and its status with the JSON it answered."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310 - loopback
    try:
        # A bound on waiting for the server, not a time the answer must come within: generous, for a busy machine.
        with urllib.request.urlopen(request, timeout=120) as reply:  # noqa: S310 - loopback
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")

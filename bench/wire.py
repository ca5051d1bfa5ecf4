"""AWS answered just under botocore: real boto3 clients, no network.

A `before-send` hook receives the request botocore has built, serialised and signed, hands its
JSON parameters to one of the bench fakes (bench._support: DynamoDB with real conditional
semantics, SQS, EventBridge, SSM, Secrets Manager), and returns the reply as an `AWSResponse`
(200 with the JSON body, or 400 with the error `__type` AWS sends), which botocore's retry
handler and parser then handle as they would AWS's. Every service the hub calls speaks a JSON
protocol (DynamoDB, SQS since 2023, EventBridge, SSM, Secrets Manager), so the fakes' keyword
arguments are the wire body as it is.

The hook's own CPU (JSON in and out, the fake) is counted apart (`stub_cpu_s`) so a benchmark
can take it out: what remains is the hub plus botocore, which is what production pays for.
Calls are counted by service and operation on `before-call` (one per API call; retries would
show on `before-send`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from bench._support import REGION

_CONTENT_TYPE = {"dynamodb": "application/x-amz-json-1.0", "sqs": "application/x-amz-json-1.0"}


class _Body:
    """The raw stream an AWSResponse reads its content from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any) -> Any:
        yield self._data


class WireStub:
    """Answers the requests of the clients it is attached to, from fakes keyed by botocore's service id
    as it appears in event names (`dynamodb`, `sqs`, `eventbridge`, `ssm`, `secrets-manager`)."""

    def __init__(self, fakes: dict[str, Any]) -> None:
        from botocore import xform_name

        self.fakes = fakes
        self.calls: Counter[str] = Counter()  # "service Operation" -> API calls
        self.sends = 0  # HTTP requests (API calls plus retries)
        self.stub_cpu_s = 0.0
        self._method = xform_name

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call", self._count)
        client.meta.events.register("before-send", self._answer)
        return client

    def _count(self, event_name: str, **kwargs: Any) -> None:
        _, service, op = event_name.split(".", 2)
        self.calls[f"{service} {op}"] += 1

    def _answer(self, request: Any, event_name: str, **kwargs: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ClientError

        t0 = time.process_time()
        self.sends += 1
        _, service, op = event_name.split(".", 2)
        body = request.body
        params = json.loads(body) if body else {}
        if service == "dynamodb":
            params = _binary_values(params)  # as the fakes store them (and size them): bytes, not base64
        try:
            status, reply = 200, getattr(self.fakes[service], self._method(op))(**params)
        except ClientError as error:  # the fakes raise what botocore would have parsed from AWS
            status = 400
            reply = {"__type": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
            for key in ("Item", "CancellationReasons"):
                if key in error.response:
                    reply[key] = error.response[key]
        data = json.dumps(reply, default=_wire_default).encode()
        headers = {"x-amzn-requestid": "bench", "content-length": str(len(data)),
                   "content-type": _CONTENT_TYPE.get(service, "application/x-amz-json-1.1")}
        response = AWSResponse(request.url, status, headers, _Body(data))
        self.stub_cpu_s += time.process_time() - t0
        return response

    def reset_counts(self) -> None:
        self.calls.clear()
        self.sends = 0
        self.stub_cpu_s = 0.0


def _binary_values(node: Any) -> Any:
    """DynamoDB's wire form carries B / BS values base64-encoded; botocore decodes them on the way back."""
    import base64

    if isinstance(node, dict):
        if len(node) == 1:
            (kind, value), = node.items()
            if kind == "B" and isinstance(value, str):
                return {"B": base64.b64decode(value)}
            if kind == "BS" and isinstance(value, list):
                return {"BS": [base64.b64decode(v) for v in value]}
        return {k: _binary_values(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_binary_values(v) for v in node]
    return node


def _wire_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(type(value))


def real_client(service: str, stub: WireStub) -> Any:
    """A boto3 client configured as `orderhub.aws.client` configures the hub's, answered by `stub`."""
    import os

    import boto3
    from botocore.config import Config

    # Dummy credentials (what moto uses): signing runs as it does in Lambda, nothing reaches AWS.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name=REGION)
    client = session.client(service, config=Config(retries={"mode": "standard", "max_attempts": 4},
                                                   connect_timeout=2, read_timeout=5, tcp_keepalive=True))
    return stub.attach(client)


def install_real_config_clients(stub: WireStub) -> None:
    """Powertools' SSM and Secrets Manager providers on real clients answered by the stub's fakes."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    DEFAULT_PROVIDERS["ssm"] = SSMProvider(boto3_client=real_client("ssm", stub))
    DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=real_client("secretsmanager", stub))

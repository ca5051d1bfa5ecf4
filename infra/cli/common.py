"""What the operator commands share: the stage's configuration, and AWS (or the local hub) to act on."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from infra.config import load_config

PREFIX_HELP = "stage from the config file (ORDERHUB_CONFIG, default config/local.toml)"


def aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=PREFIX_HELP)
    parser.add_argument("--endpoint-url", default=None, help="AWS endpoint (default: env AWS_ENDPOINT_URL, else AWS)")


def stage_config(args: argparse.Namespace) -> Any:
    return load_config(getattr(args, "config", None))


def aws_client(args: argparse.Namespace, service: str) -> Any:
    """A boto3 client: AWS with the usual credentials, or the local hub's moto with AWS_ENDPOINT_URL/--endpoint-url."""
    import boto3

    return boto3.client(service, endpoint_url=args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)


def physical(config: Any, name: str) -> str:
    from infra.topology import build_topology

    topology = build_topology(config.topology_subscribers(), config.business_timezone, config.provider_confirmed())
    return topology.physical_name(config.stage, name)


def intake_sender(args: argparse.Namespace, config: Any) -> Any:
    """Batches of intake messages to the stage's intake queue (import and replay feed the pipeline with it)."""
    from infra.topology import INTAKE_QUEUE
    from orderhub.intake_batch import IntakeBatchSender

    sqs = aws_client(args, "sqs")
    return IntakeBatchSender(sqs.get_queue_url(QueueName=physical(config, INTAKE_QUEUE))["QueueUrl"], sqs)

"""Fixtures shared by every tier."""

from __future__ import annotations

import os

import pytest

# Tests never reach AWS: dummy credentials and a region for any boto3 client they create.
os.environ.setdefault("AWS_DEFAULT_REGION", "ap-southeast-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "OrderHub")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "orderhub")


@pytest.fixture
def hub_config():
    from infra.config import load_config

    return load_config()

"""`orderhub run` and `orderhub demo`: the hub on the embedded AWS (moto), on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from infra.cli.common import stage_config


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="serve the hub locally on moto until Ctrl-C / SIGTERM")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")), help="HTTP API port (env PORT)")
    run.add_argument("--moto-port", type=int, default=None, help="embedded AWS endpoint port (default: a free one)")
    run.add_argument("--config", type=Path, help="configuration file (default: ORDERHUB_CONFIG or config/local.toml)")
    run.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="start the hub locally, play the sample traffic, print a summary")
    demo.set_defaults(func=_demo)


def _run(args: argparse.Namespace) -> int:
    from infra.local.runtime import LocalRuntime
    from infra.standins.embedded import embedded_platforms, stop_platforms

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = stage_config(args)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    platforms, config = embedded_platforms(config, seed_orders=20)
    with LocalRuntime(config, port=args.port, moto_port=args.moto_port) as runtime:
        cold = runtime.warm()
        print(f"orderhub ({config.stage}) is serving", flush=True)
        print(f"  API            {runtime.api_url}")
        print(f"  embedded AWS   {runtime.endpoint_url}   (region {runtime.region})")
        for name, fake in platforms.items():
            print(f"  embedded {name:<6}{fake.url}   (pulled every 5 minutes)")
        for name, init in cold.items():
            print(f"  {name:<16} " + (f"init {init:.0f} ms" if isinstance(init, float) else f"INIT FAILED: {init}"))
        print("To use the AWS CLI / boto3 / `orderhub dlq` against it, in another shell:")
        print(f"  export AWS_ENDPOINT_URL={runtime.endpoint_url} AWS_DEFAULT_REGION={runtime.region} "
              f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
        print("Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(1.0):
                pass
        finally:
            stop_platforms(platforms)
        print("stopping…", flush=True)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from infra.demo.day import main as demo_main  # imported only when asked for: it starts servers

    return int(demo_main(args.rest) or 0)

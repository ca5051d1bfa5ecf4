"""Child process of bench.e2e: hosts the LocalRuntime (moto, HTTP API, pollers, workers).

The runtime gets a process of its own so the benchmark's HTTP clients, the downstream receiver
and the floor's boto3 calls do not share its interpreter (and its GIL) with moto: they reach it
over HTTP like any client would. Commands arrive on a socket (multiprocessing Connection):
("idle", timeout) -> wait_until_idle, ("quiesce", None) -> stop the pollers, the scheduler and
the TTL sweeper (moto stays up, for the floor), ("cpu", None) -> this process's CPU seconds so far (moto's,
once quiesced), ("stop", None) -> stop and exit. Everything the workers
print goes to /dev/null (fd 1 and 2 are redirected by the parent).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from multiprocessing.connection import Connection


def main(fd: int, config_json: str) -> None:
    import bench  # noqa: F401 - sys.path for infra/orderhub
    from infra.config import HubConfig
    from infra.local.runtime import LocalRuntime

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    conn = Connection(fd)
    config = HubConfig.model_validate_json(config_json)
    runtime = LocalRuntime(config, port=0)
    try:
        started = time.perf_counter()
        runtime.start()
        warm = runtime.warm()
        conn.send(("ready", {"api_url": runtime.api_url, "endpoint_url": runtime.endpoint_url,
                             "region": runtime.region, "tables": dict(runtime.resources.tables),
                             "queue_urls": dict(runtime.resources.queue_urls), "warm_ms": warm,
                             "start_s": time.perf_counter() - started}))
        while True:
            command, arg = conn.recv()
            if command == "idle":
                try:
                    runtime.wait_until_idle(timeout=arg)
                    state = "idle"
                except TimeoutError as exc:
                    state = f"timeout: {exc}"
                conn.send((state, {"invocations": dict(runtime.invocations), "errors": dict(runtime.errors),
                                   "batches": {p.name: p.batches for p in runtime.pollers},
                                   "failed_batches": {p.name: p.failed_batches for p in runtime.pollers}}))
            elif command == "quiesce":
                # Keep moto (and the HTTP API) up, stop everything that polls it, so the floor
                # measured next has moto to itself.
                for part in (runtime.scheduler, runtime.ttl_sweeper, *runtime.pollers):
                    part.stop()
                for poller in runtime.pollers:
                    poller.join()
                conn.send(("quiet", None))
            elif command == "cpu":
                # CPU of this process, every thread: once quiesced, that is moto serving calls.
                conn.send(("cpu", time.process_time()))
            elif command == "stop":
                break
    except BaseException:  # noqa: BLE001 - reported to the parent
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
        raise
    finally:
        runtime.stop()
        conn.send(("stopped", None))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

"""Execution environments: one worker process per function, as Lambda gives each function its own.

A worker is spawned with exactly the environment Lambda would give the function (its resolved
topology variables, the Lambda-reserved ones, TZ=UTC), imports `functions.<name>.handler` once
(a real cold start) and then serves one invocation at a time over a socket. Functions therefore
never see each other's variables or module state (Powertools metrics and batch processors are
module globals), a timeout is enforced by ending the process, and the cold start is measurable.

This module is the worker's entry point (`python -m infra.local.environments`), which is why it
imports only the standard library.
"""

from __future__ import annotations

import importlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.topology import Function

log = logging.getLogger("orderhub.local")

REPO_ROOT = Path(__file__).resolve().parents[2]
INIT_TIMEOUT_S = 30.0
# Without real-time limits (a runtime whose timers follow a test's clock), a cold start or an
# invocation is ended only past this bound: a hung worker, not a slow one on a busy machine.
HUNG_WORKER_S = 600.0


class HandlerError(Exception):
    """A function invocation failed the way Lambda reports it: errorType and errorMessage."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function, self.error_type, self.error_message = function, error_type, message


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, memory_mb: int, arn: str, deadline_ms: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = str(memory_mb)  # a string in the real runtime too (read from the environment)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


# --------------------------------------------------------------------------- worker (child process)


def _worker_main(fd: int, spec: dict) -> None:
    conn = Connection(fd)
    started = time.perf_counter()
    try:
        handler = importlib.import_module(spec["module"]).lambda_handler
    except BaseException as exc:  # reported to the parent as Lambda's init error
        traceback.print_exc()
        conn.send(("init_error", ("Runtime.ImportModuleError", f"{type(exc).__name__}: {exc}")))
        return
    conn.send(("ready", (time.perf_counter() - started) * 1000))
    while True:
        try:
            event, deadline_ms = conn.recv()
        except (EOFError, OSError):
            return  # the runtime went away
        context = LambdaContext(spec["physical_name"], spec["memory_mb"], spec["arn"], deadline_ms)
        try:
            result = handler(event, context)
        except Exception as exc:  # reported to the caller like Lambda's Unhandled error
            print(f"[ERROR] {type(exc).__name__}: {exc}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            conn.send(("error", (type(exc).__name__, str(exc))))
            continue
        try:
            conn.send(("ok", json.loads(json.dumps(result))))  # Lambda hands the caller JSON
        except (TypeError, ValueError) as exc:
            conn.send(("error", ("Runtime.MarshalError", f"Unable to marshal response: {exc}")))


class _Worker:
    def __init__(self, spec: dict, env: dict[str, str], log_path: Path | None = None) -> None:
        parent, child = socket.socketpair()
        # Function logs go to the console, or appended to a file per function (what CloudWatch would hold).
        log = log_path.open("ab") if log_path else None
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [sys.executable, "-m", "infra.local.environments", str(child.fileno()), json.dumps(spec)],
            env=env, cwd=REPO_ROOT, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT if log else None,
            start_new_session=True)  # Ctrl-C reaches the runtime, which then ends its workers in order
        if log:
            log.close()  # the child holds its own descriptor
        child.close()
        self.conn = Connection(parent.detach())
        self.ready = False
        self.init_ms: float | None = None
        self._ready_lock = threading.Lock()

    def await_ready(self, name: str, init_timeout_s: float = INIT_TIMEOUT_S) -> None:
        with self._ready_lock:
            if not self.ready:
                self._await_ready(name, init_timeout_s)

    def _await_ready(self, name: str, init_timeout_s: float) -> None:
        if not self.conn.poll(init_timeout_s):
            raise HandlerError(name, "Runtime.InitTimeout", f"init did not finish in {init_timeout_s:.0f}s")
        kind, payload = self.conn.recv()
        if kind == "init_error":
            raise HandlerError(name, *payload)
        self.ready, self.init_ms = True, payload
        log.info("%s: cold start, init %.0f ms", name, payload)

    def invoke(self, name: str, event: dict, timeout_s: float, real_time_limits: bool = True) -> Any:
        self.await_ready(name, INIT_TIMEOUT_S if real_time_limits else HUNG_WORKER_S)
        # The context's remaining time counts down from the declared timeout either way, as in Lambda.
        self.conn.send((event, int((time.time() + timeout_s) * 1000)))
        if not self.conn.poll(timeout_s + 0.5 if real_time_limits else max(HUNG_WORKER_S, timeout_s)):
            raise TimeoutError(f"Task timed out after {timeout_s:.2f} seconds")
        kind, payload = self.conn.recv()
        if kind == "error":
            raise HandlerError(name, *payload)
        return payload

    def kill(self) -> None:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


class FunctionPool:
    """Execution environments of one function: reused while warm, a new one (cold) when all are busy."""

    def __init__(self, fn: Function, spec: dict, env: dict[str, str], max_workers: int,
                 log_path: Path | None = None, real_time_limits: bool = True) -> None:
        self.fn, self._spec, self._env, self._max = fn, spec, env, max_workers
        self._real_time_limits = real_time_limits
        self._log_path = log_path
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._cond = threading.Condition()
        self._closed = False

    def prewarm(self, count: int = 1) -> None:
        with self._cond:
            while len(self._all) < min(count, self._max):
                self._idle.append(self._spawn_locked())

    def _spawn_locked(self) -> _Worker:
        worker = _Worker(self._spec, self._env, self._log_path)
        self._all.append(worker)
        return worker

    def invoke(self, event: dict) -> Any:
        with self._cond:
            while not self._idle and len(self._all) >= self._max and not self._closed:
                self._cond.wait()
            if self._closed:
                raise HandlerError(self.fn.name, "Runtime.Stopped", "the local runtime is stopping")
            worker = self._idle.pop() if self._idle else self._spawn_locked()
        healthy = False
        try:
            result = worker.invoke(self.fn.name, event, self.fn.timeout_s, self._real_time_limits)
            healthy = True
            return result
        except HandlerError as exc:
            healthy = exc.error_type not in ("Runtime.ImportModuleError", "Runtime.InitTimeout")
            raise
        except TimeoutError as exc:  # Lambda ends the environment of a timed-out invocation
            raise HandlerError(self.fn.name, "Sandbox.Timedout", str(exc)) from None
        except (EOFError, OSError) as exc:
            raise HandlerError(self.fn.name, "Runtime.ExitError", f"the worker process died: {exc!r}") from None
        finally:
            with self._cond:
                if healthy and not self._closed:
                    self._idle.append(worker)
                else:
                    self._all.remove(worker)
                    threading.Thread(target=worker.kill, daemon=True).start()
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers, self._all, self._idle = list(self._all), [], []
            self._cond.notify_all()
        for worker in workers:
            worker.kill()


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]), json.loads(sys.argv[2]))

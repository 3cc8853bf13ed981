"""Load for real Triton servers: closed-loop clients sending inference requests through tritonclient.

Each client sends one request, waits for the answer, thinks for `think_seconds`, and sends the next,
to the next address in a round-robin over the current targets (a callable, so the set can follow pods
that come and go, as a Service's endpoints do). The clients run as asyncio tasks on a loop in a
background thread, so a synchronous test (or one with its own loop) keeps its hands free.

With a model that sleeps S seconds per batch, c clients thinking T seconds offer about
c × S ÷ (S + T + wait) sequences at once: more than a replica's batch slots, and requests queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import tritonclient.http.aio as aioclient

Targets = Callable[[], Sequence[str]]


@dataclass
class LoadStats:
    """What the clients saw: answers per address, failures, and the mean latency of the answers."""

    ok: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    last_error: str = ""
    latency_total: float = 0.0

    @property
    def total_ok(self) -> int:
        return sum(self.ok.values())

    @property
    def mean_latency(self) -> float:
        return self.latency_total / self.total_ok if self.total_ok else 0.0


class Load:
    """`concurrency` closed-loop clients of `model` (input INPUT0, FP32) on the addresses `targets()` returns.

    Use as a context manager, or call start() and stop(). Requests to an address that does not answer
    (a pod whose server is not up yet, or is gone) count as errors and are retried elsewhere.
    """

    def __init__(
        self,
        model: str,
        targets: Targets | Sequence[str],
        *,
        concurrency: int = 8,
        think_seconds: float = 0.0,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.model = model
        if callable(targets):
            self._targets: Targets = targets
        else:
            fixed = tuple(targets)
            self._targets = lambda: fixed
        self.concurrency = concurrency
        self.think_seconds = think_seconds
        self.timeout_seconds = timeout_seconds
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._turn = itertools.count()
        self.started_at = self.stopped_at = 0.0

    def start(self) -> Load:
        if self._thread is not None:
            raise RuntimeError("this Load is already running")
        self._thread = threading.Thread(target=self._run, name=f"load-{self.model}", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the load thread did not start")
        self.started_at = time.time()
        return self

    def stop(self) -> LoadStats:
        """Stop every client (in-flight requests are abandoned) and wait for the thread; the stats."""
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(30)
            self.stopped_at = time.time()
        return self.stats

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        clients: dict[str, aioclient.InferenceServerClient] = {}
        data = np.ones((1, 4), dtype=np.float32)
        workers = [asyncio.create_task(self._client(clients, data)) for _ in range(self.concurrency)]
        self._started.set()
        await self._stopping.wait()
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for c in clients.values():
            with contextlib.suppress(Exception):
                await c.close()

    def _next_target(self) -> str | None:
        targets = list(self._targets())
        if not targets:
            return None
        return targets[next(self._turn) % len(targets)]

    async def _client(self, clients: dict[str, aioclient.InferenceServerClient], data: npt.NDArray[np.float32]) -> None:
        while True:
            address = self._next_target()
            if address is None:
                await asyncio.sleep(0.1)
                continue
            client = clients.get(address)
            if client is None:
                client = clients[address] = aioclient.InferenceServerClient(address, conn_timeout=self.timeout_seconds)
            inp = aioclient.InferInput("INPUT0", list(data.shape), "FP32")
            inp.set_data_from_numpy(data)
            started = time.monotonic()
            try:
                await client.infer(self.model, [inp])
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a server not up yet, or gone: count it and go on
                with self._lock:
                    self.stats.errors += 1
                    self.stats.last_error = f"{address}: {e}"[:300]
                await asyncio.sleep(0.1)
                continue
            with self._lock:
                self.stats.ok[address] = self.stats.ok.get(address, 0) + 1
                self.stats.latency_total += time.monotonic() - started
            if self.think_seconds:
                await asyncio.sleep(self.think_seconds)

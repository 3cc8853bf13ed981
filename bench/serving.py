"""Simulated serving for the autoscaling benchmark: Triton replicas with TensorRT-LLM in-flight batching.

A replica runs at most SLOTS sequences at once (max_batch_size), and only as many as its KV cache
holds: a sequence reserves prompt + output tokens when it starts and frees them when it ends
(TensorRT-LLM's guaranteed-no-evict scheduler, which reserves a request's whole length up front).
Requests start in arrival order (FCFS), each at the first moment both a slot and its KV are free.
A request's time in service is its prefill (prompt ÷ PREFILL_TOKENS_PER_S) plus its decode (output ×
the time per output token, which grows with the batch it joins); both are fixed when it starts, so
the simulation is exact for FCFS.

Triton's queue policy bounds the queue, as a production setup does: at most MAX_QUEUE requests wait
(an arrival beyond that is rejected at once), and a request that would wait longer than
CLIENT_TIMEOUT_S is dropped (the client gave up; Triton's queue policy times it out). Both are
counted, and both count against the SLO as requests that never got a first token.

The Service spreads requests uniformly at random over ready replicas (kube-proxy); no retries. A new
replica is billed from creation but serves only after a cold start drawn uniformly from COLD_START_S
(image pull, engine load, warm-up). A removed replica stops receiving requests at once, finishes what
it holds, and is billed until then; replicas not yet ready are removed first, then the newest.

Triton's metrics are produced as Triton would: queue time counted when a request starts, compute
time and success when it ends, pending = queued now, KV blocks used now and the most it holds,
TensorRT-LLM's active (running) and maximum request counts.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from meridian.autoscale.sources.triton import COMPUTE_US, QUEUE_US, SUCCESS, SeriesKey, TritonScrape

SLOTS = 16  # max_batch_size of the engine
KV_TOKENS = 24_576  # KV cache of one replica, in tokens (a 13B model on a 48 GB GPU, fp16 KV)
KV_BLOCK_TOKENS = 64  # tokens per KV block, as TensorRT-LLM reports blocks
PREFILL_TOKENS_PER_S = 8_000.0
TPOT_S = 0.025  # time per output token with a batch of one
TPOT_SLOWDOWN = 1.0  # ... and (1 + this) times that with a full batch
MAX_QUEUE = 2 * SLOTS  # Triton queue policy max_queue_size
CLIENT_TIMEOUT_S = 30.0
COLD_START_S = (90.0, 180.0)
LABELS = (("model", "llm"), ("version", "1"))
KEYS: dict[str, SeriesKey] = {name: (name, LABELS) for name in (QUEUE_US, COMPUTE_US, SUCCESS)}

REJECTED = -1.0  # admit(): the queue was full
TIMED_OUT = -2.0  # admit(): the wait would have passed the client's timeout


@dataclass
class Replica:
    """One simulated Triton pod: what runs, what waits, and its Triton counters."""

    name: str
    created: float
    ready_at: float
    running: list[tuple[float, int]] = field(default_factory=list)  # heap (finish, kv) for admission
    kv_reserved: int = 0
    last_start: float = 0.0
    starts: deque[tuple[float, float, int]] = field(default_factory=deque)  # (start, wait, kv), start order
    finishes: list[tuple[float, float, int]] = field(default_factory=list)  # heap (finish, service, kv)
    kv_now: int = 0  # tokens held by started, unfinished sequences as of the last advance
    queue_us: float = 0.0
    compute_us: float = 0.0
    success: float = 0.0
    last_finish: float = 0.0

    def __post_init__(self) -> None:
        self.last_start = self.ready_at

    def _advance(self, now: float) -> None:
        """Count, up to `now`, the starts (queue time) and finishes (compute time, success)."""
        while self.starts and self.starts[0][0] <= now:
            _, wait, kv = self.starts.popleft()
            self.queue_us += wait * 1e6
            self.kv_now += kv
        while self.finishes and self.finishes[0][0] <= now:
            _, service, kv = heapq.heappop(self.finishes)
            self.compute_us += service * 1e6
            self.success += 1
            self.kv_now -= kv

    def admit(self, arrival: float, prompt: int, output: int) -> float:
        """Queue a request; return its time to first token, or REJECTED / TIMED_OUT."""
        self._advance(arrival)
        if len(self.starts) >= MAX_QUEUE:
            return REJECTED
        need = min(prompt + output, KV_TOKENS)
        start = max(arrival, self.last_start)
        freed: list[tuple[float, int]] = []
        while self.running and self.running[0][0] <= start:
            freed.append(heapq.heappop(self.running))
        busy, kv = len(self.running), self.kv_reserved - sum(k for _, k in freed)
        while busy >= SLOTS or kv + need > KV_TOKENS:
            finish, k = heapq.heappop(self.running)
            freed.append((finish, k))
            start, busy, kv = max(start, finish), busy - 1, kv - k
        if start - arrival > CLIENT_TIMEOUT_S:
            # Triton drops it at its timeout: it took nothing, and the next request may start sooner
            earliest = max(arrival, self.last_start)
            for item in freed:
                if item[0] > earliest:
                    heapq.heappush(self.running, item)
            self.kv_reserved = sum(k for _, k in self.running)
            return TIMED_OUT
        self.kv_reserved = kv + need
        prefill = prompt / PREFILL_TOKENS_PER_S
        service = prefill + output * TPOT_S * (1.0 + TPOT_SLOWDOWN * (busy + 1) / SLOTS)
        finish = start + service
        heapq.heappush(self.running, (finish, need))
        self.last_start = start
        self.starts.append((start, start - arrival, need))
        heapq.heappush(self.finishes, (finish, service, need))
        self.last_finish = max(self.last_finish, finish)
        return start - arrival + prefill

    def scrape(self, now: float) -> TritonScrape:
        """What Triton's /metrics would say at `now`."""
        self._advance(now)
        pending = len(self.starts)
        executing = len(self.finishes) - pending
        blocks = -(-self.kv_now // KV_BLOCK_TOKENS)
        return TritonScrape(
            counters={KEYS[QUEUE_US]: self.queue_us, KEYS[COMPUTE_US]: self.compute_us, KEYS[SUCCESS]: self.success},
            pending=float(pending),
            kv_used=float(blocks),
            kv_max=float(KV_TOKENS // KV_BLOCK_TOKENS),
            # SM occupancy rather than NVML's duty cycle (which reads ~1.0 whenever anything runs):
            # the more useful reading, which is generous to a GPU-utilisation baseline
            gpu_utilization=min(1.0, executing / SLOTS),
            capacity=float(SLOTS),
            active=float(executing),
        )


class Cluster:
    """The replicas of one ModelDeployment, their billing, and how the Service routes to them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.replicas: list[Replica] = []  # live (not removed)
        self.serving: list[Replica] = []  # ready and live
        self.starting: list[tuple[float, int, Replica]] = []  # (ready_at, n, replica), sorted
        self.billed = 0.0
        self.count = 0

    def add(self, now: float, cold_start: bool = True) -> None:
        self.count += 1
        ready_at = now + (self.rng.uniform(*COLD_START_S) if cold_start else 0.0)
        r = Replica(f"pod-{self.count}", now, ready_at)
        self.replicas.append(r)
        if cold_start:
            bisect.insort(self.starting, (ready_at, self.count, r))
        else:
            self.serving.append(r)

    def remove(self, now: float) -> None:
        """Remove one replica: a starting one if any (newest first), else the newest serving one."""
        if self.starting:
            _, _, r = self.starting.pop()
            self.billed += now - r.created
        else:
            r = self.serving.pop()
            self.billed += max(now, r.last_finish) - r.created
        self.replicas.remove(r)

    def promote(self, now: float) -> None:
        """Replicas whose cold start is over join the Service's endpoints."""
        while self.starting and self.starting[0][0] <= now:
            self.serving.append(self.starting.pop(0)[2])

    def route(self) -> Replica:
        if self.serving:
            return self.serving[self.rng.randrange(len(self.serving))]
        return self.starting[0][2]  # nothing ready yet: queue at the first to come up

    def close(self, end: float) -> float:
        """Replica-hours billed by `end` (a replica still draining is billed to its last finish)."""
        live = sum(max(end, r.last_finish if r.ready_at <= end else end) - r.created for r in self.replicas)
        return (self.billed + live) / 3600

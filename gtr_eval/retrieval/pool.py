"""Several encoder processes on one machine: one per device (`--devices cuda:0,cuda:1`) or N on the
CPU (`--processes N`).  Each worker holds its own copy of the model; shards go in, vectors come out
in order, so the cache is filled exactly as a single process would fill it."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from ..progress import tick
from .backends import EncoderSpec
from .encoders import load_encoder

log = logging.getLogger(__name__)

_WORKER: dict = {}


def _init_worker(spec: EncoderSpec, devices, threads: int | None) -> None:
    device = devices.get()
    cpu = device.startswith("cpu")
    _WORKER["encoder"] = load_encoder(replace(spec, device=device, threads=threads if cpu else spec.threads))


def _worker_encode(texts: list[str], prompt: str) -> np.ndarray:
    return _WORKER["encoder"].encode(texts, prompt, "document")  # the pool encodes corpora


def _ticked(vectors: np.ndarray) -> np.ndarray:
    """A worker's piece (a few batches) arrived: the progress bar moves by it."""
    tick(len(vectors))
    return vectors


class EncoderPool:
    """One process per device, each with its own copy of the model (spawned: CUDA-safe).

    CPU workers share the machine's cores: each gets `threads // n_cpu_workers` intra-op threads,
    where `threads` is the encoder's setting or torch's current default.  As a context manager it
    gives `encode_many(prompt)`'s function for documents encoded with `prompt`.
    """

    def __init__(self, spec: EncoderSpec, devices: list[str], prompt: str = ""):
        self.spec = spec
        self.devices = list(devices)
        self.n = len(devices)
        self.batch_size = spec.batch_size
        self.prompt = prompt
        self._executor: ProcessPoolExecutor | None = None

    @property
    def executor(self) -> ProcessPoolExecutor:
        """Started on first use: a run whose shards are all cached spawns no worker."""
        if self._executor is None:
            import multiprocessing as mp

            import torch

            n_cpu = sum(d.startswith("cpu") for d in self.devices)
            total = self.spec.threads or torch.get_num_threads()
            threads = max(1, total // n_cpu) if n_cpu else None
            spec = self.spec  # every worker loads the same files with the same max length
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            for d in self.devices:
                queue.put(d)
            self._executor = ProcessPoolExecutor(
                self.n, mp_context=ctx, initializer=_init_worker, initargs=(spec, queue, threads)
            )
            log.info(
                "encoder pool: %d workers on %s, %s threads each", self.n, ",".join(self.devices), threads
            )
        return self._executor

    def __enter__(self) -> Callable[[Iterator[list[str]]], Iterator[np.ndarray]]:
        return self.encode_many(self.prompt)

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def encode_many(self, prompt: str) -> Callable[[Iterator[list[str]]], Iterator[np.ndarray]]:
        """Shards in, vectors out, in order; two shards' pieces stay queued so no worker idles."""

        def run(shards: Iterator[list[str]]) -> Iterator[np.ndarray]:
            window: deque[list[Future]] = deque()
            outstanding = 0
            it = iter(shards)
            exhausted = False
            try:
                while True:
                    while not exhausted and (len(window) < 2 or outstanding < 2 * self.n):
                        texts = next(it, None)
                        if texts is None:
                            exhausted = True
                            break
                        piece = max(1, min(4 * self.batch_size, math.ceil(len(texts) / (2 * self.n))))
                        futures = [
                            self.executor.submit(_worker_encode, texts[a : a + piece], prompt)
                            for a in range(0, len(texts), piece)
                        ]
                        window.append(futures)
                        outstanding += len(futures)
                    if not window:
                        return
                    futures = window.popleft()
                    outstanding -= len(futures)
                    parts = [_ticked(f.result()) for f in futures]
                    yield np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
            finally:
                for futures in window:
                    for f in futures:
                        f.cancel()

        return run

"""Corpus building on Ray: the local pool's per-object work (`build_object`), as Ray tasks on a cluster.

Ray tasks, not Ray Data: building an object is a side effect (its folder under the corpus) that returns a
small record, with nothing to stream between stages, shuffle or collect. Tasks hand the driver each record
as it finishes (progress, failures, the manifest every `manifest_every`), with explicit backpressure: at
most `IN_FLIGHT_PER_SLOT` tasks per slot of the cluster are submitted, the rest wait in the driver's
job list, so a million-object build never holds a million futures.

Failure isolation: `build_object` turns any error of an object into a "failed" record. A task that dies
without one (its worker crashed or was killed, its node was lost) is retried `MAX_RETRIES` times by Ray
(another node may succeed); then the driver writes the failed record itself and the build goes on.

What the nodes must share: the corpus folder (`--out`) mounted at the same path on every node (tasks write
their object's folder and record there; the driver reads records to skip finished objects and writes the
manifest), the input folder for `--source meshes` likewise, and this repository with its environment
(`bash scripts/setup.sh`) so that tasks can import `training.data.build`.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import ray
from ray.exceptions import RayError

from .build import BuildConfig, Job, build_object, failed_record, prepare_worker

IN_FLIGHT_PER_SLOT = 2  # a queued task per running one: no slot idles between tasks, no backlog of futures
MAX_RETRIES = 1  # a lost node's object is retried once elsewhere; a deterministic crash costs one rerun
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20  # tasks pass a config and return a record: KBs, not the default 30 % of RAM
SLOTS_REFRESH_SECONDS = 10.0  # how often the driver re-reads the cluster's size (nodes may join or leave)

_UNPREPARED = object()
_prepared_scorer: object = _UNPREPARED  # the scorer path this worker process was prepared with


def _build_on_worker(job: Job, config: BuildConfig) -> dict[str, Any]:
    """A Ray task: prepare this worker process once (as the pool's initializer does), then build `job`."""
    global _prepared_scorer
    scorer_path = str(config.scorer_path) if config.scorer_path else None
    if _prepared_scorer != scorer_path:
        prepare_worker(scorer_path)
        _prepared_scorer = scorer_path
    return build_object(job, config)


def connect(config: BuildConfig) -> bool:
    """Join the cluster at `config.ray_address`, or start a local one with `config.workers` CPUs (as many
    slots as the pool has processes). Returns whether this call initialised Ray (and so must shut it down)."""
    if ray.is_initialized():  # a caller (a notebook, a test) already chose the cluster
        return False
    if config.ray_address:
        try:
            _check_reachable(config.ray_address)
            ray.init(address=config.ray_address, logging_level=logging.WARNING)
        except ConnectionError as error:
            raise ValueError(f"no Ray cluster at {config.ray_address!r} ({error}); start one with `ray start --head` "
                             "or leave out --ray-address for a local one") from error
    else:
        ray.init(num_cpus=config.workers, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                 logging_level=logging.WARNING)
    return True


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens at (Ray itself waits minutes for the cluster to appear)."""
    host, separator, port = address.rpartition(":")
    if "://" in address or not separator or not port.isdigit():  # "auto", "ray://...": Ray reports these itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"cannot reach {host}:{port}: {error}") from error


def cluster_slots(config: BuildConfig) -> int:
    """How many objects the cluster can build at once with the per-object resources (at least one)."""
    resources = ray.cluster_resources()
    limits = [resources.get("CPU", 0.0) / config.cpus_per_object] if config.cpus_per_object > 0 else []
    if config.gpus_per_object > 0:
        limits.append(resources.get("GPU", 0.0) / config.gpus_per_object)
    return max(1, int(min(limits)))


def describe_cluster() -> str:
    """One line on the cluster the driver is connected to (live nodes, CPUs, GPUs), for the build's log."""
    resources = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return f"ray: {nodes} node(s), {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"


def ray_results(config: BuildConfig, jobs: list[Job], task=_build_on_worker) -> Iterator[dict[str, Any]]:
    """Build `jobs` as Ray tasks and yield each object's record as it finishes (in no fixed order).

    `task(job, config)` is the per-object work (tests pass one that crashes its worker). Closing the
    generator early (an interrupted build) cancels the tasks in flight; a resumed build redoes them.
    """
    if config.cpus_per_object <= 0 and config.gpus_per_object <= 0:
        raise ValueError("a Ray build needs cpus_per_object or gpus_per_object above 0")
    started = connect(config)
    in_flight: dict[ray.ObjectRef, Job] = {}
    try:
        print(describe_cluster(), file=sys.stderr)
        remote = ray.remote(task).options(num_cpus=config.cpus_per_object, num_gpus=config.gpus_per_object,
                                          max_retries=MAX_RETRIES, retry_exceptions=False)
        config_ref = ray.put(config)  # shipped once, not once per task
        queue = iter(jobs)
        window, checked = IN_FLIGHT_PER_SLOT * cluster_slots(config), time.monotonic()
        while True:
            if time.monotonic() - checked > SLOTS_REFRESH_SECONDS:
                window, checked = IN_FLIGHT_PER_SLOT * cluster_slots(config), time.monotonic()
            while len(in_flight) < window and (job := next(queue, None)) is not None:
                in_flight[remote.remote(job, config_ref)] = job
            if not in_flight:
                return
            done, _ = ray.wait(list(in_flight), num_returns=1)
            job = in_flight.pop(done[0])
            try:
                record = ray.get(done[0])
            except RayError as error:  # the task died without writing a record: write it here
                first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
                record = failed_record(job, config, f"{type(error).__name__}: {first_line}",
                                       details=str(error)[-2000:])
            yield record
    finally:
        for ref in in_flight:
            ray.cancel(ref)
        if started:
            ray.shutdown()

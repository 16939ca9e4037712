"""Training on several devices or machines with ``tf.distribute``.

``--strategy default`` is the ordinary single-device loop (nothing here is involved).
``mirrored`` is :class:`tf.distribute.MirroredStrategy` (the GPUs of one machine) and
``multi-worker`` is :class:`tf.distribute.MultiWorkerMirroredStrategy`, which finds the other
machines in the standard ``TF_CONFIG`` environment variable.

Every worker trains the same replicated model; each replica gets its part of the global batch
and the gradients are summed across all replicas with one all-reduce, whatever the backprop
rule. Which data a worker holds (:meth:`Distribution.shards_volumes`):

- at least as many volumes as workers: each worker reads, and simulates noise for, only its
  own volumes (volume ``i`` belongs to worker ``i % workers``) and draws its share of every
  batch from them;
- fewer volumes than workers: every worker reads all of them and all draw the same global
  batch, each cropping only its replicas' rows, so training equals a single-process run with
  the same global batch and seed.

Worker 0 (the ``chief`` task if the cluster has one) alone writes the run directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

from denoisekit.errors import DenoiseKitError

STRATEGIES = ("default", "mirrored", "multi-worker")


@dataclass(frozen=True)
class Task:
    """This process's place in a ``TF_CONFIG`` cluster: ``index`` counts the chief first."""

    workers: int
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def read_tf_config(text: str | None = None) -> Task:
    """Parse ``TF_CONFIG`` (the environment's unless ``text`` is given) into a :class:`Task`.

    Only ``chief`` and ``worker`` tasks train; the chief, if any, counts as worker 0.
    """
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise DenoiseKitError(
            "--strategy multi-worker needs the TF_CONFIG environment variable "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}})'
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DenoiseKitError(f"TF_CONFIG is not a valid cluster description ({exc!r})") from None
    if len(chiefs) > 1:
        raise DenoiseKitError("TF_CONFIG: a cluster has at most one chief")
    if kind not in ("chief", "worker"):
        raise DenoiseKitError(f"TF_CONFIG: task type {kind!r} cannot train (use chief or worker)")
    hosts = chiefs if kind == "chief" else workers
    if not 0 <= index < len(hosts):
        raise DenoiseKitError(f"TF_CONFIG: task index {index} is outside the {len(hosts)} {kind} address(es)")
    if not chiefs + workers:
        raise DenoiseKitError("TF_CONFIG: the cluster lists no workers")
    return Task(workers=len(chiefs) + len(workers), index=index + (len(chiefs) if kind == "worker" else 0))


@dataclass
class Distribution:
    """A strategy and what the train stage needs to know about this process's part in it."""

    name: str
    strategy: Any
    task: Task

    @property
    def is_chief(self) -> bool:
        return self.task.is_chief

    @property
    def replicas(self) -> int:
        """Replicas in sync across all workers."""
        return int(self.strategy.num_replicas_in_sync)

    @property
    def local_replicas(self) -> int:
        """Replicas on this worker (MultiWorkerMirroredStrategy needs the same on each)."""
        return self.replicas // self.task.workers

    def shards_volumes(self, count: int) -> bool:
        """Whether each worker reads only its own volumes (see the module docstring)."""
        return self.task.workers > 1 and count >= self.task.workers

    def my_share(self, items: Sequence[Any]) -> list[Any]:
        """The items this worker reads: ``items[index::workers]``."""
        return list(items[self.task.index :: self.task.workers])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.task.workers, "replicas": self.replicas}


def create(name: str | None) -> Distribution | None:
    """The distribution for ``--strategy name``; ``None`` for ``default`` (the plain loop).

    Create it before any other TensorFlow work: ``MultiWorkerMirroredStrategy`` must set up
    the cluster first, and waits for the other workers.
    """
    if name in (None, "default"):
        return None
    if name not in STRATEGIES:
        raise DenoiseKitError(f"unknown strategy {name!r} (choose from {', '.join(STRATEGIES)})")
    import tensorflow as tf

    if name == "mirrored":
        return Distribution(name, tf.distribute.MirroredStrategy(), Task(workers=1, index=0))
    task = read_tf_config()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if strategy.num_replicas_in_sync % task.workers:
        raise DenoiseKitError("every worker must have the same number of devices")
    return Distribution(name, strategy, task)


def replica_rows(batch: int, replicas: int) -> int:
    """Rows of each replica's part of a global batch of ``batch`` (an even split)."""
    if batch % replicas:
        raise DenoiseKitError(
            f"--batch-size {batch} does not split evenly across {replicas} replicas; "
            f"use a multiple of {replicas}"
        )
    return batch // replicas

"""`TF_CONFIG`: the cluster of a multi-worker run, read without TensorFlow.

`kerasgen train --strategy multi_worker` trains under `tf.distribute.MultiWorkerMirroredStrategy`,
which reads the cluster from the `TF_CONFIG` environment variable (the same recipe as
TensorFlow's own multi-worker tutorial). The CLI checks it here, before TensorFlow is imported,
so a missing or malformed `TF_CONFIG` is an argument error, not a hang or a traceback.
"""

import json
import os
import socket

# `kerasgen train --strategy`: see `kerasgen.distribute.make_strategy`.
STRATEGIES = ("none", "mirrored", "multi_worker")

RECIPE = ('set TF_CONFIG in each worker\'s environment, e.g. TF_CONFIG=\'{"cluster": {"worker": '
          '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\' (index 1 '
          'on the second worker); see the README, "Multi-worker training"')


def read_tf_config(environ=None):
    """The parsed `TF_CONFIG` of a multi-worker run: `{"cluster": {...}, "task": {...}}`.

    Raises:
        ValueError: naming what is missing or wrong, and the recipe.
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        raise ValueError(f"--strategy multi_worker needs the cluster: {RECIPE}.")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); {RECIPE}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(f"TF_CONFIG has no cluster with workers; {RECIPE}.")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(f"TF_CONFIG has no task {{\"type\", \"index\"}}; {RECIPE}.")
    members = cluster.get(task["type"])
    if not isinstance(members, list) or not (
            isinstance(task["index"], int) and 0 <= task["index"] < len(members)):
        raise ValueError(f"TF_CONFIG's task {task} is not in its cluster {cluster}; {RECIPE}.")
    return config


def is_chief(task_type, task_index, cluster):
    """Whether this task writes the run: the `chief`, or worker 0 of a cluster without one
    (TensorFlow's convention). A single-machine run (no cluster) is its own chief."""
    if not task_type:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and task_index == 0 and "chief" not in cluster


def free_loopback_ports(count):
    """`count` ports of 127.0.0.1 the OS has just handed out (closed again, for the workers of
    a loopback cluster to bind)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports

"""What a `train_step` needs to be correct under `tf.distribute`.

Keras runs `train_step` once per replica on the replica's share of the global batch, and the
optimizers *sum* gradients over replicas. So a step is correct on any number of replicas when
(1) losses are summed per example and divided by the global batch size, (2) loss trackers are
updated with per-example values (their SUM-on-read variables then give the global mean), and
(3) random draws are made for the global batch and sliced per replica, since every replica
holds the same copy of the model's `SeedGenerator`.
"""

import tensorflow as tf

from kerasgen.cluster import STRATEGIES, is_chief, read_tf_config


class ReplicaBatch:
    """The replica's place in the global batch; build one per `train_step` call."""

    def __init__(self, local_batch_size):
        context = tf.distribute.get_replica_context()
        self.local_batch_size = tf.cast(local_batch_size, tf.int32)
        if context is None:  # cross-replica context: one copy of the computation
            self.replica_id = tf.constant(0, tf.int32)
            self.global_batch_size = self.local_batch_size
        else:
            self.replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
            self.global_batch_size = context.all_reduce(
                tf.distribute.ReduceOp.SUM, self.local_batch_size
            )

    def mean(self, per_example_loss):
        """Sum over this replica's examples divided by the global batch size."""
        total = tf.reduce_sum(tf.cast(per_example_loss, tf.float32))
        return total / tf.cast(self.global_batch_size, tf.float32)

    def slice(self, global_values):
        """This replica's rows of a tensor drawn for the whole global batch."""
        start = self.replica_id * self.local_batch_size
        return global_values[start:start + self.local_batch_size]



def make_strategy(name):
    """The `tf.distribute` strategy of `kerasgen train --strategy NAME` (None for `"none"`).

    `"mirrored"`: one replica per local GPU (or the CPU). `"multi_worker"`:
    `MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG` (`kerasgen.cluster`); it must
    be created before TensorFlow runs any op, as the CLI does.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def worker_role(strategy):
    """`(is_chief, task_type, task_index)` of this process under `strategy` (None: single)."""
    resolver = None if strategy is None else strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True, None, 0
    cluster = resolver.cluster_spec().as_dict()
    return (is_chief(resolver.task_type, resolver.task_id, cluster), resolver.task_type,
            resolver.task_id)


def gather_from_replicas(strategy, value):
    """`value` (a whole number) as every replica of `strategy` has it, in replica order.

    A collective: under `MultiWorkerMirroredStrategy` every worker must call it.
    """
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([value], tf.int64))
    return strategy.gather(values, axis=0).numpy().tolist()


def step_logs(metrics):
    """What a `train_step` returns: `{tracker name: result}`.

    Under a multi-worker `MultiWorkerMirroredStrategy` each result gets a leading axis of
    length 1: Keras 3 reduces a multi-worker step's logs with `strategy.reduce("MEAN", value,
    axis=0)`, which fails on scalars (https://github.com/tensorflow/tensorflow/issues/72388);
    with the axis it averages the replicas' results and gives back a scalar.
    """
    logs = {metric.name: metric.result() for metric in metrics}
    if tf.distribute.in_cross_replica_context() or not _multi_worker(tf.distribute.get_strategy()):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def _multi_worker(strategy):
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec()
    return sum(cluster.num_tasks(job) for job in cluster.jobs) > 1

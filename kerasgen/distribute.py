"""What a `train_step` needs to be correct under `tf.distribute`.

Keras runs `train_step` once per replica on the replica's share of the global batch, and the
optimizers *sum* gradients over replicas. So a step is correct on any number of replicas when
(1) losses are summed per example and divided by the global batch size, (2) loss trackers are
updated with per-example values (their SUM-on-read variables then give the global mean), and
(3) random draws are made for the global batch and sliced per replica, since every replica
holds the same copy of the model's `SeedGenerator`.
"""

import tensorflow as tf


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


"""DCGAN training throughput: kerasgen's `fit()` against a tutorial-style GradientTape loop.

Same networks (kerasgen's builders), same data (embedded digits at 32x32), same batch size,
measured in one process. The tutorial loop is the one of TensorFlow's DCGAN tutorial
(tensorflow.org/tutorials/generative/dcgan): a `tf.function` train step with two tapes, called
from a Python loop over the dataset.

    python benchmarks/bench_dcgan_fit.py [--steps 150] [--batch-size 64] [--repeats 3] [--policy P]

Prints images/s for each and the ratio fit / loop. Not part of the test suite.
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgen.data import load_dataset  # noqa: E402
from kerasgen.models.dcgan import (  # noqa: E402
    BETA_1, LEARNING_RATE, DCGAN, build_discriminator, build_generator)

IMAGE_SHAPE = (32, 32, 1)
LATENT_DIM = 100


def networks(seed=0):
    return (build_generator(LATENT_DIM, IMAGE_SHAPE, seed=seed),
            build_discriminator(IMAGE_SHAPE, seed=seed))


def tutorial_loop_throughput(dataset, steps, batch_size):
    """images/s of the TF tutorial's training loop."""
    generator, discriminator = networks()
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    g_optimizer = keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)
    d_optimizer = keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([batch_size, LATENT_DIM])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            disc_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                         + cross_entropy(tf.zeros_like(fake_output), fake_output))
        g_optimizer.apply_gradients(zip(gen_tape.gradient(gen_loss, generator.trainable_variables),
                                        generator.trainable_variables))
        d_optimizer.apply_gradients(zip(disc_tape.gradient(disc_loss, discriminator.trainable_variables),
                                        discriminator.trainable_variables))
        return gen_loss, disc_loss

    iterator = iter(dataset)
    for _ in range(5):  # trace and warm up
        train_step(next(iterator)[0])
    start = time.perf_counter()
    for _ in range(steps):
        gen_loss, _ = train_step(next(iterator)[0])
    float(gen_loss)  # wait for the last step
    return steps * batch_size / (time.perf_counter() - start)


class _StepClock(keras.callbacks.Callback):
    """Times the steps after the first `warmup` of one `fit` call (tracing excluded)."""

    def __init__(self, warmup):
        super().__init__()
        self.warmup = warmup
        self.start = self.end = None

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def fit_throughput(dataset, steps, batch_size, steps_per_execution=1):
    """images/s of kerasgen's DCGAN.fit, timed inside one fit call after its warm-up steps."""
    generator, discriminator = networks()
    gan = DCGAN(generator, discriminator, seed=0)
    gan.compile(steps_per_execution=steps_per_execution)
    warmup = 5 * steps_per_execution
    clock = _StepClock(warmup)
    gan.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[clock])
    return steps * batch_size / (clock.end - clock.start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policy", default="float32",
                        help="Keras dtype policy for both, e.g. mixed_bfloat16")
    args = parser.parse_args()
    keras.mixed_precision.set_global_policy(args.policy)
    dataset = load_dataset("digits", batch_size=args.batch_size, image_size=32, repeat=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"DCGAN 32x32x1, latent {LATENT_DIM}, batch {args.batch_size}, {args.steps} timed steps, "
          f"best of {args.repeats}, policy {args.policy}")
    loop = max(tutorial_loop_throughput(dataset, args.steps, args.batch_size)
               for _ in range(args.repeats))
    fit = max(fit_throughput(dataset, args.steps, args.batch_size) for _ in range(args.repeats))
    print(f"tutorial GradientTape loop: {loop:8.1f} images/s")
    print(f"kerasgen DCGAN.fit:         {fit:8.1f} images/s")
    print(f"ratio fit / loop:           {fit / loop:8.2f}x")


if __name__ == "__main__":
    main()

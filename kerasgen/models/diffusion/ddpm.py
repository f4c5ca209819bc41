"""DDPM training (Ho et al. 2020, https://arxiv.org/abs/2006.11239) and its samplers: DDPM
ancestral, DDIM (Song et al. 2021, https://arxiv.org/abs/2010.02502), classifier-free
guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598) and RePaint-style inpainting
(Lugmayr et al. 2022, https://arxiv.org/abs/2201.09865), all through one `NoiseSchedule`.

Sampling is a function of the int32 seeds alone: image i starts from N(0, I) noise drawn with
the stateless seed (seeds[i], 0) and its k-th later draw uses (seeds[i], k), so an image does
not depend on the batch around it, in Keras, in the SavedModel and across runs.

Example:
    >>> model = build_ddpm((28, 28, 1), seed=0)
    >>> model.compile()
    >>> model.fit(kerasgen.data.load_dataset("mnist", batch_size=128), epochs=10)
    >>> images = model.generate(model.sample_inputs(16), num_steps=20)  # [-1, 1]
"""

import keras
import numpy as np
import tensorflow as tf

from kerasgen.data import to_uint8
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec
from kerasgen.models.base import (NestedObjects, SeededModel, SeedSampling, SingleOptimizer,
                                  check_labels, ema_folded_copy, ema_unfolded_start, seeded_draws,
                                  unpack_labelled, update_moving_average, warmed_up_decay)
from kerasgen.models.diffusion.schedule import NoiseSchedule
from kerasgen.tasks import GenerativeModel

SAMPLERS = ("ddim", "ddpm")
# Streams of the seeded draws: 0 is the starting noise; each sampler step k uses the three
# streams after it (the step's own noise, the known region's noise, RePaint's re-noising).
DRAWS_PER_STEP = 3


def seeded_normal(seeds, shape, stream):
    """N(0, I) `[N, *shape]`, row i drawn with the stateless seed (seeds[i], stream)."""
    return seeded_draws(seeds, shape, stream)


@keras.saving.register_keras_serializable(package="kerasgen")
class DDPM(SeedSampling, SingleOptimizer, GenerativeModel, NestedObjects, SeededModel):
    """Trains a denoising network with `fit` and samples it with DDPM or DDIM steps.

    Args:
        network: `keras.Model`. `[noisy_images, timesteps(, labels)]` -> eps or v (see
            `build_unet`); a `labels` input makes the model class-conditional.
        ema_network: `keras.Model`. A copy of `network` kept as the exponential moving average
            of its weights, which sampling and export use. Defaults to None (no EMA).
        schedule: str. `"cosine"` or `"linear"` (`schedule.NoiseSchedule`). Defaults to
            `"cosine"`.
        num_timesteps: int. T. Defaults to 1000.
        prediction: str. `"epsilon"` or `"v"`. Defaults to `"epsilon"`.
        ema_decay: float. Decay of the EMA, warmed up as min(decay, (1 + n) / (10 + n)) at
            step n (so that short runs average recent weights). Defaults to 0.999.
        min_snr_gamma: float. Min-SNR-gamma loss weighting (Hang et al. 2023); 0: the plain
            MSE of Ho et al. Defaults to 0.
        label_dropout: float. Conditional models: the probability that a training label is
            replaced by "no label", so that one network also learns the unconditional model
            classifier-free guidance needs (Ho & Salimans 2022, 0.1 or 0.2). Defaults to 0.1.
        sampling_steps: int. Steps of the default sampler (and of the exported `generate`).
            Defaults to 50.
        eta: float. DDIM's eta: 0 deterministic, 1 DDPM-like. Defaults to 0.
        guidance_scale: float. Default classifier-free guidance scale s of conditional
            models: eps = eps_uncond + s (eps_cond - eps_uncond); 1 is the conditional model,
            0 the unconditional one. Defaults to 1.
        clip_sample: bool. Clip each step's predicted x_0 to [-1, 1]. Defaults to True.
        seed: int. Seed of the training noise stream. Defaults to None.

    Example:
        >>> model = DDPM(build_unet((28, 28, 1)), schedule="cosine")
        >>> model.compile()
        >>> model.fit(dataset, epochs=5)

    Reference: https://arxiv.org/abs/2006.11239, https://arxiv.org/abs/2010.02502
    """

    nested = ("network", "ema_network")
    default_learning_rate = 2e-4  # Ho et al. 2020, appendix B (CIFAR-10)

    def __init__(self, network, ema_network=None, schedule="cosine", num_timesteps=1000,
                 prediction="epsilon", ema_decay=0.999, min_snr_gamma=0.0, label_dropout=0.1,
                 sampling_steps=50, eta=0.0, guidance_scale=1.0, clip_sample=True, seed=None,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.network = network
        self.ema_network = ema_network
        if ema_network is not None:
            # Set by `update_moving_average` only. Each variable too: a reloaded network's
            # attention layers build their projections after the flag, trainable.
            ema_network.trainable = False
            for variable in ema_network.variables:
                variable.trainable = False
        self.noise_schedule = NoiseSchedule(schedule, num_timesteps, prediction)
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}.")
        if not 0.0 <= label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {label_dropout}.")
        if min_snr_gamma < 0 or eta < 0:
            raise ValueError(f"min_snr_gamma and eta must be >= 0, got {min_snr_gamma}, {eta}.")
        self.noise_schedule.timesteps(sampling_steps)  # refuses a count outside [1, T]
        self.ema_decay = float(ema_decay)
        self.min_snr_gamma = float(min_snr_gamma)
        self.label_dropout = float(label_dropout)
        self.sampling_steps = int(sampling_steps)
        self.eta = float(eta)
        self.guidance_scale = float(guidance_scale)
        self.clip_sample = bool(clip_sample)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._samplers = {}
        self.built = True

    # --- what the networks say about the data -----------------------------------------------

    @property
    def image_shape(self):
        return tuple(self.network.input_shape[0][1:])

    @property
    def conditional(self):
        return len(self.network.inputs) > 2  # [noisy_images, timesteps, labels]

    @property
    def num_classes(self):
        """Labels 0 .. num_classes - 1 (conditional models); `num_classes` is "no label"."""
        if not self.conditional:
            return None
        return int(self.network.get_layer("label_embedding").input_dim) - 1

    @property
    def inference_network(self):
        """The EMA network when there is one, else the network."""
        return self.ema_network if self.ema_network is not None else self.network

    def inference_model(self):
        """A copy whose network holds the weights sampling uses (the EMA copy's, when there
        is one) and that keeps no EMA copy: a shipped model carries one network, not two."""
        return ema_folded_copy(self, "network", "ema_network")

    def start_from(self, source, description):
        """Fine-tuning from a run or a shipped model (whose network holds the EMA weights)."""
        ema_unfolded_start(self, source, "network", "ema_network", description)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    # --- training (Ho et al. 2020, algorithm 1) ---------------------------------------------

    def _unpack(self, data):
        if self.conditional:
            return unpack_labelled(data, self.name)
        return (data[0] if isinstance(data, (tuple, list)) else data), None

    def train_step(self, data):
        images, labels = self._unpack(data)
        batch = ReplicaBatch(tf.shape(images)[0])
        count = batch.global_batch_size
        schedule = self.noise_schedule

        # 1. t ~ Uniform({1, ..., T}) and eps ~ N(0, I), drawn for the global batch.
        timesteps = batch.slice(keras.random.randint(
            (count,), 0, schedule.num_timesteps, dtype="int32", seed=self.seed_generator))
        noise = batch.slice(keras.random.normal((count, *self.image_shape),
                                                seed=self.seed_generator))
        inputs = [schedule.add_noise(images, noise, timesteps), timesteps]
        if self.conditional:
            # 2. Classifier-free guidance: drop the label with probability p (Ho & Salimans
            #    2022, algorithm 1).
            dropped = batch.slice(keras.random.uniform((count,), seed=self.seed_generator))
            inputs.append(tf.where(dropped < self.label_dropout, self.num_classes, labels))

        # 3. Gradient step on || target - network(x_t, t) ||^2 (eps or v; mean per pixel).
        target = schedule.target(images, noise, timesteps)
        with tf.GradientTape() as tape:
            output = self.network(inputs, training=True)
            per_example = tf.reduce_mean(tf.square(target - output), axis=[1, 2, 3])
            per_example *= schedule.loss_weights(timesteps, self.min_snr_gamma)
            loss = batch.mean(per_example)
        gradients = tape.gradient(loss, self.network.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.network.trainable_variables))

        # 4. The EMA of the weights, which sampling uses (section 4 of the paper: decay 0.9999).
        if self.ema_network is not None:
            update_moving_average(zip(self.ema_network.weights, self.network.weights),
                                  warmed_up_decay(self.ema_decay, self.optimizer.iterations))

        self.loss_tracker.update_state(per_example)
        return step_logs(self.metrics)

    # --- sampling ------------------------------------------------------------------------------

    def _guided_output(self, network, noisy, timesteps, labels, guidance):
        """The network's output; for conditional models eps_u + s (eps_c - eps_u), both
        halves in one batch."""
        if not self.conditional:
            return network([noisy, timesteps], training=False)
        count = tf.shape(noisy)[0]
        both = network([tf.concat([noisy, noisy], 0), tf.concat([timesteps, timesteps], 0),
                        tf.concat([labels, tf.fill([count], self.num_classes)], 0)],
                       training=False)
        conditional, unconditional = both[:count], both[count:]
        return unconditional + tf.reshape(guidance, [-1, 1, 1, 1]) * (conditional - unconditional)

    def sample_loop(self, network, seeds, labels=None, guidance=None, num_steps=50, eta=0.0,
                    known=None, mask=None, resample=1):
        """Images in [-1, 1] from `num_steps` sampler steps (graph-friendly: the steps run in
        a `tf.while_loop`).

        Args:
            network: the network to sample (`inference_network`).
            seeds: int32 `[N]`. One seed per image (its starting noise and later draws).
            labels, guidance: int32 / float32 `[N]` for conditional models.
            num_steps: int. Sampler steps, from timestep T-1 down (`NoiseSchedule.timesteps`).
            eta: float. 0: DDIM; 1 with `num_steps` = T: DDPM's ancestral sampler.
            known, mask: float `[N, H, W, C]` / `[N, H, W, 1]` (1 = hole): inpainting. Outside
                the holes every step's image is `known` noised to the step's level, and the
                result is `known` exactly.
            resample: int. RePaint's resampling: each step is taken `resample` times, the
                image re-noised to the step's level in between. Defaults to 1 (none).
        """
        schedule = self.noise_schedule
        seeds = tf.cast(tf.reshape(seeds, [-1]), tf.int32)
        count = tf.shape(seeds)[0]
        timesteps = schedule.timesteps(num_steps)
        table = tf.constant(np.stack([timesteps, np.append(timesteps[1:], -1)]), tf.int32)
        images = seeded_normal(seeds, self.image_shape, 0)
        inpainting = known is not None

        def denoise_once(index, repeat, images):
            now, previous = (tf.fill([count], table[row, index]) for row in (0, 1))
            stream = 1 + DRAWS_PER_STEP * (index * resample + repeat)
            output = self._guided_output(network, images, now, labels, guidance)
            step_noise = seeded_normal(seeds, self.image_shape, stream) if eta else None
            images = schedule.step(output, images, now, previous, eta, step_noise,
                                   self.clip_sample)
            if inpainting:
                noised_known = schedule.add_noise(
                    known, seeded_normal(seeds, self.image_shape, stream + 1), previous)
                images = mask * images + (1.0 - mask) * noised_known
            if resample > 1:
                renoised = schedule.renoise(images, previous, now,
                                            seeded_normal(seeds, self.image_shape, stream + 2))
                images = tf.where(repeat < resample - 1, renoised, images)
            return images

        # The batch may be unknown at trace time (export): let the loops keep it so.
        invariants = (tf.TensorShape([]), tf.TensorShape([None, *self.image_shape]))

        def body(index, images):
            _, images = tf.while_loop(
                lambda repeat, images: repeat < resample,
                lambda repeat, images: (repeat + 1, denoise_once(index, repeat, images)),
                (tf.constant(0), images), shape_invariants=invariants)
            return index + 1, images

        _, images = tf.while_loop(lambda index, images: index < num_steps, body,
                                  (tf.constant(0), images), shape_invariants=invariants)
        return images

    def _sampler_settings(self, num_steps=None, eta=None, sampler="ddim"):
        if sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}.")
        if sampler == "ddpm":  # the ancestral sampler: every timestep, posterior variance
            if num_steps not in (None, self.noise_schedule.num_timesteps) or eta not in (None, 1):
                raise ValueError("sampler='ddpm' takes all T steps with eta = 1; set "
                                 "num_steps and eta with sampler='ddim'.")
            return self.noise_schedule.num_timesteps, 1.0
        num_steps = self.sampling_steps if num_steps is None else int(num_steps)
        self.noise_schedule.timesteps(num_steps)  # refuses a count outside [1, T]
        eta = self.eta if eta is None else float(eta)
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}.")
        return num_steps, eta

    def _compiled_sampler(self, num_steps, eta, resample=1, inpainting=False):
        key = (num_steps, eta, resample, inpainting)
        if key not in self._samplers:
            network = self.inference_network

            @tf.function(reduce_retracing=True)
            def sample(seeds, labels, guidance, known, mask):
                return self.sample_loop(
                    network, seeds, labels, guidance, num_steps, eta,
                    known if inpainting else None, mask if inpainting else None, resample)

            self._samplers[key] = sample
        return self._samplers[key]

    def _labels_and_guidance(self, count, labels=None, guidance_scale=None):
        if not self.conditional:
            if labels is not None:
                raise ValueError(f"A {self.name!r} model is unconditional; it takes no labels.")
            return tf.zeros([count], tf.int32), tf.zeros([count], tf.float32)
        if labels is None:
            raise ValueError(f"A {self.name!r} model is class-conditional: pass labels "
                             f"(0 .. {self.num_classes - 1}).")
        labels = check_labels(labels, count, self.num_classes)
        scale = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        return labels, tf.fill([count], scale)

    def _split_inputs(self, inputs):
        if self.conditional:
            if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
                raise ValueError("A class-conditional model generates from (seeds, labels).")
            return inputs
        return inputs, None

    def generate(self, inputs, num_steps: int = None, eta: float = None,
                 guidance_scale: float = None, sampler: str = "ddim"):
        """Images in [-1, 1] for what `sample_inputs` returns.

        Args:
            num_steps: int. Sampler steps. Defaults to the model's `sampling_steps`.
            eta: float. DDIM's eta. Defaults to the model's `eta`.
            guidance_scale: float. Conditional models' guidance scale. Defaults to the
                model's.
            sampler: str. `"ddim"` (`num_steps`, `eta`) or `"ddpm"` (ancestral: all T steps,
                eta = 1). Defaults to `"ddim"`.
        """
        seeds, labels = self._split_inputs(inputs)
        seeds = tf.cast(tf.reshape(seeds, [-1]), tf.int32)
        count = int(seeds.shape[0])
        labels, guidance = self._labels_and_guidance(count, labels, guidance_scale)
        num_steps, eta = self._sampler_settings(num_steps, eta, sampler)
        empty = tf.zeros([0], tf.float32)
        return self._compiled_sampler(num_steps, eta)(seeds, labels, guidance, empty, empty)

    def inpaint(self, images, masks, seeds=None, labels=None, num_steps=None, eta=None,
                guidance_scale=None, resample=1):
        """Fill the holes of images with the model (RePaint-style, Lugmayr et al. 2022).

        Args:
            images: float `[N, H, W, C]` in [-1, 1] (hole pixels are ignored).
            masks: `[N, H, W, 1]` (or `[N, H, W]`), 1 (or True) = hole.
            seeds: int32 `[N]`. Defaults to 0 .. N-1.
            labels: int32 `[N]` for conditional models.
            num_steps, eta, guidance_scale: see `generate`.
            resample: int. RePaint's resampling per step (10 in the paper). Defaults to 1.

        Returns:
            float32 `[N, H, W, C]` in [-1, 1]; outside the holes exactly `images`.
        """
        images = tf.convert_to_tensor(images, tf.float32)
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"The model inpaints images of shape {self.image_shape}, got "
                             f"{tuple(images.shape[1:])}.")
        masks = tf.cast(tf.convert_to_tensor(masks), tf.float32)
        if masks.shape.rank == 3:
            masks = masks[..., None]
        if tuple(masks.shape) != (*images.shape[:3], 1):
            raise ValueError(f"Masks must be [N, H, W, 1] like the images {tuple(images.shape)}, "
                             f"got {tuple(masks.shape)}.")
        if int(resample) < 1:
            raise ValueError(f"resample must be at least 1, got {resample}.")
        count = int(images.shape[0])
        seeds = tf.range(count, dtype=tf.int32) if seeds is None else \
            tf.cast(tf.reshape(seeds, [-1]), tf.int32)
        labels, guidance = self._labels_and_guidance(count, labels, guidance_scale)
        num_steps, eta = self._sampler_settings(num_steps, eta)
        sample = self._compiled_sampler(num_steps, eta, int(resample), inpainting=True)
        return sample(seeds, labels, guidance, images, masks)

    # --- export ------------------------------------------------------------------------------

    def serving_spec(self):
        """Signatures `denoise` (the network; TFLite converts it: the app runs the
        scheduler) and `generate` (seeds -> uint8 images, the whole DDIM loop of
        `sampling_steps` steps inside the graph; it also returns `sampling_steps`)."""
        network = self.inference_network
        num_steps, eta = self.sampling_steps, self.eta
        image_spec = tf.TensorSpec([None, *self.image_shape], tf.float32, name="noisy_images")
        row = tf.TensorSpec([None], tf.int32, name="timesteps")

        def steps_of(seeds):
            return tf.fill(tf.shape(tf.reshape(seeds, [-1])), num_steps)

        if self.conditional:
            def denoise(noisy_images, timesteps, labels):
                return {"prediction": network([noisy_images, timesteps, labels],
                                              training=False)}

            def generate(seeds, labels, guidance):
                images = self.sample_loop(network, seeds, labels, guidance, num_steps, eta)
                return {"images": to_uint8(images), "sampling_steps": steps_of(seeds)}

            label_spec = tf.TensorSpec([None], tf.int32, name="labels")
            endpoints = {
                "denoise": (denoise, [image_spec, row, label_spec]),
                "generate": (generate, [tf.TensorSpec([None], tf.int32, name="seeds"),
                                        label_spec,
                                        tf.TensorSpec([None], tf.float32, name="guidance")]),
            }
        else:
            def denoise(noisy_images, timesteps):
                return {"prediction": network([noisy_images, timesteps], training=False)}

            def generate(seeds):
                images = self.sample_loop(network, seeds, None, None, num_steps, eta)
                return {"images": to_uint8(images), "sampling_steps": steps_of(seeds)}

            endpoints = {
                "denoise": (denoise, [image_spec, row]),
                "generate": (generate, [tf.TensorSpec([None], tf.int32, name="seeds")]),
            }
        return ServingSpec(networks=[network], endpoints=endpoints, default="generate",
                           tflite="denoise", quantizations=("none", "float16", "dynamic"))

    def representative_inputs(self, num_batches=32, batch_size=8, seed=0):
        """Inputs of `denoise`: noise-level images of random timesteps (and labels)."""
        rng = np.random.default_rng(seed)
        for _ in range(num_batches):
            images = rng.standard_normal((batch_size, *self.image_shape)).astype(np.float32)
            timesteps = rng.integers(0, self.noise_schedule.num_timesteps, batch_size,
                                     dtype=np.int32)
            inputs = [images, timesteps]
            if self.conditional:
                inputs.append(rng.integers(0, self.num_classes + 1, batch_size, dtype=np.int32))
            yield inputs

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": keras.saving.serialize_keras_object(self.network),
            "ema_network": (None if self.ema_network is None
                            else keras.saving.serialize_keras_object(self.ema_network)),
            **{key: value for key, value in self.noise_schedule.get_config().items()
               if key != "kind"},
            "schedule": self.noise_schedule.kind,
            "ema_decay": self.ema_decay,
            "min_snr_gamma": self.min_snr_gamma,
            "label_dropout": self.label_dropout,
            "sampling_steps": self.sampling_steps,
            "eta": self.eta,
            "guidance_scale": self.guidance_scale,
            "clip_sample": self.clip_sample,
        })
        return config

"""What every kerasgen training wrapper shares: a seeded random stream that survives `.keras`."""

import keras
import tensorflow as tf

from kerasgen.distribute import ReplicaBatch, step_logs

SEED_STATE_KEY = "seed_generator_state"


class SeededModel(keras.Model):
    """A `keras.Model` holding a `SeedGenerator` whose state is saved with the model.

    Keras saves a layer's own variables but not the state of the `SeedGenerator`s it holds,
    so a reloaded or resumed model would replay the random draws of its first steps.

    Args:
        seed: int. Seed of the model's random stream. Defaults to None (random).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[SEED_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if SEED_STATE_KEY in keys:
            self.seed_generator.state.assign(store[SEED_STATE_KEY])
        super().load_own_variables({key: store[key] for key in keys if key != SEED_STATE_KEY})

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


def ema_folded_copy(model, network, ema_network):
    """For `inference_model`: a copy of `model` without its EMA network (the attribute and
    config key `ema_network`) whose `network` holds the weights sampling uses (the EMA's when
    there is one); its other networks and its random stream as in `model`."""
    copy = model.__class__.from_config({**model.get_config(), ema_network: None})
    ema = getattr(model, ema_network)
    copy_layer_weights(model, copy, "the trained model",
                       {getattr(copy, network).name: ema} if ema is not None else None)
    copy.seed_generator.state.assign(model.seed_generator.state)
    return copy


def ema_unfolded_start(model, source, network, ema_network, description):
    """For `start_from`: `model`'s networks from `source`'s namesakes, where `source` is a run
    (its EMA network, if any, as it was) or a model shipped by `ema_folded_copy` (no EMA
    network: its `network` holds the EMA weights, and the EMA network starts from them too)."""
    ema = getattr(model, ema_network)
    folded = ema is not None and getattr(source, ema_network, None) is None
    copy_layer_weights(source, model, description,
                       {ema.name: getattr(source, network)} if folded else None)


def copy_layer_weights(source, target, source_description, overrides=None):
    """Set every layer of the wrapper `target` that has weights (its networks) to the weights
    of the same-named layer of the wrapper `source` (`overrides`: `{target layer name: source
    layer}`). A layer that `source` lacks, or holds in other shapes, is refused by name before
    any weight is set."""
    sources = {layer.name: layer for layer in source.layers} | dict(overrides or {})
    pairs = []
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in sources:
            raise ValueError(
                f"{source_description} holds no {layer.name!r} network (it has "
                f"{', '.join(sorted(sources)) or 'none'}); start from a model of the same kind "
                "and options.")
        shapes = [tuple(weight.shape) for weight in layer.weights]
        found = [tuple(weight.shape) for weight in sources[layer.name].weights]
        if shapes != found:
            raise ValueError(
                f"{source_description}'s {layer.name!r} network has other weight shapes than "
                f"this model's ({len(found)} weights {found[:3]}... vs {len(shapes)} weights "
                f"{shapes[:3]}...); start from a model built with the same options.")
        pairs.append((layer, sources[layer.name]))
    for layer, source_layer in pairs:
        layer.set_weights(source_layer.get_weights())


class NestedObjects:
    """`from_config` of a wrapper whose constructor takes Keras objects (its networks, its
    degradation layer): the config keys named in `nested` are deserialized first (None, an
    optional object left out, stays None)."""

    nested = ()

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls.nested:
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


class Optimizers:
    """The one optimizer convention of kerasgen wrappers: every optimizer is built at
    `compile` (so `.keras` restores its moments), saved in the compile config, and listed by
    `schedule_optimizers()`, which learning-rate schedules set."""

    def schedule_optimizers(self):
        raise NotImplementedError


def optimizers_of(model):
    """The optimizers a learning-rate schedule sets: a wrapper's, or a plain model's one."""
    return model.schedule_optimizers() if isinstance(model, Optimizers) else [model.optimizer]


class SingleOptimizer(Optimizers):
    """`compile(optimizer=None)` of a wrapper trained by one optimizer, saved with the model.

    Subclasses set `default_learning_rate` (Adam's, when no optimizer is passed).
    """

    default_learning_rate = 1e-3

    def default_optimizer(self):
        """The optimizer `compile` makes when given none: Adam at `default_learning_rate`."""
        return keras.optimizers.Adam(self.default_learning_rate)

    def compile(self, optimizer=None, **kwargs):
        """Configure training.

        Args:
            optimizer: `keras.optimizers.Optimizer`. Defaults to the family's
                `default_optimizer()` (Adam at `default_learning_rate`, 1e-3).
        """
        optimizer = optimizer or self.default_optimizer()
        super().compile(optimizer=optimizer, **kwargs)
        # Built now so that `.keras` loading finds its slots and restores its moments.
        self.optimizer.build(self.trainable_variables)

    def schedule_optimizers(self):
        return [self.optimizer]

    def get_compile_config(self):
        if getattr(self, "optimizer", None) is None:  # not compiled: an inference model
            return None
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.saving.deserialize_keras_object(config["optimizer"]))


def seeded_draws(seeds, shape, stream=0, distribution="normal"):
    """`[N, *shape]` draws, row i made with the stateless seed (seeds[i], stream) alone, so a
    seed gives the same draw whatever the batch around it.

    Args:
        seeds: int32 `[N]`.
        shape: tuple. The shape of one row.
        stream: int or int32 scalar tensor. Separates the draws of one seed.
        distribution: str. `"normal"` (N(0, 1)) or `"uniform"` ([0, 1)).
    """
    draw = {"normal": tf.random.stateless_normal,
            "uniform": tf.random.stateless_uniform}[distribution]
    stream = tf.cast(stream, tf.int32)
    return tf.map_fn(lambda seed: draw(shape, seed=tf.stack([seed, stream])),
                     tf.cast(tf.reshape(seeds, [-1]), tf.int32),
                     fn_output_signature=tf.TensorSpec(shape, tf.float32))


def latents_from_seeds(seeds, latent_dim):
    """One deterministic N(0, 1) latent vector per int32 seed, whatever the batch around it."""
    return seeded_draws(seeds, [latent_dim])


class LatentSampling:
    """Sampling inputs of models that decode z ~ N(0, I) (GANs, VAEs); needs `latent_dim`."""

    def _check_latents(self, latents):
        shape = tuple(latents.shape)
        if len(shape) != 2 or shape[-1] != self.latent_dim:
            raise ValueError(
                f"Latent vectors must have shape [batch, {self.latent_dim}], got {list(shape)}.")

    def sample_inputs(self, num_images, seed=0):
        """Latent vectors for seeds `seed .. seed + num_images - 1` (as the export signature)."""
        return latents_from_seeds(tf.range(seed, seed + num_images), self.latent_dim)


class SeedSampling:
    """Sampling inputs of models that draw everything from int32 seeds (diffusion,
    autoregressive models); needs `conditional` and, if set, `num_classes`."""

    def sample_inputs(self, num_images, seed=0):
        """Seeds `seed .. seed + num_images - 1` (and labels cycling 0 .. num_classes - 1)."""
        seeds = tf.range(seed, seed + num_images, dtype=tf.int32)
        if self.conditional:
            return seeds, tf.range(num_images, dtype=tf.int32) % self.num_classes
        return seeds


def unpack_labelled(data, model_name):
    """`(images, int32 labels)` from a `fit` batch of a class-conditional model."""
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError(
            f"{model_name} trains on (images, labels) batches; load data with labels, e.g. "
            "load_dataset('mnist', with_labels=True).")
    return data[0], tf.cast(tf.reshape(data[1], [-1]), tf.int32)


def check_labels(labels, count, num_classes):
    """int32 `[count]` labels, refused unless integers in [0, num_classes - 1], one per input."""
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
        raise ValueError(f"Labels must be integers, got {labels.dtype.name}.")
    if int(tf.size(labels)) != count:
        raise ValueError(f"{count} inputs but {int(tf.size(labels))} labels.")
    if count and (int(tf.reduce_min(labels)) < 0 or int(tf.reduce_max(labels)) >= num_classes):
        raise ValueError(f"Labels must be in [0, {num_classes - 1}], got values from "
                         f"{int(tf.reduce_min(labels))} to {int(tf.reduce_max(labels))}.")
    return tf.cast(tf.reshape(labels, [-1]), tf.int32)


class NetworkOptimizers(Optimizers):
    """`compile()` of a wrapper with one optimizer per network, all saved with the model.

    Subclasses list their networks' attribute names in `optimized_networks`; network `name`
    is trained by the optimizer `<name>_optimizer` (or the attribute `optimizer_names` maps it
    to), which `compile` defaults to `default_optimizer(network)`. Learning-rate schedules set
    all of them (`schedule_optimizers`).
    """

    optimized_networks = ()
    optimizer_names = {}  # network -> optimizer attribute, where not `<network>_optimizer`

    def default_optimizer(self, network):
        raise NotImplementedError

    def _optimizer_attributes(self):
        return {network: self.optimizer_names.get(network, f"{network}_optimizer")
                for network in self.optimized_networks}

    def compile(self, **optimizers):
        """Configure training: one optimizer per network (see `optimized_networks`); any not
        given defaults to the family's (`default_optimizer`)."""
        attributes = self._optimizer_attributes()
        unknown = sorted(set(optimizers) - set(attributes.values()))
        if unknown:
            raise ValueError(f"Unknown compile arguments {unknown}; valid: "
                             f"{list(attributes.values())}.")
        super().compile(optimizer=None)
        for network, name in attributes.items():
            optimizer = optimizers.get(name) or self.default_optimizer(network)
            # Built now so that `.keras` loading finds its slots and restores its moments.
            optimizer.build(getattr(self, network).trainable_variables)
            setattr(self, name, optimizer)

    def schedule_optimizers(self):
        return [getattr(self, name) for name in self._optimizer_attributes().values()]

    def get_compile_config(self):
        attributes = self._optimizer_attributes()
        if getattr(self, next(iter(attributes.values())), None) is None:
            return None  # not compiled: an inference model
        return {name: keras.saving.serialize_keras_object(getattr(self, name))
                for name in attributes.values()}

    def compile_from_config(self, config):
        self.compile(**{name: keras.saving.deserialize_keras_object(value)
                        for name, value in config.items()})


class ELBOTraining:
    """The steps of a latent-variable model trained on a per-example negative ELBO (VAEs,
    DRAW), with trackers `loss`, `reconstruction` and `kl` in nats per image.

    Subclasses implement `_unpack(data)` -> `(images, labels or None)`, `_targets(images,
    batch)` (what the likelihood scores) and `_objective(targets, labels, batch, training)` ->
    per-example `(loss, reconstruction, kl)`, and call `_create_trackers()` in `__init__`.
    """

    def _create_trackers(self):
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _step(self, data, training):
        images, labels = self._unpack(data)
        batch = ReplicaBatch(tf.shape(images)[0])
        targets = self._targets(images, batch)
        # Evaluation (test_step) records no gradient tape.
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            loss, reconstruction, kl = self._objective(targets, labels, batch, training)
            mean_loss = batch.mean(loss)
        if training:
            gradients = tape.gradient(mean_loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        # Per-example trackers: their SUM-on-read totals give global means.
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return step_logs(self.metrics)

    def train_step(self, data):
        return self._step(data, training=True)

    def test_step(self, data):
        return self._step(data, training=False)


def update_moving_average(pairs, decay):
    """average <- decay * average + (1 - decay) * weight for `(average, weight)` variable
    pairs; under `tf.distribute` every replica's copy is updated (cross-replica), as Keras'
    optimizers update their own EMA."""
    pairs = [(average.value, weight.value) for average, weight in pairs]

    def update(strategy, pairs):
        for average, weight in pairs:
            strategy.extended.update(
                average, lambda a, w: a.assign(decay * a + (1.0 - decay) * w), args=(weight,),
                group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(update, tf.distribute.get_strategy(),
                                                        pairs)


def warmed_up_decay(decay, iterations):
    """An EMA's decay after `iterations` optimizer steps: min(decay, (1 + n) / (10 + n)), so
    the first steps' average is not held at the initial weights (the warm-up of TensorFlow's
    `ExponentialMovingAverage(num_updates=...)`)."""
    step = tf.cast(iterations, tf.float32)
    return tf.minimum(decay, (1.0 + step) / (10.0 + step))

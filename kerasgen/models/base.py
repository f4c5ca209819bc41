"""What every kerasgen training wrapper shares: a seeded random stream that survives `.keras`."""

import keras

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

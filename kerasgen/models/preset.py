"""`ModelPreset`: how the registry, the CLI and `kerasgen.training` build and train a family."""

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class ModelPreset:
    """A registered model: its builder and the defaults of `kerasgen train NAME`.

    Args:
        name: str. The registry name.
        description: str. One line for `kerasgen list`.
        build: callable. `build(image_shape, seed=..., **model_kwargs)` -> uncompiled model.
        model_kwargs: dict. Keyword arguments of `build` for this preset.
        dataset: str. Default dataset name.
        image_size: int. Default image size the data is resized to (None: native).
        epochs: int. Default number of epochs.
        batch_size: int. Default batch size.
        uses_labels: bool. Trains on `(images, labels)`; `build` gets `num_classes`.
        generative: bool. Samples, sample grids and generator export apply. Defaults to True.
        compile: callable. `compile(model)`; defaults to `model.compile()` (the family's
            paper defaults).
        make_data: callable. `make_data(model, dataset, batch_size, seed=, data_dir=)` -> an
            endless `tf.data.Dataset`, for families that train on something other than
            whole images (e.g. restoration patches). Defaults to None: `load_arrays`.
        steps_per_epoch: int. Default batches per epoch (needed with `make_data`).
        learning_rate_schedule: callable. `schedule(epochs=N)` -> a callback setting the
            learning rate per epoch (e.g. a partial of `kerasgen.callbacks.StepDecay` or
            `LinearDecay`). Defaults to None (the optimizers' own rates throughout).
        after_training: callable. `after_training(model, run_dir, config, data_dir)` -> dict
            of figure name -> PNG path, written after `fit` (e.g. translations of test
            images). Defaults to None.
        options: tuple of str. `model_kwargs` a user may override (CLI: `--sigma`, `--scale`).
    """

    name: str
    description: str
    build: Callable
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    dataset: str = "digits"
    image_size: int = None
    epochs: int = 10
    batch_size: int = 64
    uses_labels: bool = False
    generative: bool = True
    compile: Callable = None
    make_data: Callable = None
    steps_per_epoch: int = None
    options: tuple = ()
    learning_rate_schedule: Callable = None
    after_training: Callable = None

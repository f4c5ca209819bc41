"""`ModelPreset`: a registered model's task, builder and the defaults of `kerasgen train NAME`.

Every hyperparameter is defined once, as a keyword argument of the builder (or of the classes
the builder forwards its `**kwargs` to, see `forwards_kwargs`); a preset only overrides some in
`model_kwargs`, and the CLI derives its model flags (`--sigma`, `--scale`, `--latent-dim`, ...)
from those signatures with `model_options`.
"""

import dataclasses
import inspect
from typing import Callable

# Builder arguments that the run (or another option, e.g. `color`) sets: never model options.
RUN_ARGUMENTS = ("image_shape", "seed", "num_classes", "name", "channels", "size_multiple")
OPTION_TYPES = (int, float, str, bool)


@dataclasses.dataclass(frozen=True)
class ModelPreset:
    """A registered model: its task, its builder and the defaults of `kerasgen train NAME`.

    Args:
        name: str. The registry name.
        description: str. One line for `kerasgen list`.
        task: a `kerasgen.tasks.Task`: the kind of work (generation, image-to-image,
            classification), which decides how the model is trained, applied and evaluated.
        build: callable. `build([image_shape,] seed=..., **model_kwargs)` -> uncompiled model.
            Takes `image_shape` when the training image size matters to the model.
        model_kwargs: dict. The preset's overrides of the builder's defaults.
        dataset: str. Default dataset name (see `kerasgen.data.catalog`).
        image_size: int. Default image size the preset's own dataset is resized or cropped to
            (None: native).
        epochs: int. Default number of epochs.
        batch_size: int. Default batch size.
        steps_per_epoch: int. Default batches per epoch (None: one pass over the data).
        compile: callable. `compile(model)`; defaults to `model.compile()` (the family's
            paper defaults).
        learning_rate_schedule: callable. `schedule(epochs=N)` -> a callback setting the
            learning rate per epoch (e.g. a partial of `kerasgen.callbacks.StepDecay` or
            `LinearDecay`). Defaults to None (the optimizers' own rates throughout).
    """

    name: str
    description: str
    task: object
    build: Callable
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    dataset: str = "digits"
    image_size: int = None
    epochs: int = 10
    batch_size: int = 64
    steps_per_epoch: int = None
    compile: Callable = None
    learning_rate_schedule: Callable = None

    @property
    def takes_image_size(self):
        """Whether the builder sizes the model from the training images (`image_shape`)."""
        return "image_shape" in inspect.signature(self.build).parameters

    def options(self):
        """`{name: Option}` of every model option (see `model_options`)."""
        return model_options(self.build, self.model_kwargs)

    def check_options(self, options):
        """The user's option overrides (None values dropped), refused where unknown."""
        options = {key: value for key, value in (options or {}).items() if value is not None}
        valid = self.options()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"{self.name} takes no {', '.join(unknown)} option; its options: "
                             f"{', '.join(sorted(valid)) or 'none'}.")
        return options


@dataclasses.dataclass(frozen=True)
class Option:
    """A model option: its type (None: Python API only, no CLI flag), default and help."""

    name: str
    type: type
    default: object

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")


def forwards_kwargs(sources):
    """Mark a builder whose `**kwargs` are keyword arguments of other callables.

    `sources(model_kwargs)` returns those callables (e.g. the network builder the preset's
    `architecture` picks), so that `model_options` lists their parameters too.
    """
    def mark(builder):
        builder.kwargs_sources = sources
        return builder
    return mark


def _option_type(parameter):
    annotation = parameter.annotation
    if annotation in OPTION_TYPES:
        return annotation
    if type(parameter.default) in OPTION_TYPES:
        return type(parameter.default)
    return None


def callable_options(function, skip=RUN_ARGUMENTS):
    """`{name: Option}` of the keyword parameters of `function` (a function or a class)."""
    parameters = inspect.signature(function).parameters
    return {
        name: Option(name, _option_type(parameter), parameter.default)
        for name, parameter in parameters.items()
        if name not in skip and name != "self" and parameter.default is not inspect.Parameter.empty
        and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    }


def model_options(build, model_kwargs=None):
    """Every option of a builder: its keyword parameters, then those of the callables its
    `**kwargs` go to (`forwards_kwargs`). The preset's `model_kwargs` become the defaults."""
    options = callable_options(build)
    for source in getattr(build, "kwargs_sources", lambda kwargs: ())(model_kwargs or {}):
        for name, option in callable_options(source).items():
            options.setdefault(name, option)
    return {name: dataclasses.replace(option, default=(model_kwargs or {}).get(name,
                                                                            option.default))
            for name, option in options.items()}

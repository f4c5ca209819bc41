"""Task contracts: one small interface per kind of work, so a new family is one module.

A family's training wrapper implements the contract of its kind of work:

- `GenerativeModel` (GANs, VAEs, diffusion, PixelCNN, DRAW): `sample_inputs`,
  `generate`, optionally `figures`, a log-likelihood and an animation.
- `ImageToImageModel` (denoising, super-resolution, translation; next inpainting and
  enhancement): `apply` to uint8 images of any size, `training_data`, `benchmark`.
- `FrameForecaster` (the ConvLSTM video forecaster): `forecast` the next frames of uint8
  sequences, `benchmark` on generated Moving MNIST test sequences.
- classification: a plain compiled `keras.Model` on `(images, labels)` (the domain classifiers).

A `Task` owns what follows from the kind of work: its training data, callbacks and figures,
its CLI verb (`sample`, `apply`) and its evaluator. `kerasgen.training.train`, `kerasgen
evaluate` and the CLI dispatch on the preset's task (`ModelPreset.task`) or, for a loaded
model, on the contract it implements (`task_of`), never on model names or flags.
"""

from pathlib import Path

import numpy as np

# --- the contracts -------------------------------------------------------------------------


def copy_with_weights(model):
    """A new model of `model`'s class and config holding `model`'s weights (not its optimizer
    or compile settings)."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


class GenerativeModel:
    """The generation contract.

    Implement `sample_inputs(num_images, seed)` (what `generate` takes; the export's inputs)
    and `generate(inputs)` (images in [-1, 1]); keyword options of `generate` (a diffusion
    model's `num_steps`) become flags of `kerasgen sample` and `kerasgen evaluate`.
    Optional: `figures` (extra grids beside the
    samples), `log_likelihood_report` (models with a likelihood set `has_likelihood`),
    `animation` (models that draw in steps set `animates`; `kerasgen sample` writes a GIF) and
    `conditional` (True for models that take labels: they have `num_classes`, and their
    `sample_inputs` are `(inputs, labels)` with labels cycling through the classes).
    """

    conditional = False
    has_likelihood = False
    animates = False
    # Samples drawn after every training epoch (a PixelCNN pays one network pass per pixel).
    epoch_samples = 64

    def sample_inputs(self, num_images, seed=0):
        raise NotImplementedError

    def generate(self, inputs):
        raise NotImplementedError

    def figures(self, images, labels=None, seed=0):
        """`{name: (uint8 images, columns)}` of grids beyond the samples; none by default."""
        del images, labels, seed
        return {}

    def animation(self, inputs):
        """uint8 frames `[T, N, H, W, C]` of how the samples for `inputs` are drawn (models
        that set `animates`)."""
        raise ValueError(f"A {self.name!r} model draws its samples in one step; it has no "
                         "animation.")

    def start_from(self, source, description):
        """Fine-tuning: set this new model's networks to those of `source` (a run or a shipped
        model, see `kerasgen.store.load_model`). By default every network from its namesake;
        a model with training-only copies (an EMA generator) also starts them from what a
        shipped model folded them into."""
        from kerasgen.models.base import copy_layer_weights

        copy_layer_weights(source, self, description)

    def inference_model(self):
        """A new model that samples as this one does and holds no more than sampling needs
        (what `kerasgen.store.ship_model` writes): by default a copy with the same weights;
        a model with training-only copies of its networks (a GAN's generator beside its EMA
        copy) leaves them out."""
        return copy_with_weights(self)

    def representative_inputs(self, num_batches=32, batch_size=8, seed=0):
        """Inputs of the TFLite endpoint (int8 calibration, parity checks): batches of
        `sample_inputs`, for models whose TFLite endpoint takes what `generate` takes (the
        noise; models whose endpoint takes more, or other inputs, override it)."""
        for index in range(num_batches):
            yield [self.sample_inputs(batch_size, seed=seed + index * batch_size).numpy()]

    def as_samples(self, images, seed=0):
        """Real uint8 images as this model's samples are (what FD/KID/score compare them
        with): unchanged by default; a model of binary images binarises them."""
        del seed
        return images

    def log_likelihood_report(self, images, labels=None, num_samples=None, seed=0):
        """`{"nll", "bits_per_dim", "num_images"}` in nats, with `"negative_elbo"` and
        `"num_samples"` for an importance-sampled estimate (k = `num_samples`, None: the
        model's default), or `"exact": True`."""
        raise ValueError(f"A {self.name!r} model has no likelihood; --metric nll is for "
                         "likelihood models (the VAE family, PixelCNN); use fd, kid or score.")


class FrameForecaster:
    """The frame-forecasting (video prediction) contract.

    Implement the properties `num_input_frames`, `num_output_frames`, `frame_size` and
    `channels`, and `forecast(frames)` (uint8 `[N, num_input_frames, size, size, channels]`
    -> uint8 `[N, num_output_frames, size, size, channels]`). Training data and the benchmark
    are moving digits (`kerasgen.data.moving_mnist`) generated from the run's dataset, so a
    forecaster needs nothing else; `benchmark`'s keyword options become flags of `kerasgen
    evaluate`.
    """

    @property
    def num_frames(self):
        """Frames of a training or test sequence: the inputs and the frames to forecast."""
        return self.num_input_frames + self.num_output_frames

    def forecast(self, frames):
        raise NotImplementedError

    def test_sequences(self, num_sequences, dataset="mnist", data_dir=None, seed=0):
        """uint8 Moving MNIST test sequences `[N, num_frames, size, size, 1]` from the test
        digits of `dataset`; seed 0 (the default) is the benchmark's set."""
        from kerasgen.data.moving_mnist import load_moving_mnist

        return load_moving_mnist("test", num_sequences, data_dir, seed=seed, dataset=dataset,
                                 num_frames=self.num_frames, size=self.frame_size)

    def benchmark(self, dataset="mnist", data_dir=None, seed=0, num_sequences: int = 1000):
        """Per-frame MSE (summed over the frame, intensities in [0, 1]: the papers'
        convention) and SSIM of `forecast` over `num_sequences` generated test sequences,
        beside the copy-last-frame baseline; a report whose `lines` print it."""
        from kerasgen.evaluation import forecast_report

        if int(num_sequences) < 1:
            raise ValueError(f"num_sequences must be at least 1, got {num_sequences}.")
        return forecast_report(self, self.test_sequences(num_sequences, dataset, data_dir,
                                                         seed), dataset, seed)


class ImageToImageModel:
    """The image-to-image contract.

    Implement `apply(images, **options)` (uint8 `[N, H, W, C]` or HWC of any size -> uint8
    NHWC), `check_images`, `training_data(dataset, batch_size, seed, data_dir, start_batch)` and
    `benchmark(dataset, data_dir=None, seed=0, **options)` (a report whose `lines` print it;
    Keras' own `evaluate` keeps its meaning). The keyword options of `apply` and `benchmark`
    (e.g. `sigma`, `direction`) become the CLI flags of `kerasgen apply` and `kerasgen
    evaluate`. Optional: `check_apply_options`,
    `read_image`, `read_inputs` (per-file inputs beside the image), `recompute_batch_norm`
    and `training_figures`.
    """

    def apply(self, images, **options):
        raise NotImplementedError

    def check_images(self, images):
        raise NotImplementedError

    def check_apply_options(self, **options):
        """The options `apply` will get, checked before any file is read."""
        return options

    def read_image(self, path):
        """A file as a uint8 HxWxC array this model can apply to (checked)."""
        from kerasgen.data.sources import decode_image_file

        return self.check_images(decode_image_file(path))[0]

    def read_inputs(self, path, **options):
        """`(image, options for this file)`: what `apply` gets for one input file. Models
        whose inputs come in several files (an inpainter's mask) pair them here."""
        return self.read_image(path), options

    def training_data(self, dataset, batch_size, seed=0, data_dir=None, start_batch=0):
        """An endless `tf.data.Dataset` of training batches, a function of the seed and the
        batch index alone, starting at batch `start_batch` (exact resume)."""
        raise NotImplementedError

    def recompute_batch_norm(self, dataset, batch_size, seed=0, data_dir=None):
        """Set batch norms' moving statistics to their population statistics on training
        batches (`kerasgen.layers.recompute_batch_norm_statistics`), without touching the
        training stream; returns the batches used (0: nothing to do, the default)."""
        del dataset, batch_size, seed, data_dir
        return 0

    def training_figures(self, run_dir, dataset, data_dir=None):
        """`{name: png path}` written after training; none by default."""
        del run_dir, dataset, data_dir
        return {}

    def benchmark(self, dataset, data_dir=None, seed=0):
        raise NotImplementedError


def apply_files(model, paths, out_dir, overwrite=False, on_written=None, **options):
    """Apply an image-to-image model to files of any size, into `out_dir` as PNGs with the
    same stems. Options are checked and every input is read and checked before anything is
    written; existing files are kept unless `overwrite`. Returns the written paths."""
    from kerasgen.data import map_image_files

    options = model.check_apply_options(**options)
    return map_image_files(lambda inputs: model.apply(inputs[0], **inputs[1])[0], paths,
                           out_dir, read=lambda path: model.read_inputs(path, **options),
                           overwrite=overwrite, on_written=on_written)


# --- the tasks -----------------------------------------------------------------------------


class Task:
    """What training, the CLI and evaluation do for one kind of work.

    Attributes:
        name: str. The kind of work.
        verb: str. The CLI verb that uses a trained model (None: none).
        exports: bool. Whether runs export a SavedModel and TFLite files.
    """

    name = None
    verb = None
    exports = True

    def check_config(self, preset, config):
        """Refuse settings this kind of model cannot use (nothing is written before)."""

    def load(self, preset, config, data_dir):
        """What building and training need from the data, before the model exists."""
        return None

    def build(self, preset, config, source, model_kwargs, seed):
        raise NotImplementedError

    def training_data(self, model, config, source, data_dir, initial_epoch=0):
        """`(endless dataset, steps per epoch)`, the dataset starting at `initial_epoch`."""
        raise NotImplementedError

    def callbacks(self, model, run_dir, config, source, data_dir=None):
        return []

    def finish(self, result, config, source, data_dir):
        """Write the run's figures and metrics into `result` after `fit`."""

    def inference_model(self, model):
        """What `kerasgen.store.ship_model` writes of a trained `model`: a copy with its
        weights, without optimizer state."""
        return copy_with_weights(model)

    def start_from(self, model, source, description):
        """Fine-tuning: set the new `model`'s networks to those of `source` (a run or a
        shipped model of the same kind), each from its namesake."""
        from kerasgen.models.base import copy_layer_weights

        copy_layer_weights(source, model, description)

    # `kerasgen sample` (tasks whose verb is "sample"): how many samples by default, the
    # model's own flags, and the files written.
    default_samples = 64

    def sample_options(self, model):
        """`{name: Option}` of the flags `kerasgen sample` takes for `model`."""
        return {}

    def sample_files(self, model, source, out, num_samples, seed=0, data_dir=None, **options):
        """Write `model`'s samples (`source`: its run folder or shipped name) to the PNG path
        `out` and beside it; returns the paths written."""
        raise NotImplementedError


class LabelledImages(Task):
    """Tasks that train on same-size arrays (and labels) from `kerasgen.data.load_arrays`."""

    labelled = False

    def load(self, preset, config, data_dir):
        from kerasgen import data

        images, labels = data.load_arrays(config["dataset"], "train", data_dir,
                                          config["image_size"])
        if self.labelled and labels is None:
            raise ValueError(
                f"{config['model']} trains on labelled data, and {config['dataset']!r} has no "
                "labels; use 'digits', 'mnist', 'fashion_mnist' or a labelled 'tfds:<name>'.")
        return images, labels if self.labelled else None

    def build(self, preset, config, source, model_kwargs, seed):
        images, labels = source
        kwargs = dict(model_kwargs)
        if self.labelled:
            kwargs["num_classes"] = int(labels.max()) + 1
        return preset.build(images.shape[1:], seed=seed, **kwargs)

    def training_data(self, model, config, source, data_dir, initial_epoch=0):
        from kerasgen import data

        images, labels = source
        # One pass per epoch unless the run sets the steps; the stream is endless and seeded
        # per pass, so a resumed run starts at exactly its epoch's batches.
        steps = config["steps_per_epoch"] or len(images) // config["batch_size"]
        return data.dataset_from_arrays(
            images, labels, batch_size=config["batch_size"], seed=config["seed"], repeat=True,
            start_batch=initial_epoch * steps,
            description=f"Dataset {config['dataset']!r}"), steps


class Generation(LabelledImages):
    """Generation: sample grids per epoch, figures, `kerasgen sample`, FD/KID/score/NLL.

    Args:
        labelled: bool. The model takes labels (`build` gets `num_classes`).
    """

    name = "generation"
    verb = "sample"
    contract = GenerativeModel

    def __init__(self, labelled=False):
        self.labelled = labelled

    def callbacks(self, model, run_dir, config, source, data_dir=None):
        from kerasgen.callbacks import SampleGrid

        images, labels = source
        return [SampleGrid(run_dir / "samples", num_images=model.epoch_samples,
                           seed=config["seed"], log_dir=run_dir / "logs",
                           reference=figure_reference(images, labels))]

    def inference_model(self, model):
        return model.inference_model()

    def start_from(self, model, source, description):
        model.start_from(source, description)

    def sample_options(self, model):
        return method_options(model.generate)

    def sample_files(self, model, source, out, num_samples, seed=0, data_dir=None, **options):
        """The sample grid, the animation of models that draw in steps (a GIF of the same
        name) and, for a run, its figures on the run's data."""
        from kerasgen.files import RUN_CONFIG

        paths = [write_samples(model, out, num_images=num_samples, seed=seed, **options)]
        if model.animates:  # how the samples were drawn, step by step, beside the grid
            paths.append(write_animation(model, Path(out).with_suffix(".gif"),
                                         num_images=num_samples, seed=seed))
        if (Path(source) / RUN_CONFIG).exists():  # a run's data
            paths += write_run_figures(source, model, Path(out).parent, data_dir=data_dir,
                                       seed=seed).values()
        return paths

    def finish(self, result, config, source, data_dir):
        title = f"{config['model']}, epoch {config['epochs']}"
        result.samples_png = write_samples(result.model, result.run_dir / "samples.png",
                                           seed=config["seed"], title=title)
        result.figures = save_model_figures(result.model, *source, result.run_dir,
                                            seed=config["seed"], title=title)


class Classification(LabelledImages):
    """Classification: test-split loss and accuracy after training; nothing to export."""

    name = "classification"
    labelled = True
    exports = False

    def finish(self, result, config, source, data_dir):
        from kerasgen.files import write_json

        result.test_metrics = evaluate_classifier(result.model, config, data_dir)
        write_json(result.run_dir / "metrics.json", result.test_metrics)


def endless_data_steps(config):
    """The run's steps per epoch, which a model that draws endless training data must set."""
    if config["steps_per_epoch"] is None:
        raise ValueError(f"{config['model']} draws endless training data: set "
                         "steps_per_epoch (CLI: --steps-per-epoch N).")
    return config["steps_per_epoch"]


class ImageToImage(Task):
    """Image-to-image: the model draws its own training data (`training_data`), writes its
    figures (`training_figures`), `kerasgen apply` and `evaluate --dataset`."""

    name = "image_to_image"
    verb = "apply"
    contract = ImageToImageModel

    def check_config(self, preset, config):
        if config["image_size"] is not None and not preset.takes_image_size:
            patch = [option.flag for name, option in preset.options().items() if "patch" in name]
            raise ValueError(
                f"{preset.name} trains on patches of images of any size and takes no "
                f"--image-size; set the patch size with {' or '.join(patch) or 'its builder'}.")

    def build(self, preset, config, source, model_kwargs, seed):
        if preset.takes_image_size:
            size = config["image_size"]
            return preset.build(None if size is None else (size, size), seed=seed,
                                **model_kwargs)
        return preset.build(seed=seed, **model_kwargs)

    def training_data(self, model, config, source, data_dir, initial_epoch=0):
        steps = endless_data_steps(config)
        return model.training_data(config["dataset"], config["batch_size"], seed=config["seed"],
                                   data_dir=data_dir, start_batch=initial_epoch * steps), steps

    def callbacks(self, model, run_dir, config, source, data_dir=None):
        from kerasgen.callbacks import PreciseBatchNorm

        # Before every checkpoint: batch norms' population statistics on the training data.
        return [PreciseBatchNorm(dataset=config["dataset"], batch_size=config["batch_size"],
                                 seed=config["seed"], data_dir=data_dir)]

    def finish(self, result, config, source, data_dir):
        result.figures = result.model.training_figures(result.run_dir, config["dataset"],
                                                       data_dir)


class Forecasting(Task):
    """Frame forecasting: trains on moving digits generated on the fly from the run's dataset
    (`kerasgen.data.moving_mnist`), `kerasgen sample` forecasts test sequences (a GIF and a
    PNG), `kerasgen evaluate` scores generated test sequences (`FrameForecaster.benchmark`)."""

    name = "forecasting"
    verb = "sample"
    contract = FrameForecaster
    default_samples = 8

    def check_config(self, preset, config):
        if config["image_size"] is not None:
            raise ValueError(f"{preset.name} generates its frames and takes no --image-size; "
                             "set their size with --frame-size.")

    def load(self, preset, config, data_dir):
        from kerasgen.data.moving_mnist import load_digits

        return load_digits(config["dataset"], "train", data_dir)

    def build(self, preset, config, source, model_kwargs, seed):
        return preset.build(seed=seed, **model_kwargs)

    def training_data(self, model, config, source, data_dir, initial_epoch=0):
        from kerasgen.data.moving_mnist import moving_mnist_batches

        steps = endless_data_steps(config)
        return moving_mnist_batches(source, config["batch_size"], model.num_frames,
                                    model.frame_size, seed=config["seed"],
                                    start_batch=initial_epoch * steps), steps

    def finish(self, result, config, source, data_dir):
        result.figures = dict(zip(("forecast_png", "forecast_gif"), self.sample_files(
            result.model, result.run_dir, result.run_dir / "forecast.png", self.default_samples,
            seed=config["seed"], data_dir=data_dir)))

    def sample_files(self, model, source, out, num_samples, seed=0, data_dir=None, **options):
        """Forecasts of `num_samples` test sequences (drawn with `seed`; 0 is the benchmark's
        first ones) from the digits of the run's dataset: a PNG (per sequence, a row of the
        true frames above a row of the input frames and the forecast) and a GIF of the same
        name (per sequence, the truth beside the model, which shows its inputs, then its
        forecast)."""
        from kerasgen.visualize import save_animation, save_image_grid

        del options
        sequences = model.test_sequences(num_samples, run_dataset(source), data_dir, seed)
        inputs = sequences[:, :model.num_input_frames]
        shown = np.concatenate([inputs, np.asarray(model.forecast(inputs))], axis=1)
        rows = np.stack([sequences, shown], axis=1).reshape(-1, *sequences.shape[2:])
        png = save_image_grid(rows, out, columns=model.num_frames,
                              title="truth (above) and inputs + forecast (below)")
        # GIF frame t: per sequence, the truth beside the model's frame.
        frames = np.stack([sequences, shown], axis=2).transpose(1, 0, 2, 3, 4, 5).reshape(
            model.num_frames, -1, *sequences.shape[2:])
        return [png, save_animation(frames, Path(out).with_suffix(".gif"), columns=2)]


def run_dataset(source, default="mnist"):
    """The dataset a run folder or shipped model (`source`) was trained on, from its
    `run_config.json`; `default` for a model without one."""
    import json

    from kerasgen.files import RUN_CONFIG
    from kerasgen.store import model_folder

    path = model_folder(source) / RUN_CONFIG
    return json.loads(path.read_text())["dataset"] if path.exists() else default


GENERATION = Generation()
IMAGE_TO_IMAGE = ImageToImage()
CLASSIFICATION = Classification()
FORECASTING = Forecasting()


def task_of(model):
    """The task of a loaded model, by the contract it implements."""
    for task in (GENERATION, IMAGE_TO_IMAGE, FORECASTING):
        if isinstance(model, task.contract):
            return task
    return CLASSIFICATION


def method_options(method, skip=("images", "dataset", "data_dir", "seed", "overwrite")):
    """`{name: Option}` of a contract method's keyword options (its CLI flags)."""
    from kerasgen.models.preset import callable_options

    return callable_options(method, skip=skip)


# --- what the generation and classification tasks write ----------------------------------


def figure_reference(images, labels=None, count=16):
    """The first `count` images (and labels) whose reconstructions figures show."""
    return images[:count], None if labels is None else labels[:count]


def save_model_figures(model, images, labels, out_dir, seed=0, title=None):
    """`model.figures` on the first images, but its samples (`write_samples` makes those)."""
    from kerasgen.visualize import save_figures

    figures = model.figures(*figure_reference(images, labels), seed=seed)
    figures.pop("samples", None)
    return save_figures(figures, out_dir, title=title)


def sample_grid(model, num_images=64, seed=0, **generate_options):
    """`(uint8 images, columns, row_labels)` of `num_images` samples for seeds `seed ..`
    (`generate_options`: keyword options of the model's `generate`). A conditional model's
    grid has one row per class, labelled, of `num_images // num_classes` samples (at least
    one); others are square (columns and row labels None)."""
    import numpy as np

    from kerasgen.data import to_uint8

    columns = row_labels = None
    if model.conditional:
        columns = max(1, num_images // model.num_classes)
        num_images = columns * model.num_classes
    inputs = model.sample_inputs(num_images, seed)
    images = to_uint8(model.generate(inputs, **generate_options)).numpy()
    if model.conditional:
        labels = np.asarray(inputs[1])
        images = images[np.argsort(labels, kind="stable")]  # rows of one class each
        row_labels = [str(label) for label in range(model.num_classes)]
    return images, columns, row_labels


def write_samples(model, path, num_images=64, seed=0, title=None, **generate_options):
    """Save the `sample_grid` of `num_images` samples for seeds `seed ..` to `path`."""
    from kerasgen.visualize import save_image_grid

    images, columns, row_labels = sample_grid(model, num_images, seed, **generate_options)
    return save_image_grid(images, path, title=title, columns=columns, row_labels=row_labels)


def write_animation(model, path, num_images=16, seed=0, frame_ms=80):
    """Save the frames of `model.animation` for seeds `seed ..` as an animated GIF of sample
    grids at `path` (a model that `animates`)."""
    from kerasgen.visualize import save_animation

    frames = model.animation(model.sample_inputs(num_images, seed))
    return save_animation(frames, path, frame_ms=frame_ms)


def write_run_figures(run_dir, model, out_dir, data_dir=None, seed=0, split="test"):
    """`model.figures` but samples (see `write_samples`) on the first images of the run's
    dataset, saved as PNGs in `out_dir`."""
    from kerasgen import data
    from kerasgen.training import read_run_config

    config = read_run_config(run_dir)
    images, labels = data.load_arrays(config["dataset"], split, data_dir, config["image_size"])
    return save_model_figures(model, images, labels if model.conditional else None,
                              Path(out_dir), seed=seed)


def evaluate_classifier(model, config, data_dir=None):
    """Test-split loss and accuracy of a classifier run."""
    from kerasgen import data

    images, labels = data.load_arrays(config["dataset"], "test", data_dir, config["image_size"])
    test_data = data.dataset_from_arrays(images, labels, batch_size=500, shuffle=False,
                                         drop_remainder=False)
    values = model.evaluate(test_data, verbose=0, return_dict=True)
    return {f"test_{key}": float(value) for key, value in values.items()} | {
        "test_examples": int(len(images))}

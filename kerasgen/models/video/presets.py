"""The ConvLSTM forecaster's builder and registered preset."""

import functools

from kerasgen.callbacks import LinearDecay
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.models.video.forecaster import ConvLSTMForecaster
from kerasgen.models.video.networks import build_convlstm_forecaster
from kerasgen.tasks import FORECASTING


@forwards_kwargs(lambda kwargs: (build_convlstm_forecaster,))
def build_convlstm(seed=None, name=None, **network_options):
    """A `ConvLSTMForecaster` around a fresh `build_convlstm_forecaster(**network_options)`
    (`frame_size`, `num_input_frames`, `num_output_frames`, `patch_size`, `num_filters`,
    `num_layers`, `kernel_size`), its weights seeded by `seed`."""
    return ConvLSTMForecaster(build_convlstm_forecaster(seed=seed, **network_options),
                              name=name or "convlstm")


PRESETS = {
    "convlstm": ModelPreset(
        name="convlstm",
        description="ConvLSTM encoder-forecaster (Shi et al. 2015): 10 frames of Moving MNIST "
                    "(generated from the digits) -> the next 10; forecasts as GIFs",
        task=FORECASTING, build=build_convlstm, dataset="mnist", batch_size=16, epochs=10,
        steps_per_epoch=200,
        # Adam at the family's default rate for 60 % of the epochs, then linearly down, as the
        # diffusion presets (README, "Benchmarks": bench_video.py, the shipped model's run).
        learning_rate_schedule=functools.partial(
            LinearDecay, ConvLSTMForecaster.default_learning_rate, constant_share=0.6)),
}

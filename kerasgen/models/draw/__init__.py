"""DRAW (Gregor et al. 2015): the attention filterbank and glimpse networks
(`build_draw_encoder_step`, `build_draw_decoder_step`), the `DRAW` wrapper (ELBO training,
importance-sampled NLL, canvases as animations) and its preset."""

from kerasgen.models.draw.draw import DRAW  # noqa: F401
from kerasgen.models.draw.networks import (AttentionWindow, ReadGlimpse,  # noqa: F401
                                           WriteGlimpse, build_draw_decoder_step,
                                           build_draw_encoder_step)
from kerasgen.models.draw.presets import PRESETS, build_draw  # noqa: F401

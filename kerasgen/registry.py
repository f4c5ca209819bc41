"""The explicit registry of models: name -> `ModelPreset`.

Adding a family: its module(s) under `kerasgen/models/`, one line here, one test module (the
README's "Adding a model"). Names registered twice are refused.
"""

from kerasgen.model_index import unknown_model
from kerasgen.models import (autoregressive, classifier, conditional_gan, dcgan, diffusion, draw,
                             enhancement, inpainting, restoration, translation, vae, video,
                             wgan_gp)


def merge_presets(*families):
    """One `{name: ModelPreset}` from the families' `PRESETS`; a name registered twice, or
    under another name than its preset's, is refused."""
    models = {}
    for presets in families:
        for name, preset in presets.items():
            if name in models:
                raise ValueError(f"Model {name!r} is registered twice; rename one of them.")
            if preset.name != name:
                raise ValueError(f"Model {name!r} is registered with a preset named "
                                 f"{preset.name!r}; the two must match.")
            models[name] = preset
    return models

MODELS = merge_presets(
    dcgan.PRESETS,
    conditional_gan.PRESETS,
    wgan_gp.PRESETS,
    classifier.PRESETS,
    vae.PRESETS,
    restoration.PRESETS,
    translation.PRESETS,
    inpainting.PRESETS,
    enhancement.PRESETS,
    diffusion.PRESETS,
    autoregressive.PRESETS,
    draw.PRESETS,
    video.PRESETS,
)

def register(presets, models=None):
    """Add a family's `PRESETS` to the registry (`MODELS`, or `models`); names already
    registered are refused. Families inside kerasgen are one line of `MODELS` above."""
    target = MODELS if models is None else models
    target.update(merge_presets(target, presets))
    return target

def get_preset(name):
    """The `ModelPreset` registered as `name`; unknown names list the valid ones."""
    if name not in MODELS:
        raise unknown_model(name, MODELS)
    return MODELS[name]

def available_models():
    """Sorted registered model names."""
    return sorted(MODELS)

"""The explicit registry of models: name -> `ModelPreset`.

Adding a family: its module under `kerasgen/models/`, one line here, one test module.
"""

from kerasgen.models import (classifier, conditional_gan, dcgan, restoration, translation, vae,
                             wgan_gp)

MODELS = {
    **dcgan.PRESETS,
    **conditional_gan.PRESETS,
    **wgan_gp.PRESETS,
    **classifier.PRESETS,
    **vae.PRESETS,
    **restoration.PRESETS,
    **translation.PRESETS,
}


def get_preset(name):
    """The `ModelPreset` registered as `name`; unknown names list the valid ones."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Valid models: {', '.join(sorted(MODELS))}.")
    return MODELS[name]


def available_models():
    """Sorted registered model names."""
    return sorted(MODELS)

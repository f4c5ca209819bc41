"""Image-to-image translation: CycleGAN (unpaired) and pix2pix (paired).

Generators are fully convolutional functional models on images in [-1, 1] of any height and
width; the wrappers train them with `fit` on `(a, b)` batches (`kerasgen.data.translation`)
and translate uint8 images of any size (`translate`, the `a2b` / `b2a` / `translate` serving
signatures, TFLite with dynamic input shapes and builtin ops only).

Example:
    >>> model = build_cyclegan((128, 128), num_blocks=6)
    >>> model.compile()
    >>> images_a, images_b = load_unpaired("horse2zebra")
    >>> model.fit(jitter_dataset(images_a, images_b, 128, batch_size=1), steps_per_epoch=200,
    ...           epochs=200, callbacks=[LinearDecay(2e-4, epochs=200)])
    >>> zebras = model.translate(horses_uint8, direction="a2b")

References: CycleGAN https://arxiv.org/abs/1703.10593, pix2pix https://arxiv.org/abs/1611.07004,
and their reference implementation https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix.
"""

from kerasgen.models.translation.networks import (build_patch_discriminator,  # noqa: F401
                                                  build_resnet_generator, build_unet_generator)
from kerasgen.models.translation.presets import PRESETS  # noqa: F401
from kerasgen.models.translation.trainer import (CycleGAN, Pix2Pix, Translator,  # noqa: F401
                                                 build_cyclegan, build_pix2pix)

"""Diffusion: the noise schedule (`NoiseSchedule`), the DDPM U-Net (`build_unet`), the `DDPM`
wrapper (training, DDPM/DDIM sampling, classifier-free guidance, inpainting) and presets."""

from kerasgen.models.diffusion.ddpm import DDPM, seeded_normal  # noqa: F401
from kerasgen.models.diffusion.networks import SinusoidalEmbedding, build_unet  # noqa: F401
from kerasgen.models.diffusion.presets import PRESETS, build_ddpm  # noqa: F401
from kerasgen.models.diffusion.schedule import NoiseSchedule, betas_for  # noqa: F401

"""Low-light enhancement: the `Darken` degradation, Zero-DCE and the classical enhancers'
benchmark."""

from kerasgen.models.enhancement.darkening import Darken  # noqa: F401
from kerasgen.models.enhancement.presets import PRESETS, build_zero_dce  # noqa: F401
from kerasgen.models.enhancement.zero_dce import ZeroDCE, apply_curves, build_dce_net  # noqa: F401

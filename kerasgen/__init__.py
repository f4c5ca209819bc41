"""kerasgen: a Keras 3 / TensorFlow model zoo for image generation and restoration."""

__version__ = "0.1.0"

# Importing the registry imports every family, which registers their classes with Keras so
# that `keras.models.load_model` can rebuild them after `import kerasgen`.
from kerasgen import data, export, losses, registry  # noqa: E402,F401
from kerasgen.registry import available_models, get_preset  # noqa: E402,F401

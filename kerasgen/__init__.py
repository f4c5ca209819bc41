"""kerasgen: a Keras 3 / TensorFlow model zoo for image generation and restoration."""

import os
import sys

__version__ = "0.1.0"


class MissingTensorFlow(ImportError):
    """No TensorFlow in this environment: kerasgen installs it only through an extra."""


def _require_tensorflow():
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise MissingTensorFlow(
            "kerasgen needs TensorFlow >= 2.16, and this environment has none. Install it with "
            "kerasgen: pip install 'kerasgen[cpu]' (CPU) or 'kerasgen[gpu]' (NVIDIA GPUs, "
            "CUDA included); from a checkout: pip install -e '.[cpu]'. A TensorFlow you "
            "install yourself (tensorflow, tensorflow-cpu) works as well.")


def _import_tensorflow_quietly():
    """Import TensorFlow with its start-up lines hidden when `TF_CPP_MIN_LOG_LEVEL` asks so.

    TensorFlow's absl and oneDNN notices are printed before its own log-level setting takes
    effect, so `TF_CPP_MIN_LOG_LEVEL=2` alone does not silence them. The `kerasgen` command
    defaults the variable to 2; set it to 0 to see everything. An import that fails prints
    what was hidden.
    """
    _require_tensorflow()
    if _COMMAND:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        return
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# The `kerasgen` command parses its arguments first and imports TensorFlow (and the families)
# only for a command that needs them, so `--help` and argument errors answer at once.
_COMMAND = os.path.basename(sys.argv[0] if sys.argv else "") == "kerasgen"

if not _COMMAND:
    _import_tensorflow_quietly()
    # Importing the registry imports every family, which registers their classes with Keras
    # so that `keras.models.load_model` can rebuild them after `import kerasgen`.
    from kerasgen import data, export, losses, registry  # noqa: E402,F401
    from kerasgen.registry import available_models, get_preset  # noqa: E402,F401

"""The registry's listing (name, task, description) cached on disk, so that `kerasgen list` and
the model-name check of `kerasgen train` answer without importing TensorFlow.

The presets stay the one source: they live in the family modules, which subclass
`keras.Model`, so reading them imports TensorFlow. Any command that imports the registry
writes the listing to `$KERASGEN_CACHE_DIR` (default `$XDG_CACHE_HOME/kerasgen`, else
`~/.cache/kerasgen`) under a key made of kerasgen's own source files, so an edited or newly
registered family invalidates it. An unreadable or unwritable cache only costs the import.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

CACHE_ENV = "KERASGEN_CACHE_DIR"
PACKAGE = Path(__file__).resolve().parent


def cache_dir():
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kerasgen"


def source_key():
    """A digest of every `.py` file of the package (names and contents): a few milliseconds."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def unknown_model(name, names):
    """The error for a model name that is not registered, listing the valid ones."""
    return ValueError(f"Unknown model {name!r}. Valid models: {', '.join(sorted(names))}.")


def _path():
    return cache_dir() / f"models-{source_key()}.json"


def read():
    """`[{"name", "task", "description"}]` sorted by name, or None when the cache is missing,
    stale or unreadable."""
    try:
        entries = json.loads(_path().read_text())
        if all(set(entry) == {"name", "task", "description"} for entry in entries):
            return entries
    except (OSError, ValueError, TypeError):
        pass
    return None


def entries(models):
    """The listing of a registry (`{name: ModelPreset}`)."""
    return [{"name": name, "task": models[name].task.name,
             "description": models[name].description} for name in sorted(models)]


def write(models):
    """Cache the listing of `models`; best effort (a read-only home is no error)."""
    if read() == entries(models):
        return
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("models-*.json"):  # listings of older sources
            old.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".partial",
                                         delete=False) as partial:
            json.dump(entries(models), partial, indent=1)
        os.replace(partial.name, path)
    except OSError:
        pass

"""gau_alpha: GAU-alpha and RealFormer residual attention for bert4keras on modern TensorFlow.

Importing this package is cheap: it loads no TensorFlow. The public names below are resolved
on first use (PEP 562). Two things happen at import:

- ``TF_KERAS=1`` and ``TF_USE_LEGACY_KERAS=1`` are set, so a TensorFlow imported later
  exposes tf-keras as ``tf.keras`` (what bert4keras needs);
- an import hook is installed so that whenever ``bert4keras`` is first imported (by this
  package or by user code), :func:`gau_alpha.compat.apply` adapts it to modern TensorFlow
  right away. ``import gau_alpha`` before bert4keras is therefore all a user needs.

Touching a model name (``gau_alpha.GAU_alpha``, ``build_transformer_model`` ...) imports
TensorFlow and bert4keras and applies the adaptations.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
from typing import Any, Dict, List

__version__ = "0.1.0"

os.environ["TF_KERAS"] = "1"
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# public name -> module that defines it
_LAZY: Dict[str, str] = {
    "GatedAttentionUnit": "gau_alpha.layers",
    "ResidualMultiHeadAttention": "gau_alpha.layers",
    "apply_rotary": "gau_alpha.layers",
    "combine_residual_scores": "gau_alpha.layers",
    "normalize_attention": "gau_alpha.layers",
    "GAU_alpha": "gau_alpha.models",
    "GAUAlphaInitializer": "gau_alpha.models",
    "ResidualBERT": "gau_alpha.models",
    "ResidualRoFormer": "gau_alpha.models",
    "ResidualRoFormerV2": "gau_alpha.models",
    "build_transformer_model": "gau_alpha.models",
    "collect_tf1_tensors": "gau_alpha.checkpoints",
    "load_weights_strict": "gau_alpha.checkpoints",
    "read_tf1_checkpoint": "gau_alpha.checkpoints",
    "write_tf1_checkpoint": "gau_alpha.checkpoints",
    "CheckpointError": "gau_alpha.errors",
    "GauAlphaError": "gau_alpha.errors",
    "RELEASE_CONFIG": "gau_alpha.resources",
    "RELEASE_DIR": "gau_alpha.resources",
    "RELEASE_VOCAB": "gau_alpha.resources",
}

__all__: List[str] = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError("module 'gau_alpha' has no attribute %r" % name)
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))


class _AdaptBert4kerasLoader(importlib.abc.Loader):
    """Runs the real loader of the ``bert4keras`` package, then the compat adaptations."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        from gau_alpha import compat

        compat.apply()


class _Bert4kerasHook(importlib.abc.MetaPathFinder):
    """Finds ``bert4keras`` through the other finders and wraps its loader (once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "bert4keras":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _AdaptBert4kerasLoader(spec.loader)
        return spec


if "bert4keras" not in sys.modules and not any(isinstance(f, _Bert4kerasHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _Bert4kerasHook())

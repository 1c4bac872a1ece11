"""gau_alpha: GAU-alpha and RealFormer residual attention for bert4keras on modern TensorFlow.

Importing this package first adapts bert4keras 0.11.5 to TensorFlow >= 2.16 with tf-keras
(see :mod:`gau_alpha.compat`), so import it before ``tensorflow`` or ``bert4keras``.
"""
from gau_alpha import compat as _compat

_compat.apply()

from gau_alpha.checkpoints import (  # noqa: E402
    CheckpointError,
    collect_tf1_tensors,
    load_weights_strict,
    read_tf1_checkpoint,
    write_tf1_checkpoint,
)
from gau_alpha.layers import (  # noqa: E402
    GatedAttentionUnit,
    ResidualMultiHeadAttention,
    apply_rotary,
    combine_residual_scores,
    normalize_attention,
)
from gau_alpha.models import (  # noqa: E402
    GAU_alpha,
    GAUAlphaInitializer,
    ResidualBERT,
    ResidualRoFormer,
    ResidualRoFormerV2,
    build_transformer_model,
)
from gau_alpha.paths import RELEASE_CONFIG, RELEASE_DIR, RELEASE_VOCAB  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "GAU_alpha",
    "GAUAlphaInitializer",
    "GatedAttentionUnit",
    "RELEASE_CONFIG",
    "RELEASE_DIR",
    "RELEASE_VOCAB",
    "ResidualBERT",
    "ResidualMultiHeadAttention",
    "ResidualRoFormer",
    "ResidualRoFormerV2",
    "apply_rotary",
    "build_transformer_model",
    "collect_tf1_tensors",
    "combine_residual_scores",
    "load_weights_strict",
    "normalize_attention",
    "read_tf1_checkpoint",
    "write_tf1_checkpoint",
]

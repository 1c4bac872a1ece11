"""The parity oracle (bert4keras's own RoFormerV2 + GatedAttentionUnit), see gau_alpha.reference."""
import gau_alpha  # noqa: F401  (adapts bert4keras to this TensorFlow first)
from gau_alpha.reference import ReferenceGAUAlpha  # noqa: F401

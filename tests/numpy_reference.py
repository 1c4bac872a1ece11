"""Plain-numpy formulas for GAU, multi-head attention and RealFormer residual attention,
written from the papers (FLASH, RealFormer, RoFormer), independent of the TF code."""
import numpy as np


def swish(x):
    return x / (1.0 + np.exp(-x))


def rope(x, positions=None):
    """RoPE on interleaved pairs: (x_{2i}, x_{2i+1}) rotated by p * 10000^(-2i/S). x: (N, [h,] S)."""
    n, size = x.shape[0], x.shape[-1]
    positions = np.arange(n) if positions is None else positions
    theta = positions[:, None] * 10000.0 ** (-2.0 * np.arange(size // 2) / size)  # (N, S/2)
    cos, sin = np.cos(theta), np.sin(theta)
    if x.ndim == 3:
        cos, sin = cos[:, None], sin[:, None]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = odd * cos + even * sin
    return out


def normalize(logits, key_mask=None, method="softmax", min_length=16, base=512.0, visible=None):
    """Attention weights over the last axis; ``key_mask`` (M,) or ``visible`` (N, M) booleans."""
    allowed = np.ones(logits.shape, bool)
    if key_mask is not None:
        allowed = allowed & key_mask.astype(bool)
    if visible is not None:
        allowed = allowed & visible
    n = allowed.sum(-1, keepdims=True).astype(np.float64)
    x = np.where(allowed, logits, -np.inf)
    if method == "squared_relu":
        return np.maximum(x, 0) ** 2 / n
    if method == "softmax_plus":
        if min_length is not None:
            n = np.maximum(n, min_length)
        x = x * np.log(n) / np.log(base)
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def gau_projections(x, w_i, gamma_q, gamma_k, units, key_size, use_rope=True):
    """One example: x (N, H) -> u (N, E), v (N, E), scaled scores S (N, N)."""
    h = swish(x @ w_i)
    u, v, z = h[:, :units], h[:, units : 2 * units], h[:, 2 * units :]
    q, k = z * gamma_q, z * gamma_k
    if use_rope:
        q, k = rope(q), rope(k)
    return u, v, q @ k.T / np.sqrt(key_size)


def mha_projections(x, wq, bq, wk, bk, heads, key_size, use_rope=False):
    """One example: x (N, H) -> scaled scores S (h, N, N)."""
    q = (x @ wq + bq).reshape(x.shape[0], heads, key_size)
    k = (x @ wk + bk).reshape(x.shape[0], heads, key_size)
    if use_rope:
        q, k = rope(q), rope(k)
    return np.einsum("nhd,mhd->hnm", q, k) / np.sqrt(key_size)


def residual_logits(scores_per_layer, mode):
    """RealFormer: for layers l = 0.. return (logits_l, passed_l) lists.

    cumulative: P_l = S_l + P_{l-1}, logits P_l; mean: logits P_l / (l + 1);
    previous (bert4keras): logits S_l + S_{l-1}, passes S_l.
    """
    logits, passed, running = [], [], None
    for index, scores in enumerate(scores_per_layer):
        if mode == "previous":
            logits.append(scores if index == 0 else scores + scores_per_layer[index - 1])
            passed.append(scores)
            continue
        running = scores if running is None else running + scores
        logits.append(running / (index + 1) if mode == "mean" else running)
        passed.append(running)
    return logits, passed

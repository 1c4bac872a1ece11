"""The pre-training optimizer against an independent NumPy LAMB, and the learning-rate
schedule in TensorFlow against its Python definition."""
from __future__ import annotations

import numpy as np
import pytest

from gau_alpha.pretrain.schedule import RECIPE_SCHEDULE, multiplier, parse_schedule, scaled_schedule


def numpy_lamb(weights, gradients, steps, lr, schedule, decay, excluded, beta1=0.9, beta2=0.999, eps=1e-6):
    """LAMB without bias correction, written from the paper's update rule."""
    weights = {k: v.astype(np.float64).copy() for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in weights.items()}
    v = {k: np.zeros_like(w) for k, w in weights.items()}
    for step in range(steps):
        rate = lr * multiplier(step, schedule)
        for name, w in weights.items():
            g = gradients[step][name]
            m[name] = beta1 * m[name] + (1 - beta1) * g
            v[name] = beta2 * v[name] + (1 - beta2) * g * g
            update = m[name] / (np.sqrt(v[name]) + eps)
            if name not in excluded:
                update = update + decay * w
                w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(update)
                update = update * (w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0)
            weights[name] = w - rate * update
    return weights


def test_lamb_matches_the_update_rule():
    import tensorflow as tf

    from gau_alpha.pretrain.optimizer import LAMB

    rng = np.random.default_rng(0)
    shapes = {"Transformer-0-FeedForward/kernel": (6, 4), "Transformer-0-FeedForward/bias": (4,),
              "Embedding-Norm/gamma": (6,)}
    initial = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    gradients = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(4)]
    schedule = parse_schedule("0:1,2:0.5,4:0.1")
    variables = {k: tf.Variable(v, name=k) for k, v in initial.items()}
    optimizer = LAMB(learning_rate=0.05, schedule=schedule, weight_decay=0.01)
    for step in range(4):
        optimizer.apply_gradients([(tf.constant(gradients[step][k]), variables[k]) for k in shapes])
    expected = numpy_lamb(initial, gradients, 4, 0.05, schedule, 0.01,
                          excluded={"Transformer-0-FeedForward/bias", "Embedding-Norm/gamma"})
    for name in shapes:
        np.testing.assert_allclose(variables[name].numpy(), expected[name], rtol=1e-5, atol=1e-6)
    assert int(optimizer.iterations.numpy()) == 4
    assert len(optimizer.get_weights()) == 1 + 2 * len(shapes)  # step counter, m and v: the whole state


@pytest.mark.parametrize("text", [None, "100:1,300:0.2"])
def test_schedule_in_tensorflow_equals_its_definition(text):
    from gau_alpha.pretrain.schedule import tf_multiplier

    schedule = scaled_schedule(1000, RECIPE_SCHEDULE) if text is None else parse_schedule(text)
    steps = [0, 1, 50, 99, 100, 124, 125, 126, 300, 499, 500, 777, 999, 1000, 5000]
    got = [float(tf_multiplier(step, schedule)) for step in steps]
    np.testing.assert_allclose(got, [multiplier(step, schedule) for step in steps], rtol=1e-6, atol=1e-7)
    if text is None:
        assert schedule == [(0, 1.0), (125, 0.5), (500, 0.1), (1000, 0.01)]
        assert multiplier(62.5, schedule) == pytest.approx(0.75)

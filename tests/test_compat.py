"""Each adaptation in gau_alpha.compat, exercised (numbers as in the module docstring)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import gau_alpha
from bert4keras import optimizers as b4k_optimizers
from bert4keras.models import build_transformer_model as bert4keras_build
from gau_alpha import compat
from helpers import TINY_CONFIG, padded_batch, write_release_dir

TESTS_DIR = os.path.dirname(__file__)
BERT_CONFIG = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "hidden_act": "gelu", "vocab_size": 200, "max_position_embeddings": 64, "type_vocab_size": 2,
    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
}


def run_python(code, tmp_path=None, **env_overrides):
    """Run ``code`` in a fresh interpreter (import-time adaptations need one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_KERAS", "TF_USE_LEGACY_KERAS", "RECOMPUTE")}
    env.update(env_overrides)
    env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
        cwd=str(tmp_path) if tmp_path else None, timeout=600,
    )


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
    return write_release_dir(tmp_path_factory.mktemp("tiny"), TINY_CONFIG)


@pytest.fixture(scope="module")
def bert_config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert") / "bert_config.json"
    path.write_text(json.dumps(BERT_CONFIG))
    return str(path)


def test_all_adaptations_are_listed_and_applied():
    assert compat._applied  # this module imported bert4keras after gau_alpha (conftest)
    assert compat.ADAPTATIONS == [
        "environment", "distutils", "legacy_optimizers", "adafactor_learning_rate", "distinct_initializers",
        "recompute", "save_weights_as_checkpoint", "mixed_precision",
    ]
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1" and os.environ["TF_KERAS"] == "1"
    assert tf.keras.__name__.startswith("tf_keras")


def test_apply_is_idempotent():
    import bert4keras.models as b4k_models

    patched = (b4k_models.Transformer.apply, b4k_models.Transformer.save_weights_as_checkpoint,
               b4k_optimizers.AdaFactorBase.learning_rate)
    compat.apply()
    compat.apply()
    assert compat._applied
    assert (b4k_models.Transformer.apply, b4k_models.Transformer.save_weights_as_checkpoint,
            b4k_optimizers.AdaFactorBase.learning_rate) == patched


def test_importing_bert4keras_after_gau_alpha_applies_compat():
    """``import gau_alpha`` loads no TensorFlow and adapts nothing; the first import of
    bert4keras (by anyone) applies every adaptation."""
    result = run_python("""
        import sys
        import gau_alpha
        from gau_alpha import compat
        print("tensorflow" in sys.modules, compat._applied)
        import bert4keras.models
        print(compat._applied, bert4keras.models.Transformer.save_weights_as_checkpoint is compat._save_weights_as_checkpoint)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["False", "False", "True", "True"]


# 1 ----------------------------------------------------------------------------------
def test_keras3_already_imported_is_a_clear_error():
    result = run_python("""
        import tensorflow as tf
        tf.keras.layers.Dense  # resolves tf.keras to Keras 3
        import gau_alpha
        import bert4keras  # applies the adaptations, which find Keras 3
    """)
    assert result.returncode != 0
    assert "KerasVersionError" in result.stderr
    assert "TF_USE_LEGACY_KERAS=1" in result.stderr


def test_environment_is_set_when_gau_alpha_comes_first():
    result = run_python("""
        import gau_alpha, tensorflow as tf, bert4keras.backend as b
        print(tf.keras.__name__, b.is_tf_keras)
    """)
    assert result.returncode == 0, result.stderr
    module, is_tf_keras = result.stdout.split()
    # strtobool returns 1 (setuptools < 70) or True (newer setuptools' distutils)
    assert module.startswith("tf_keras") and is_tf_keras in ("1", "True")


def test_tensorflow_imported_first_still_gives_bert4keras_tf_keras():
    """``import tensorflow`` (no legacy flag) caches Keras 3 as ``keras.*``; bert4keras
    must still build with tf-keras layers."""
    result = run_python("""
        import sys
        import tensorflow as tf
        assert "keras.layers" in sys.modules  # Keras 3, loaded by tensorflow itself
        import gau_alpha
        from bert4keras.layers import Input
        print(Input.__module__)
        model = gau_alpha.build_transformer_model(gau_alpha.RELEASE_CONFIG, num_hidden_layers=1,
                                                  hidden_size=32, intermediate_size=32, attention_key_size=8)
        import numpy as np
        print(model.predict([np.array([[101, 102]]), np.array([[0, 0]])], verbose=0).shape)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    module, shape = result.stdout.split("\n")[:2]
    assert module.startswith("tf_keras") and shape == "(1, 2, 32)"


# 2 ----------------------------------------------------------------------------------
def test_import_works_without_distutils():
    """Python 3.12 has no distutils; simulate that by making the import fail."""
    result = run_python("""
        import sys
        sys.modules["distutils"] = None  # `import distutils` now raises ImportError
        import gau_alpha
        import bert4keras.backend as b  # applies the adaptations, the shim among them
        from distutils.util import strtobool
        print(strtobool("yes"), strtobool("off"), b.do_recompute)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "0", "0"]


# 3, 4 --------------------------------------------------------------------------------
def _classifier(tiny_release):
    backbone = gau_alpha.build_transformer_model(
        os.path.join(tiny_release, "bert_config.json"), os.path.join(tiny_release, "bert_model.ckpt"),
        dropout_rate=0.0, attention_dropout_rate=0.0,
    )
    pooled = tf.keras.layers.Lambda(lambda x: x[:, 0])(backbone.output)
    logits = tf.keras.layers.Dense(3, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=1))(pooled)
    return tf.keras.Model(backbone.inputs, logits)


def _fixed_batch():
    tokens, segments = padded_batch([9, 12, 7, 12], TINY_CONFIG["vocab_size"], seed=3)
    return [tokens, segments], np.array([0, 1, 2, 1])


OPTIMIZERS = {
    "Adam": lambda: b4k_optimizers.Adam(learning_rate=1e-3),
    "AdaFactor(float lr)": lambda: b4k_optimizers.AdaFactor(learning_rate=1e-3),
    "AdaFactor(lr=None)": lambda: b4k_optimizers.AdaFactor(learning_rate=None),
    "weight_decay": lambda: b4k_optimizers.extend_with_weight_decay(b4k_optimizers.Adam)(
        learning_rate=1e-3, weight_decay_rate=0.01),
    "layer_adaptation": lambda: b4k_optimizers.extend_with_layer_adaptation(b4k_optimizers.Adam)(learning_rate=1e-3),
    "piecewise_linear_lr": lambda: b4k_optimizers.extend_with_piecewise_linear_lr(b4k_optimizers.AdaFactor)(
        learning_rate=1e-3, lr_schedule={2: 1.0, 100: 0.5}),
    "gradient_accumulation": lambda: b4k_optimizers.extend_with_gradient_accumulation(b4k_optimizers.Adam)(
        learning_rate=1e-3, grad_accum_steps=2),
    "lookahead": lambda: b4k_optimizers.extend_with_lookahead(b4k_optimizers.Adam)(learning_rate=1e-3),
    "exponential_moving_average": lambda: b4k_optimizers.extend_with_exponential_moving_average(
        b4k_optimizers.Adam)(learning_rate=1e-3, ema_momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_bert4keras_optimizers_train_in_model_fit(tiny_release, name):
    optimizer = OPTIMIZERS[name]()
    assert isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer)
    model = _classifier(tiny_release)
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer=optimizer)
    x, y = _fixed_batch()
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=8, batch_size=4, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert after < before, (name, before, after)


def test_gradient_accumulation_updates_every_second_step(tiny_release):
    optimizer = b4k_optimizers.extend_with_gradient_accumulation(b4k_optimizers.Adam)(
        learning_rate=1e-2, grad_accum_steps=2)
    model = _classifier(tiny_release)
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer=optimizer)
    x, y = _fixed_batch()
    kernel = model.layers[-1].kernel
    start = kernel.numpy().copy()
    # bert4keras applies the gradients accumulated over the previous 2 steps at every
    # step whose index is a multiple of 2: step 0 applies nothing, step 2 applies 0 + 1.
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(kernel.numpy(), start)
    model.train_on_batch(x, y)
    assert np.abs(kernel.numpy() - start).max() > 1e-4


def test_adafactor_keeps_one_learning_rate_variable():
    optimizer = b4k_optimizers.AdaFactor(learning_rate=5e-4)
    first, second = optimizer.learning_rate, optimizer.learning_rate
    assert first is second
    assert float(first.numpy()) == pytest.approx(5e-4)


# 5 ----------------------------------------------------------------------------------
def test_sibling_layers_get_distinct_initial_weights(bert_config_path):
    model = bert4keras_build(bert_config_path, model="bert")
    attention = model.get_layer("Transformer-0-MultiHeadSelfAttention")
    kernels = [attention.q_dense.kernel, attention.k_dense.kernel, attention.v_dense.kernel, attention.o_dense.kernel]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernels[i].numpy(), kernels[j].numpy()), (i, j)
    ffn = model.get_layer("Transformer-0-FeedForward")
    first, second = [w.numpy() for w in ffn.trainable_weights if w.shape.rank == 2]
    assert not np.allclose(first[:, :32], second[:32, :].T)
    # the standard deviation is still bert4keras's 0.02 truncated normal
    assert 0.012 < kernels[0].numpy().std() < 0.022


def test_initialisation_is_reproducible_with_a_seed(bert_config_path):
    tf.keras.utils.set_random_seed(11)
    a = bert4keras_build(bert_config_path, model="bert").get_layer("Transformer-1-MultiHeadSelfAttention").get_weights()
    tf.keras.utils.set_random_seed(11)
    b = bert4keras_build(bert_config_path, model="bert").get_layer("Transformer-1-MultiHeadSelfAttention").get_weights()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# 6 ----------------------------------------------------------------------------------
def _gradients_code(release, bert_config, out, policy="float32"):
    return textwrap.dedent(f"""
        import numpy as np
        import gau_alpha, tensorflow as tf
        from bert4keras.models import build_transformer_model as b4k
        from helpers import padded_batch
        tf.keras.mixed_precision.set_global_policy({policy!r})
        results = {{}}
        tokens, segments = padded_batch([7, 12], 200, seed=5)
        for name, build in [
            ("gau_alpha", lambda: gau_alpha.build_transformer_model({release!r} + "/bert_config.json",
                                                                    {release!r} + "/bert_model.ckpt", dropout_rate=0.0,
                                                                    attention_dropout_rate=0.0)),
            ("roformer_v2", lambda: b4k({bert_config!r}, model="roformer_v2")),
            ("bert", lambda: b4k({bert_config!r}, model="bert")),
        ]:
            tf.keras.utils.set_random_seed(3)
            model = build()
            with tf.GradientTape() as tape:
                out = model([tokens, segments], training=True)
                loss = tf.reduce_sum(tf.cast(out, tf.float32) ** 2)
            grads = tape.gradient(loss, model.trainable_weights)
            for w, g in zip(model.trainable_weights, grads):
                results[name + ":" + w.name] = tf.convert_to_tensor(g).numpy().astype("float32")
        np.savez({out!r}, **results)
    """)


def test_recompute_gives_exact_gradients(tiny_release, bert_config_path, tmp_path):
    """RECOMPUTE=1 (checkpointing): the same gradients as without, for GAU and for
    multi-head attention (whose q, k, v are one tensor)."""
    outputs = {}
    for flag in ("0", "1"):
        out = str(tmp_path / ("grads%s.npz" % flag))
        result = run_python(_gradients_code(str(tiny_release), bert_config_path, out), tmp_path, RECOMPUTE=flag)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[flag] = dict(np.load(out))
    assert sorted(outputs["0"]) == sorted(outputs["1"])
    assert any(k.startswith("bert:") and "MultiHeadSelfAttention" in k for k in outputs["0"])
    for key, plain in outputs["0"].items():
        np.testing.assert_allclose(outputs["1"][key], plain, rtol=1e-4, atol=max(1e-5 * np.abs(plain).max(), 1e-9), err_msg=key)


def test_recompute_with_mixed_precision(tiny_release, bert_config_path, tmp_path):
    out = str(tmp_path / "grads.npz")
    result = run_python(_gradients_code(str(tiny_release), bert_config_path, out, "mixed_float16"), tmp_path, RECOMPUTE="1")
    assert result.returncode == 0, result.stderr[-3000:]
    grads = dict(np.load(out))
    assert all(np.isfinite(g).all() for g in grads.values())
    assert any(np.abs(g).max() > 0 for g in grads.values())


# 7 ----------------------------------------------------------------------------------
def test_bert_save_weights_as_checkpoint_in_tf1_format(bert_config_path, tmp_path):
    transformer = bert4keras_build(bert_config_path, model="bert", with_pool=True, with_nsp=True, return_keras_model=False)
    transformer.save_weights_as_checkpoint(str(tmp_path / "bert_model.ckpt"))
    assert (tmp_path / "bert_model.ckpt.index").exists()
    assert (tmp_path / "bert_model.ckpt.data-00000-of-00001").exists()
    saved = gau_alpha.read_tf1_checkpoint(tmp_path / "bert_model.ckpt")
    nsp = transformer.model.get_layer("NSP-Proba").kernel.numpy()
    # bert4keras stores the NSP kernel transposed, as Google's BERT does
    np.testing.assert_array_equal(saved["cls/seq_relationship/output_weights"], nsp.T)
    reloaded = bert4keras_build(bert_config_path, str(tmp_path / "bert_model.ckpt"), model="bert",
                                with_pool=True, with_nsp=True)
    for a, b in zip(transformer.model.get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# 8 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("policy, tolerance", [("mixed_float16", 0.05), ("mixed_bfloat16", 0.25)])
def test_mixed_precision_gau_alpha_and_reference(tiny_release, policy, tolerance):
    from reference import ReferenceGAUAlpha

    config_path = os.path.join(tiny_release, "bert_config.json")
    ckpt = os.path.join(tiny_release, "bert_model.ckpt")
    tokens, segments = padded_batch([20, 40, 300], TINY_CONFIG["vocab_size"], seed=4)
    float32 = gau_alpha.build_transformer_model(config_path, ckpt, with_mlm="linear").predict([tokens, segments], verbose=0)
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        ours = gau_alpha.build_transformer_model(config_path, ckpt, with_mlm="linear", application="unilm")
        reference = bert4keras_build(config_path, ckpt, model=ReferenceGAUAlpha, with_mlm="linear")
        got = ours.predict([tokens, np.zeros_like(segments)], verbose=0)
        ref = reference.predict([tokens, segments], verbose=0)
        ours_encoder = gau_alpha.build_transformer_model(config_path, ckpt, with_mlm="linear")
        got_encoder = ours_encoder.predict([tokens, segments], verbose=0)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    for value in (got, ref, got_encoder):
        assert np.isfinite(value).all()
    scale = np.abs(float32).max()
    assert np.abs(got_encoder - float32).max() <= tolerance * scale
    assert np.abs(ref - float32).max() <= tolerance * scale

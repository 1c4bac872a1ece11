"""Runs Keras 3 GAU-alpha jobs in a child process with a chosen backend (KERAS_BACKEND).

``python tests/keras3_worker.py JOB ARGS_JSON`` with JOB one of the functions below; each
reads and writes ``.npz``/``.json`` files named in ARGS_JSON. The parent test compares them
with the tf-keras model, so every backend runs in its own interpreter, as in CI.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def outputs(args):
    """Last hidden states and MLM logits (all positions) of a preset on a padded batch."""
    import keras

    from gau_alpha.keras3 import GAUAlphaBackbone, GAUAlphaMaskedLM

    batch = np.load(args["inputs"])
    tokens, segments = batch["token_ids"], batch["segment_ids"]
    x = {"token_ids": tokens, "segment_ids": segments, "padding_mask": (tokens != 0).astype("int32")}
    backbone = GAUAlphaBackbone.from_preset(args["preset"], **args.get("backbone_kwargs", {}))
    hidden = keras.ops.convert_to_numpy(backbone(x, training=False))
    mlm = GAUAlphaMaskedLM(backbone=backbone, preprocessor=None)
    positions = np.tile(np.arange(tokens.shape[1], dtype="int32"), (tokens.shape[0], 1))
    logits = keras.ops.convert_to_numpy(mlm({**x, "mask_positions": positions}, training=False))
    np.savez(args["output"], hidden=hidden.astype("float32"), logits=logits, backend=keras.backend.backend(),
             tf_loaded="tensorflow" in sys.modules)


def presets(args):
    """Release -> save_to_preset -> from_preset (backbone and classifier), torch layout,
    strict-loading errors; writes a JSON report for the parent to assert on."""
    import keras

    from gau_alpha.errors import CheckpointError
    from gau_alpha.keras3 import GAUAlphaBackbone, GAUAlphaTextClassifier, GAUAlphaTokenizer

    report = {}
    batch = np.load(args["inputs"])
    x = {"token_ids": batch["token_ids"], "segment_ids": batch["segment_ids"],
         "padding_mask": (batch["token_ids"] != 0).astype("int32")}
    release = GAUAlphaBackbone.from_preset(args["release"])
    release.save_to_preset(args["preset"])
    again = GAUAlphaBackbone.from_preset(args["preset"])
    report["preset_weights_equal"] = [
        bool(np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)))
        for a, b in zip(release.weights, again.weights)]
    report["preset_paths_equal"] = [a.path for a in release.weights] == [b.path for b in again.weights]
    report["preset_outputs_equal"] = bool(np.array_equal(keras.ops.convert_to_numpy(release(x)),
                                                         keras.ops.convert_to_numpy(again(x))))
    report["config_round_trip"] = GAUAlphaBackbone.from_config(release.get_config()).get_config() == release.get_config()
    torch_dir = GAUAlphaBackbone.from_preset(args["torch"])
    report["torch_layout_equal"] = all(
        np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(release.weights, torch_dir.weights))
    classifier = GAUAlphaTextClassifier.from_preset(args["release"], num_classes=3, sequence_length=16)
    classifier.save_to_preset(args["task_preset"])
    reloaded = GAUAlphaTextClassifier.from_preset(args["task_preset"])
    texts = ["今天天气不错", "北京是中国的首都。"]
    report["task_preset_outputs_equal"] = bool(np.array_equal(
        np.asarray(classifier.predict(texts, verbose=0)), np.asarray(reloaded.predict(texts, verbose=0))))
    report["task_preset_sequence_length"] = reloaded.preprocessor.sequence_length
    tokenizer = GAUAlphaTokenizer.from_preset(args["task_preset"])
    report["preset_tokenizer_ids"] = [int(i) for i in keras.ops.convert_to_numpy(tokenizer("北京是中国的首都。"))]
    report["errors"] = {}
    for name, path in args["broken"].items():
        try:
            GAUAlphaBackbone.from_preset(path)
            report["errors"][name] = None
        except CheckpointError as error:
            report["errors"][name] = str(error)
    with open(args["output"], "w", encoding="utf-8") as handle:
        json.dump(report, handle, ensure_ascii=False)


def tokenize(args):
    """Ids of ``args["texts"]`` on the Python path, inside tf.data, and packed pairs."""
    import keras

    from gau_alpha.keras3 import GAUAlphaTextClassifierPreprocessor, GAUAlphaTokenizer

    texts = args["texts"]
    tokenizer = GAUAlphaTokenizer()
    python_ids = [[int(i) for i in row] for row in tokenizer(texts)]
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(64).map(tokenizer)
    graph_ids = [[int(i) for i in row] for batch in dataset for row in batch.to_list()]
    preprocessor = GAUAlphaTextClassifierPreprocessor(tokenizer, sequence_length=args["sequence_length"])
    packed = preprocessor(x=(texts[:4], texts[4:8]))
    result = {"python": python_ids, "graph": graph_ids,
              "pair_token_ids": keras.ops.convert_to_numpy(packed["token_ids"]).tolist(),
              "pair_segment_ids": keras.ops.convert_to_numpy(packed["segment_ids"]).tolist(),
              "pair_padding_mask": keras.ops.convert_to_numpy(packed["padding_mask"]).astype(int).tolist()}
    with open(args["output"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def imports(args):
    """Import gau_alpha.keras3 with tf_keras and bert4keras made unimportable, build and run."""
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tf_keras", "bert4keras"):
                raise ImportError("blocked " + name)

    sys.meta_path.insert(0, Block())
    import keras

    import gau_alpha.keras3 as k3

    backbone = k3.GAUAlphaBackbone(vocabulary_size=200, num_layers=1, hidden_dim=16, intermediate_dim=32, key_size=8)
    ones = np.ones((1, 4), "int32")
    out = backbone({"token_ids": ones, "segment_ids": 0 * ones, "padding_mask": ones})
    with open(args["output"], "w", encoding="utf-8") as handle:
        json.dump({"keras": keras.__version__, "backend": keras.backend.backend(), "shape": list(out.shape),
                   "modules": sorted(m for m in ("tf_keras", "bert4keras") if m in sys.modules)}, handle)


def clue(args):
    """run_keras3_clue on bundled samples (the fit smoke test); writes its metrics."""
    from gau_alpha.keras3.clue import run_keras3_clue

    results = {}
    for task in args["tasks"]:
        results[task] = run_keras3_clue(task, os.path.join(args["output_dir"], task), args["release"],
                                        epochs=args["epochs"], batch_size=32, sequence_length=48,
                                        learning_rate=args["learning_rate"])
    with open(args["output"], "w", encoding="utf-8") as handle:
        json.dump(results, handle)


def _train(release, batch, steps, distribution):
    """``steps`` SGD steps of a dropout-free classifier on ``batch``; returns the weights."""
    import keras

    from gau_alpha.keras3 import GAUAlphaBackbone, GAUAlphaTextClassifier

    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(0)
    backbone = GAUAlphaBackbone.from_preset(release, dropout=0.0, attention_dropout=0.0)
    model = GAUAlphaTextClassifier(backbone, num_classes=3, dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    history = model.fit(x, batch["labels"], batch_size=len(batch["labels"]), epochs=steps, shuffle=False, verbose=0)
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    return weights, history.history["loss"]


def data_parallel(args):
    """The same training on one device and with keras.distribution.DataParallel on all."""
    import jax
    import keras

    data = np.load(args["inputs"])
    batch = {"token_ids": data["token_ids"], "segment_ids": data["segment_ids"],
             "padding_mask": (data["token_ids"] != 0).astype("int32"), "labels": data["labels"]}
    single, single_loss = _train(args["release"], batch, args["steps"], None)
    devices = jax.devices()
    parallel, parallel_loss = _train(args["release"], batch, args["steps"],
                                     keras.distribution.DataParallel(devices=devices))
    initial = np.load(args["inputs"])["token_ids"]  # noqa: F841 (kept for symmetry with the report)
    diffs = [float(np.abs(a - b).max()) for a, b in zip(single, parallel)]
    with open(args["output"], "w", encoding="utf-8") as handle:
        json.dump({"devices": len(devices), "max_diff": max(diffs), "single_loss": single_loss,
                   "parallel_loss": parallel_loss}, handle)


def export(args):
    """Fine-tune a classifier a few steps, model.export() it, reload with TensorFlow, compare."""
    import keras
    import tensorflow as tf

    from gau_alpha.keras3 import GAUAlphaBackbone, GAUAlphaTextClassifier

    data = np.load(args["inputs"])
    x = {"token_ids": data["token_ids"].astype("int32"), "segment_ids": data["segment_ids"].astype("int32"),
         "padding_mask": (data["token_ids"] != 0).astype("int32")}
    model = GAUAlphaTextClassifier(GAUAlphaBackbone.from_preset(args["release"]), num_classes=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, data["labels"], batch_size=4, epochs=2, verbose=0)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    model.export(args["saved_model"], format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(args["saved_model"])
    got = reloaded.serve({k: tf.constant(v) for k, v in x.items()})
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    with open(args["output"], "w", encoding="utf-8") as handle:
        json.dump({"max_diff": float(np.abs(got - expected).max()), "shape": list(got.shape),
                   "files": sorted(os.listdir(args["saved_model"]))}, handle)


if __name__ == "__main__":
    text = sys.argv[2]
    if text.startswith("@"):  # long arguments travel in a file
        with open(text[1:], encoding="utf-8") as handle:
            text = handle.read()
    globals()[sys.argv[1]](json.loads(text))

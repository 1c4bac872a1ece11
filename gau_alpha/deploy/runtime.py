"""Running a fine-tuned model on length-bucketed batches: Keras, a SavedModel, onnxruntime.

A *batch runner* is a callable ``runner(inputs) -> outputs``: ``inputs`` maps the task's input
names (``token_ids``, ``segment_ids`` int32 ``(B, N)`` or ``(B, K, N)``; ``span_mask`` /
``choice_mask`` float32) to one zero-padded batch, ``outputs`` is the model's one output
(a NumPy array, first axis ``B``). :func:`run_batches` feeds a runner the batches the run's
own prediction uses (:func:`gau_alpha.clue.features.make_batches`: features sorted by length,
each batch padded to its longest feature) and reduces each output row with the task's
``summarize``. With the ``tf`` runtime, :func:`trainer_for` gives the run's own prediction
path (:class:`gau_alpha.clue.training.Trainer`), so predictions equal the run's submission.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gau_alpha import interrupts
from gau_alpha.errors import ModelDirError

__all__ = [
    "input_specs",
    "trainer_for",
    "run_batches",
    "KerasRunner",
    "SavedModelRunner",
    "OnnxRunner",
    "BatchRunner",
]

BatchRunner = Callable[[Dict[str, np.ndarray]], np.ndarray]


def input_specs(task: Any) -> List[Tuple[str, Any, int]]:
    """``(name, numpy dtype, rank)`` of each model input, in the model's input order:
    ids int32 of rank 2 (rank 3 for the multiple-choice tasks), masks float32 of rank 2."""
    from gau_alpha.clue.tasks.choice import C3Task, ChidTask

    id_rank = 3 if isinstance(task, (C3Task, ChidTask)) else 2
    specs = []
    for name in task.input_names():
        if name.endswith("_mask"):
            specs.append((name, np.float32, 2))
        else:
            specs.append((name, np.int32, id_rank))
    return specs


def tensor_specs(task: Any) -> List[Any]:
    """The inputs as ``tf.TensorSpec`` with dynamic batch and length (for tracing and export)."""
    import tensorflow as tf

    return [tf.TensorSpec((None,) * rank, tf.as_dtype(dtype), name=name) for name, dtype, rank in input_specs(task)]


def trainer_for(finetuned: Any, progress: bool = False, xla: Optional[bool] = None) -> Any:
    """The run's prediction path for a :class:`~gau_alpha.deploy.finetuned.FinetunedModel`:
    a :class:`gau_alpha.clue.training.Trainer` on its Keras model (cached per setting).

    Args:
        xla: XLA-compiled prediction, when the Trainer offers the choice; default: the run's
            setting (``finetuned.json`` ``runtime.xla``), else the Trainer's default.
    """
    import tensorflow as tf

    from gau_alpha.clue.training import Trainer

    if xla is None:
        xla = finetuned.runtime_settings.get("xla")
    cache = finetuned._trainers
    key = (bool(progress), xla)
    if key not in cache:
        options: Dict[str, Any] = {}
        if xla is not None and "xla" in inspect.signature(Trainer).parameters:
            options["xla"] = bool(xla)
        cache[key] = Trainer(finetuned.task, finetuned.keras_model(), None, tf.distribute.get_strategy(),
                             progress=progress, **options)
    return cache[key]


def run_batches(runner: BatchRunner, task: Any, features: Sequence[Any], batch_size: int,
                desc: str = "predict", progress: bool = False) -> List[Any]:
    """The task's summary of each feature (in the order of ``features``), computed by
    ``runner`` on length-sorted, per-batch padded batches of ``batch_size``."""
    from tqdm import tqdm

    from gau_alpha.clue.features import collate_inputs, make_batches

    summaries: List[Any] = [None] * len(features)
    batches = make_batches([feature.length for feature in features], batch_size)
    for indices in tqdm(batches, desc=desc, unit="batch", disable=not progress, file=sys.stderr, dynamic_ncols=True):
        interrupts.check()
        batch = [features[i] for i in indices]
        outputs = runner(collate_inputs(batch))
        for index, feature, output in zip(indices, batch, outputs):
            summaries[index] = task.summarize(feature, output)
    return summaries


class KerasRunner:
    """A Keras task model as a batch runner (``tf.function``, optionally XLA-compiled).

    Args:
        model: the task model (inputs named like the task's inputs).
        task: the task (input order and dtypes).
        jit_compile: compile with XLA (one compilation per distinct batch shape).
    """

    def __init__(self, model: Any, task: Any, jit_compile: bool = False) -> None:
        import tensorflow as tf

        self.input_names = [name for name, _, _ in input_specs(task)]

        @tf.function(input_signature=tensor_specs(task), autograph=False, jit_compile=jit_compile)
        def forward(*inputs):
            return model(list(inputs), training=False)

        self._forward = forward

    def __call__(self, inputs: Dict[str, np.ndarray]) -> np.ndarray:
        return self._forward(*[inputs[name] for name in self.input_names]).numpy()


class SavedModelRunner:
    """An exported SavedModel's ``serving_default`` signature as a batch runner."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
            self._function = loaded.signatures["serving_default"]
        except (OSError, KeyError, ValueError) as error:
            raise ModelDirError("%s: not a readable SavedModel with a serving_default signature (%s)"
                                % (path, str(error).splitlines()[0] if str(error) else type(error).__name__)) from None
        self._loaded = loaded  # keeps the variables alive
        self.input_specs = dict(self._function.structured_input_signature[1])
        outputs = list(self._function.structured_outputs)
        self.output_name = outputs[0]

    def __call__(self, inputs: Dict[str, np.ndarray]) -> np.ndarray:
        import tensorflow as tf

        arguments = {name: tf.constant(inputs[name], dtype=spec.dtype) for name, spec in self.input_specs.items()}
        return self._function(**arguments)[self.output_name].numpy()


class OnnxRunner:
    """An ONNX model in onnxruntime (CPU) as a batch runner.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: onnxruntime's default, one per core).
        optimization: graph optimisation level: ``all`` (default), ``extended``, ``basic``, ``none``.
    """

    LEVELS = ("all", "extended", "basic", "none")

    def __init__(self, path: Path, threads: Optional[int] = None, optimization: str = "all") -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelDirError("%s: file not found" % path)
        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[optimization]
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable models
            raise ModelDirError("%s: not a readable ONNX model (%s)" % (path, str(error).splitlines()[0][:200])) from None
        self.path = path
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, inputs: Dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], {name: inputs[name] for name in self.input_names})[0]

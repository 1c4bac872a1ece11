"""A pre-training run's settings, and every check of its inputs before anything is written.

:func:`resolve` turns :class:`PretrainSettings` (what the user asked for) into
:class:`Inputs` (the files and values the run will use): the model config (``--config``,
else ``--init-from``'s, else the release's), the vocab (``--vocab``, else ``--init-from``'s,
else the release's), which must have exactly ``vocab_size`` lines, the checkpoint of
``--init-from`` (a release-layout directory, :func:`gau_alpha.model_dir.open_model_dir`), the
corpus (read once, line by line: :func:`gau_alpha.pretrain.corpus.check_corpus`) and the
learning-rate schedule. Each problem is one :class:`~gau_alpha.errors.GauAlphaError` naming the
file, line, key or option. Pure Python (the checkpoint's shapes are checked when the model is
built, :mod:`gau_alpha.pretrain.trainer`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from gau_alpha.errors import ConfigError, ModelDirError
from gau_alpha.model_dir import count_vocab_lines, open_model_dir, read_config
from gau_alpha.resources import RELEASE_CONFIG, RELEASE_VOCAB

from .corpus import CorpusSummary, check_corpus
from .schedule import RECIPE_SCHEDULE, Schedule, format_schedule, parse_schedule, scaled_schedule

__all__ = ["MODELS", "RESIDUAL_MODES", "OPTIMIZERS", "PRECISIONS", "PretrainSettings", "Inputs", "resolve",
           "RESUME_KEYS", "output_config"]

MODELS = ("gau_alpha", "roformer_v2", "bert")
RESIDUAL_MODES = ("cumulative", "mean", "previous")
OPTIMIZERS = ("lamb", "adafactor")
PRECISIONS = ("off", "float16", "bfloat16")
RECIPE_LEARNING_RATE = 1.76e-3
RECIPE_WEIGHT_DECAY = 0.01


@dataclass
class PretrainSettings:
    """What a run was asked to do (the options of ``gau-alpha pretrain``)."""

    corpus: List[Path]
    output_dir: Path
    valid: List[Path] = field(default_factory=list)
    config: Optional[Path] = None
    vocab: Optional[Path] = None
    init_from: Optional[Path] = None
    model: str = "gau_alpha"
    residual_attention: Optional[str] = None
    steps: int = 1000
    batch_size: int = 32
    grad_accum_steps: int = 1
    maxlen: int = 512
    learning_rate: float = RECIPE_LEARNING_RATE
    lr_schedule: Optional[str] = None
    optimizer: str = "lamb"
    weight_decay: float = RECIPE_WEIGHT_DECAY
    dropout: Optional[float] = None
    seed: int = 0
    mixed_precision: str = "off"
    strategy: str = "default"
    resume: bool = False
    overwrite: bool = False
    save_every: Optional[int] = None
    log_every: int = 10
    eval_every: Optional[int] = None
    valid_sequences: int = 64
    window: int = 512
    segmenter: str = "rjieba"
    progress: bool = True


RESUME_KEYS = ("corpus", "config_values", "vocab", "init_from", "model", "residual_attention", "batch_size",
               "grad_accum_steps", "maxlen", "learning_rate", "schedule", "optimizer", "weight_decay", "dropout",
               "seed", "mixed_precision", "window", "segmenter")
"""Settings a resumed run must share with the run it continues (else it would not be that run)."""


@dataclass
class Inputs:
    """What :func:`resolve` found: everything a run reads, checked."""

    settings: PretrainSettings
    config_path: Path
    config: Dict[str, Any]
    vocab: Path
    checkpoint: Optional[Path]
    corpus: CorpusSummary
    valid: Optional[CorpusSummary]
    schedule: Schedule

    def record(self) -> Dict[str, Any]:
        """The run's identity as JSON (compared on ``--resume``, written to ``metrics.json``)."""
        s = self.settings
        return {
            "corpus": [str(p) for p in s.corpus], "valid": [str(p) for p in s.valid],
            "config": str(self.config_path), "config_values": self.config, "vocab": str(self.vocab),
            "init_from": None if s.init_from is None else str(s.init_from), "model": s.model,
            "residual_attention": s.residual_attention, "steps": s.steps, "batch_size": s.batch_size,
            "grad_accum_steps": s.grad_accum_steps, "maxlen": s.maxlen, "learning_rate": s.learning_rate,
            "schedule": format_schedule(self.schedule), "optimizer": s.optimizer, "weight_decay": s.weight_decay,
            "dropout": s.dropout, "seed": s.seed, "mixed_precision": s.mixed_precision, "strategy": s.strategy,
            "window": s.window, "segmenter": s.segmenter, "valid_sequences": s.valid_sequences,
        }


def _check_choice(value: Any, choices, option: str) -> None:
    if value not in choices:
        raise ConfigError("%s must be one of %s, got %r" % (option, ", ".join(map(str, choices)), value))


def _check_values(s: PretrainSettings) -> None:
    _check_choice(s.model, MODELS, "--model")
    _check_choice(s.optimizer, OPTIMIZERS, "--optimizer")
    _check_choice(s.mixed_precision, PRECISIONS, "--mixed-precision")
    if s.residual_attention is not None:
        _check_choice(s.residual_attention, RESIDUAL_MODES, "--residual-attention")
    for option, value in (("--steps", s.steps), ("--batch-size", s.batch_size),
                          ("--grad-accum-steps", s.grad_accum_steps), ("--log-every", s.log_every),
                          ("--valid-sequences", s.valid_sequences), ("--window", s.window)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError("%s must be a positive integer, got %r" % (option, value))
    if s.maxlen < 8:
        raise ConfigError("--maxlen must be at least 8, got %d" % s.maxlen)
    if not s.learning_rate > 0:
        raise ConfigError("--learning-rate must be positive, got %r" % s.learning_rate)
    if s.dropout is not None and not 0 <= s.dropout < 1:
        raise ConfigError("--dropout must be in [0, 1), got %r" % s.dropout)
    if s.resume and s.overwrite:
        raise ConfigError("give --resume (continue the run in %s) or --overwrite (replace it), not both" % s.output_dir)


def resolve(settings: PretrainSettings) -> Inputs:
    """Check everything the run reads and resolve the defaults (see the module docstring).

    Raises:
        ConfigError: a bad option value, an invalid config (naming the file and key).
        ModelDirError: a missing file, an ``--init-from`` directory that is not a model
            directory, or a vocab whose line count is not the config's ``vocab_size``.
        DataError: the corpus (or the validation corpus) is missing, empty or has a bad
            line (naming the file and line).
    """
    s = settings
    _check_values(s)
    checkpoint = None
    init_config = init_vocab = None
    if s.init_from is not None:
        files = open_model_dir(s.init_from)
        checkpoint, init_config, init_vocab = files.checkpoint, files.config, files.vocab
    config_path = Path(s.config or init_config or RELEASE_CONFIG)
    if s.config is None and init_config is None and s.model != "gau_alpha":
        raise ConfigError("--model %s needs --config (a bert_config.json of its sizes) or --init-from" % s.model)
    config = read_config(config_path, gau_alpha_sizes=s.model == "gau_alpha")
    for key in ("vocab_size", "hidden_size", "num_hidden_layers"):
        if key not in config:
            raise ConfigError("%s: missing key %r" % (config_path, key))
    vocab = Path(s.vocab or init_vocab or RELEASE_VOCAB)
    lines = count_vocab_lines(vocab)
    if lines != config["vocab_size"]:
        raise ModelDirError("vocab %s has %d tokens but config %s says vocab_size %d: they do not belong together"
                            % (vocab, lines, config_path, config["vocab_size"]))
    if s.lr_schedule:
        schedule = parse_schedule(s.lr_schedule)
    else:
        schedule = scaled_schedule(s.steps, RECIPE_SCHEDULE)
    corpus = check_corpus(s.corpus)
    valid = check_corpus(s.valid) if s.valid else None
    return Inputs(s, config_path, config, vocab, checkpoint, corpus, valid, schedule)


def output_config(inputs: Inputs) -> Dict[str, Any]:
    """The ``bert_config.json`` the run writes: the input config, plus the residual-attention
    keys when the model has it (so ``build_transformer_model`` and ``gau-alpha clue`` rebuild
    the same graph), and the run's dropout."""
    config = dict(inputs.config)
    s = inputs.settings
    if s.residual_attention is not None:
        config.update(residual_attention_scores=True, residual_attention_mode=s.residual_attention)
    return config


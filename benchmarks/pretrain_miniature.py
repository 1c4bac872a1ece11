"""The seeds' pre-training claims in miniature (not CI): RealFormer vs BERT Post-LN, GAU-alpha vs
RoFormerV2, residual attention for GAU-alpha, robustness to a higher learning rate, and whether
the miniature pre-training helps fine-tuning.

Every model is pre-trained by ``gau-alpha pretrain``'s own code (:func:`gau_alpha.pretrain.run.
run_pretraining`: whole-word MLM, LAMB, the recipe's schedule scaled to ``--steps``) on the same
corpus, with the same steps, batch, sequence length and seeds:

=====================  ========================================================================
model                  what it is
=====================  ========================================================================
bert                   BERT Post-LN (bert4keras's ``BERT``)
realformer             BERT + RealFormer residual attention (``cumulative``, the paper's)
roformer_v2            RoFormerV2 (post-norm RMS, no biases, RoPE)
gau_alpha              GAU-alpha (twice the layers: one GAU ~ half a transformer block, as
                       in the release: 24 GAU layers vs RoFormerV2's 12)
gau_alpha_residual     GAU-alpha + residual attention (``cumulative``)
=====================  ========================================================================

For each (model, learning rate, seed): the validation MLM loss and accuracy every
``--eval-every`` steps (the same fixed, masked validation sequences for all). Then the GAU-alpha
checkpoints (with and without residual attention) and a random GAU-alpha of the same size are
fine-tuned with ``gau-alpha clue``'s pipeline on the bundled CLUE samples (tnews, afqmc, cluener
by default). ``gau-alpha clue`` builds GAU-alpha encoders only, so the BERT and RoFormerV2
checkpoints are compared on pre-training alone.

Verdicts (one per claim, paired over seeds): **confirmed** when the claimed winner wins in
every seed and the mean difference exceeds its 95% Student-t margin (t(seeds-1) x standard
error), **contradicted** when the other side does, **within noise** otherwise, and **too few
seeds** below 3 seeds.

Usage (the full run; sized for about an hour on 2 idle CPU cores from short runs measured on a
loaded machine: ~1.1 CPU-seconds per step of the default size, so 30 runs of 250 steps plus 27
fine-tunings; lower ``--steps`` or ``--seeds`` if it runs long)::

    python -m benchmarks.pretrain_miniature --corpus /path/pretrain-corpus/train.jsonl \\
        --valid /path/pretrain-corpus/valid.jsonl

Writes ``benchmarks/results/cpu/pretrain_miniature.{json,md,png}`` (``--results-dir``).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import RESULTS_DIR, git_revision, machine_info

MODELS = ("bert", "realformer", "roformer_v2", "gau_alpha", "gau_alpha_residual")
TASKS = ("tnews", "afqmc", "cluener")
VOCAB_SIZE = 12000


def model_configs(hidden: int, layers: int, heads: int, key_size: int) -> Dict[str, Tuple[str, Optional[str], Dict]]:
    """model name -> (``--model``, residual mode, bert_config values)."""
    common = {"vocab_size": VOCAB_SIZE, "type_vocab_size": 2, "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1}
    transformer = dict(common, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                       intermediate_size=4 * hidden, max_position_embeddings=512)
    gau = dict(common, hidden_size=hidden, num_hidden_layers=2 * layers, num_attention_heads=1,
               attention_key_size=key_size, intermediate_size=2 * hidden, hidden_act="swish")
    return {
        "bert": ("bert", None, dict(transformer, hidden_act="gelu")),
        "realformer": ("bert", "cumulative", dict(transformer, hidden_act="gelu")),
        "roformer_v2": ("roformer_v2", None, dict(transformer, hidden_act="relu")),
        "gau_alpha": ("gau_alpha", None, gau),
        "gau_alpha_residual": ("gau_alpha", "cumulative", gau),
    }


def count_parameters(output_dir: Path) -> int:
    from gau_alpha.checkpoints import list_tf1_checkpoint

    shapes = list_tf1_checkpoint(output_dir / "bert_model.ckpt")
    return int(sum(math.prod(shape) for shape in shapes.values()))


# ---------------------------------------------------------------------------- running
def pretrain(name: str, spec, args, learning_rate: float, seed: int, work: Path) -> Dict[str, Any]:
    import tensorflow as tf

    from gau_alpha.pretrain.run import run_pretraining
    from gau_alpha.pretrain.settings import PretrainSettings

    model, residual, config = spec
    directory = work / ("%s-lr%g-seed%d" % (name, learning_rate, seed))
    config_path = work / ("%s.json" % name)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    tf.keras.backend.clear_session()
    started = time.time()
    error = None
    try:
        result = run_pretraining(PretrainSettings(
            corpus=[Path(p) for p in args.corpus], valid=[Path(p) for p in args.valid], output_dir=directory,
            config=config_path, model=model, residual_attention=residual, steps=args.steps,
            batch_size=args.batch_size, maxlen=args.maxlen, learning_rate=learning_rate, seed=seed,
            save_every=args.steps, eval_every=args.eval_every, log_every=args.log_every,
            valid_sequences=args.valid_sequences, window=args.window, progress=False, overwrite=True))
        valid, history = result.valid, result.history
    except Exception as failure:  # a diverged run is a result, not a crash of the benchmark
        error, valid, history = "%s: %s" % (type(failure).__name__, str(failure).splitlines()[0][:200]), [], []
    row = {"model": name, "learning_rate": learning_rate, "seed": seed, "seconds": time.time() - started,
           "valid": valid, "history": history, "error": error, "directory": str(directory)}
    if error is None:
        row["parameters"] = count_parameters(directory)
        row["final_valid_loss"], row["final_valid_accuracy"] = valid[-1]["loss"], valid[-1]["mlm_accuracy"]
    print("pretrain %-20s lr %-8g seed %d: %s (%.0fs)" % (
        name, learning_rate, seed, error or "valid loss %.3f, accuracy %.2f%%" % (
            row["final_valid_loss"], row["final_valid_accuracy"]), row["seconds"]), file=sys.stderr, flush=True)
    return row


def finetune(init: str, model_dir: Path, task: str, seed: int, args, work: Path) -> Dict[str, Any]:
    from gau_alpha.clue.pipeline import RunOptions, run_clue
    from gau_alpha.clue.tasks import get_spec
    from gau_alpha.resources import clue_sample_dir

    defaults = get_spec(task).defaults
    output = work / ("ft-%s-%s-seed%d" % (init, task, seed))
    started = time.time()
    result = run_clue(RunOptions(
        task=task, data_dir=clue_sample_dir(task), output_dir=output, epochs=args.finetune_epochs,
        batch_size=args.finetune_batch_size, maxlen=min(defaults.maxlen, args.maxlen),
        learning_rate=args.finetune_learning_rate, seed=seed, model_dir=model_dir,
        max_steps_per_epoch=args.finetune_max_steps, overwrite=True, progress=False))
    print("finetune %-28s %-8s seed %d: %s %.2f (%.0fs)" % (init, task, seed, result.main_metric, result.best_score,
                                                         time.time() - started), file=sys.stderr, flush=True)
    return {"init": init, "task": task, "seed": seed, "metric": result.main_metric, "score": result.best_score,
            "seconds": time.time() - started}


def random_model(config: Dict[str, Any], seed: int, work: Path) -> Path:
    from gau_alpha.model_dir import create_random_model_dir

    return create_random_model_dir(work / ("random-gau-seed%d" % seed), config=config, seed=seed).directory


# ---------------------------------------------------------------------------- analysis
T_CRITICAL = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
"""Two-sided 95% Student t quantiles by degrees of freedom (seeds - 1)."""
MIN_SEEDS_FOR_VERDICT = 3


def compare(winner: Sequence[float], loser: Sequence[float]) -> Dict[str, Any]:
    """Paired comparison over seeds of ``winner - loser`` (the claimed winner first)."""
    differences = [a - b for a, b in zip(winner, loser) if a is not None and b is not None]
    if not differences:
        return {"verdict": "not measured", "mean": None, "differences": []}
    mean = statistics.fmean(differences)
    count = len(differences)
    error = statistics.stdev(differences) / math.sqrt(count) if count > 1 else float("inf")
    critical = T_CRITICAL.get(count - 1, 2.0)
    if count >= MIN_SEEDS_FOR_VERDICT and all(d > 0 for d in differences) and mean > critical * error:
        verdict = "confirmed"
    elif count >= MIN_SEEDS_FOR_VERDICT and all(d < 0 for d in differences) and -mean > critical * error:
        verdict = "contradicted"
    elif count < MIN_SEEDS_FOR_VERDICT:
        verdict = "too few seeds"
    else:
        verdict = "within noise"
    return {"verdict": verdict, "mean": mean, "standard_error": error, "differences": differences}


def _scores(rows: List[Dict[str, Any]], model: str, learning_rate: float, seeds: Sequence[int]) -> List[Optional[float]]:
    found = {r["seed"]: r.get("final_valid_accuracy") for r in rows
             if r["model"] == model and r["learning_rate"] == learning_rate}
    return [found.get(seed) for seed in seeds]


def claims(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows, seeds = results["pretraining"], results["settings"]["seeds"]
    base, high = results["settings"]["learning_rates"][0], results["settings"]["learning_rates"][-1]
    out = []

    def claim(text, winner, loser):
        out.append(dict(claim=text, **compare(winner, loser)))

    for lr in results["settings"]["learning_rates"]:
        claim("RealFormer beats BERT Post-LN (valid MLM accuracy, lr %g)" % lr,
              _scores(rows, "realformer", lr, seeds), _scores(rows, "bert", lr, seeds))
        claim("GAU-alpha beats RoFormerV2 (valid MLM accuracy, lr %g)" % lr,
              _scores(rows, "gau_alpha", lr, seeds), _scores(rows, "roformer_v2", lr, seeds))
        claim("residual attention helps GAU-alpha (valid MLM accuracy, lr %g)" % lr,
              _scores(rows, "gau_alpha_residual", lr, seeds), _scores(rows, "gau_alpha", lr, seeds))
    if high != base:
        def gain(model):
            return [None if h is None or b is None else h - b
                    for h, b in zip(_scores(rows, model, high, seeds), _scores(rows, model, base, seeds))]
        claim("RealFormer gains more than BERT from the higher lr (%g -> %g)" % (base, high),
              gain("realformer"), gain("bert"))
    finetuning = results.get("finetuning", [])
    for task in results["settings"]["tasks"]:
        for init in ("gau_alpha", "gau_alpha_residual"):
            def score(name):
                found = {r["seed"]: r["score"] for r in finetuning if r["init"] == name and r["task"] == task}
                return [found.get(seed) for seed in seeds]
            if any(r["init"] == init for r in finetuning):
                claim("pre-trained %s beats random init on %s" % (init, task), score(init), score("random"))
    return out


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else ("%." + str(digits) + "f") % value


def render_markdown(results: Dict[str, Any]) -> str:
    s = results["settings"]
    seeds, rates = s["seeds"], s["learning_rates"]
    lines = ["# Pre-training in miniature", "",
             "Generated by `benchmarks/pretrain_miniature.py` (commit %s); command:" % results.get("commit"), "",
             "```", results["command"], "```", "",
             "Machine: %s, %s usable cores; took %.0f s." % (results["machine"].get("cpu_model"), results["machine"].get("usable_cpus"),
                                                     results["seconds"]), "",
             "Setup: whole-word MLM (rjieba, 15%%, 80/10/10), LAMB with the recipe's schedule scaled to %d steps, "
             "batch %d x %d tokens, seeds %s. Validation: the first %d packed sequences of the valid files, masked "
             "once (the same for every model)." % (s["steps"], s["batch_size"], s["maxlen"], seeds,
                                                   s["valid_sequences"]), "",
             "## Validation MLM accuracy (%) after the last step, per seed", "",
             "| model | parameters | " + " | ".join("lr %g" % lr for lr in rates) + " |",
             "|---|---:|" + "---:|" * len(rates)]
    for model in MODELS:
        rows = [r for r in results["pretraining"] if r["model"] == model]
        if not rows:
            continue
        parameters = next((r.get("parameters") for r in rows if r.get("parameters")), None)
        cells = []
        for lr in rates:
            values = _scores(rows, model, lr, seeds)
            shown = " / ".join(_fmt(v) for v in values)
            finite = [v for v in values if v is not None]
            mean = " (mean %s)" % _fmt(statistics.fmean(finite)) if len(finite) > 1 else ""
            cells.append(shown + mean)
        lines.append("| %s | %s | %s |" % (model, "—" if parameters is None else "{:,}".format(parameters),
                                         " | ".join(cells)))
    errors = [r for r in results["pretraining"] if r.get("error")]
    if errors:
        lines += ["", "Failed runs (counted as not measured): " + "; ".join(
            "%s lr %g seed %d: %s" % (r["model"], r["learning_rate"], r["seed"], r["error"]) for r in errors)]
    if results.get("finetuning"):
        lines += ["", "## Fine-tuning on the bundled CLUE samples (dev score, best epoch), per seed", "",
                  "| init | " + " | ".join(s["tasks"]) + " |", "|---|" + "---:|" * len(s["tasks"])]
        for init in ("random", "gau_alpha", "gau_alpha_residual"):
            cells = []
            for task in s["tasks"]:
                found = {r["seed"]: r["score"] for r in results["finetuning"] if r["init"] == init and r["task"] == task}
                cells.append(" / ".join(_fmt(found.get(seed)) for seed in seeds))
            lines.append("| %s | %s |" % (init, " | ".join(cells)))
    lines += ["", "## Verdicts", "", "| claim | verdict | mean difference (± s.e.) | per seed |", "|---|---|---:|---|"]
    for claim in results["claims"]:
        lines.append("| %s | **%s** | %s (± %s) | %s |" % (
            claim["claim"], claim["verdict"], _fmt(claim["mean"]), _fmt(claim.get("standard_error")),
            ", ".join(_fmt(d) for d in claim["differences"])))
    lines += ["", "A verdict is *confirmed* only when the claimed winner wins in every seed (at least %d) and the "
              "mean difference exceeds t(0.975, seeds-1) standard errors; with %d seed(s) and a miniature model "
              "and corpus, *within noise* is the expected outcome for small effects." % (
                  MIN_SEEDS_FOR_VERDICT, len(seeds)), ""]
    return "\n".join(lines)


def plot(results: Dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rates = results["settings"]["learning_rates"]
    figure = Figure(figsize=(5 * len(rates), 7), dpi=100)
    axes = figure.subplots(2, len(rates), squeeze=False)
    colours = dict(zip(MODELS, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
    for column, lr in enumerate(rates):
        for row, (key, label) in enumerate((("loss", "valid MLM loss"), ("mlm_accuracy", "valid MLM accuracy (%)"))):
            ax = axes[row][column]
            for run in results["pretraining"]:
                if run["learning_rate"] != lr or not run["valid"]:
                    continue
                ax.plot([v["step"] for v in run["valid"]], [v[key] for v in run["valid"]], color=colours[run["model"]],
                        alpha=0.8, label=run["model"] if run["seed"] == results["settings"]["seeds"][0] else None)
            ax.set_title("lr %g" % lr)
            ax.set_xlabel("step")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


# ---------------------------------------------------------------------------- main
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    from gau_alpha.resources import PRETRAIN_SAMPLE_DIR

    parser = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_miniature", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", default=[str(PRETRAIN_SAMPLE_DIR / "train.jsonl")])
    parser.add_argument("--valid", nargs="+", default=[str(PRETRAIN_SAMPLE_DIR / "valid.jsonl")])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4, help="transformer layers (GAU-alpha: twice as many)")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--key-size", type=int, default=64, help="GAU-alpha's attention key size")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--maxlen", type=int, default=64)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[5e-3, 2e-2],
                        help="the first is the base, the last the 'higher lr' (default 5e-3 2e-2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--valid-sequences", type=int, default=64)
    parser.add_argument("--tasks", nargs="*", choices=TASKS, default=list(TASKS),
                        help="fine-tuning tasks (none: skip fine-tuning)")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--finetune-batch-size", type=int, default=16)
    parser.add_argument("--finetune-learning-rate", type=float, default=5e-3)
    parser.add_argument("--finetune-max-steps", type=int, default=None, help="steps per fine-tuning epoch (smoke runs)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR / "cpu")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the runs go (default: a temporary directory)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import gau_alpha  # noqa: F401  (tf-keras first)

    args = parse_args(argv)
    started = time.time()
    command = "python -m benchmarks.pretrain_miniature " + " ".join(sys.argv[1:] if argv is None else argv)
    specs = model_configs(args.hidden, args.layers, args.heads, args.key_size)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="pretrain-miniature-"))
    work.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {
        "command": command, "commit": git_revision(), "machine": machine_info(),
        "settings": {"models": args.models, "hidden": args.hidden, "layers": args.layers, "heads": args.heads,
                     "steps": args.steps, "batch_size": args.batch_size, "maxlen": args.maxlen,
                     "learning_rates": args.learning_rates, "seeds": args.seeds, "tasks": args.tasks,
                     "valid_sequences": args.valid_sequences, "corpus": args.corpus, "valid": args.valid,
                     "configs": {name: specs[name][2] for name in args.models}},
        "pretraining": [], "finetuning": [],
    }
    for seed in args.seeds:  # interleaved: every model for one seed and lr before the next
        for learning_rate in args.learning_rates:
            for name in args.models:
                results["pretraining"].append(pretrain(name, specs[name], args, learning_rate, seed, work))
    base = args.learning_rates[0]
    for seed in args.seeds:
        for task in args.tasks:
            inits = [("random", random_model(specs["gau_alpha"][2], seed, work))]
            for name in ("gau_alpha", "gau_alpha_residual"):
                run = next((r for r in results["pretraining"] if r["model"] == name and r["seed"] == seed
                            and r["learning_rate"] == base and not r["error"]), None)
                if run is not None:
                    inits.append((name, Path(run["directory"])))
            for init, model_dir in inits:
                results["finetuning"].append(finetune(init, model_dir, task, seed, args, work))
    results["claims"] = claims(results)
    results["seconds"] = time.time() - started
    args.results_dir.mkdir(parents=True, exist_ok=True)
    for run in results["pretraining"]:
        run.pop("directory", None)
    (args.results_dir / "pretrain_miniature.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.results_dir / "pretrain_miniature.md").write_text(render_markdown(results), encoding="utf-8")
    plot(results, args.results_dir / "pretrain_miniature.png")
    print(render_markdown(results))
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks (scripts, not tests): ``python -m benchmarks.<name>``.

- ``run``: the whole benchmark (models, end-to-end, tokenizer) -> ``results/<machine>/``;
  also ``gau-alpha bench``;
- ``e2e``: end-to-end CLUE fine-tuning throughput, our pipeline vs CLUE-bert4keras's way;
- ``bench_tokenizer``: bert4keras ``Tokenizer`` vs ``FastTokenizer``;
- ``report``: README tables, plot and claim verdicts from a ``results.json``;
- ``worker``, ``reference_models``, ``common``: building blocks of ``run``.

Run them from the repository root: the reference GAU-alpha is the tests' parity oracle,
imported as ``tests.reference``.

See docs/benchmarks.md.
"""

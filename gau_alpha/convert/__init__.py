"""Lossless checkpoint conversion between three formats of GAU-alpha.

- ``tf1``: the release layout (``bert_model.ckpt.*``, ``bert_config.json``, ``vocab.txt``);
- ``keras``: ``model.weights.h5`` of the gau_alpha Keras model + ``bert_config.json`` + ``vocab.txt``;
- ``torch``: ``model.safetensors`` + ``config.json`` for the PyTorch port (``gau-alpha`` 0.0.3).

Every conversion is verified (the output is read back and every tensor compared bit for bit)
and atomic; NaN or infinite values are refused unless allowed, and ``overwrite`` replaces only
a checkpoint directory. See ``docs/convert.md``; the name map is :mod:`gau_alpha.convert.names`, derived
from :mod:`gau_alpha.spec`.

Example::

    from gau_alpha.convert import convert
    print(convert("chinese_GAU-alpha-char_L-24_H-768", "gau-alpha-torch", to="torch"))
"""
from gau_alpha.convert.bundle import CheckpointBundle, ConversionRunError, Dims, dims_from_config
from gau_alpha.convert.converter import (
    FORMATS,
    convert,
    detect_format,
    read_checkpoint,
    replaceable,
    write_checkpoint,
)
from gau_alpha.convert.names import NameMapping, backbone_name_map, check_bijection
from gau_alpha.convert.verify import ConversionReport, nonfinite_counts
from gau_alpha.errors import ConversionError

__all__ = [
    "CheckpointBundle",
    "ConversionError",
    "ConversionReport",
    "ConversionRunError",
    "Dims",
    "FORMATS",
    "NameMapping",
    "backbone_name_map",
    "check_bijection",
    "convert",
    "detect_format",
    "dims_from_config",
    "nonfinite_counts",
    "read_checkpoint",
    "replaceable",
    "write_checkpoint",
]

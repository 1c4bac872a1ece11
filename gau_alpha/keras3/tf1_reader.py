"""Read a TF1/TF2 name-based checkpoint (``*.index`` + ``*.data-*``) with numpy only.

The Keras 3 model must load the released ``bert_model.ckpt`` on the JAX and PyTorch backends,
where TensorFlow is not needed, so this module parses the two files itself:

- ``PREFIX.index`` is a LevelDB-format table (a sorted string table): data blocks of
  prefix-compressed ``key -> value`` entries, an index block pointing at them and a 48-byte
  footer ending in the table magic number. The key ``""`` holds a ``BundleHeaderProto``
  (shard count, endianness); every other key is a variable name whose value is a
  ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c).
- ``PREFIX.data-SSSSS-of-NNNNN`` holds each tensor's raw little-endian bytes at
  ``offset``, ``size`` bytes long.

Only what TensorFlow's ``BundleWriter`` produces without compression is read: numeric dtypes,
unpartitioned (no ``slices``) tensors. Anything else, a short file or a bad magic number
raises :class:`~gau_alpha.errors.CheckpointError` naming the file and variable. The protocol
buffers are decoded by a small varint reader (field numbers from TensorFlow's
``tensor_bundle.proto``, ``tensor_shape.proto`` and ``types.proto``). Pure Python + numpy.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from gau_alpha.errors import CheckpointError

__all__ = ["read_tf1_tensors", "list_tf1_tensors", "TF1Entry"]

PathLike = Union[str, "os.PathLike[str]"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes crc
#: TensorFlow ``DataType`` enum values -> numpy dtypes (types.proto)
_DTYPES: Dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
_BFLOAT16 = 14


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(data: bytes) -> Iterator[Tuple[int, int, Union[int, bytes]]]:
    """(field number, wire type, value) of a serialized protocol buffer message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = int.from_bytes(data[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(data[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % wire)
        yield number, wire, value


class TF1Entry:
    """One variable of the index: dtype code, shape, shard, offset and size in bytes."""

    __slots__ = ("name", "dtype", "shape", "shard", "offset", "size", "sliced")

    def __init__(self, name: str, value: bytes):
        self.name, self.dtype, self.shape = name, 1, ()
        self.shard = self.offset = self.size = 0
        self.sliced = False
        dims: List[int] = []
        for number, _, field in _proto_fields(value):
            if number == 1:
                self.dtype = field
            elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
                for shape_number, _, dim in _proto_fields(field):
                    if shape_number == 2:
                        dims.append(next((v for n, _, v in _proto_fields(dim) if n == 1), 0))
            elif number == 3:
                self.shard = field
            elif number == 4:
                self.offset = field
            elif number == 5:
                self.size = field
            elif number == 7:
                self.sliced = True
        self.shape = tuple(int(d) for d in dims)


def _read_block(data: bytes, offset: int, size: int, path: Path) -> List[Tuple[bytes, bytes]]:
    """The (key, value) entries of one table block."""
    if offset + size + _BLOCK_TRAILER > len(data):
        raise CheckpointError("%s is truncated: a table block ends past the end of the file" % path)
    if data[offset + size] != 0:
        raise CheckpointError("%s uses a compressed table block (type %d); only uncompressed indexes "
                              "(what TensorFlow writes) can be read without TensorFlow" % (path, data[offset + size]))
    block = data[offset:offset + size]
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_size, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_size]))
        pos += value_size
    return entries


def _index_path(prefix: PathLike) -> Tuple[Path, Path]:
    """(prefix, index file) of a prefix, an ``.index`` file or a directory with one index."""
    path = Path(prefix)
    if path.is_dir():
        indexes = sorted(path.glob("*.index"))
        if len(indexes) != 1:
            raise CheckpointError("%s holds %d checkpoint index files (*.index); expected one"
                                  % (path, len(indexes)))
        path = indexes[0]
    if path.name.endswith(".index"):
        path = path.with_name(path.name[: -len(".index")])
    index = path.with_name(path.name + ".index")
    if not index.is_file():
        raise CheckpointError("checkpoint index %s does not exist" % index)
    return path, index


def list_tf1_tensors(prefix: PathLike) -> Tuple[Path, int, Dict[str, TF1Entry]]:
    """Parse a checkpoint's index.

    Args:
        prefix: ``.../bert_model.ckpt`` (or its ``.index`` file, or a directory holding one).
    Returns:
        (prefix path, number of data shards, {variable name: entry}).
    Raises:
        CheckpointError: the index is missing, truncated, compressed or not a TF checkpoint.
    """
    prefix, index = _index_path(prefix)
    data = index.read_bytes()
    if len(data) < _FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise CheckpointError("%s is not a TensorFlow checkpoint index (bad or missing table magic number; "
                              "truncated?)" % index)
    try:
        footer = data[len(data) - _FOOTER_SIZE:]
        _, pos = _varint(footer, 0)
        _, pos = _varint(footer, pos)  # metaindex handle (unused)
        index_offset, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
        shards, entries = 1, {}
        for _, handle in _read_block(data, index_offset, index_size, index):
            block_offset, hpos = _varint(handle, 0)
            block_size, _ = _varint(handle, hpos)
            for key, value in _read_block(data, block_offset, block_size, index):
                if key == b"":
                    shards = next((v for n, _, v in _proto_fields(value) if n == 1), 1)
                    continue
                name = key.decode("utf-8")
                entries[name] = TF1Entry(name, value)
    except (ValueError, struct.error, UnicodeDecodeError) as error:
        raise CheckpointError("%s is damaged: %s" % (index, error)) from None
    return prefix, int(shards), entries


def read_tf1_tensors(prefix: PathLike, names: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
    """Every variable of a checkpoint (or those in ``names``) as numpy arrays.

    Raises:
        CheckpointError: naming the file and variable for a missing or short data file, an
            unsupported dtype (strings) or a partitioned variable.
    """
    prefix, shards, entries = list_tf1_tensors(prefix)
    wanted = entries if names is None else {n: entries[n] for n in names if n in entries}
    files: Dict[int, bytes] = {}
    tensors: Dict[str, np.ndarray] = {}
    for name, entry in wanted.items():
        if entry.sliced:
            raise CheckpointError("%s: variable %s is partitioned (slices); not supported" % (prefix, name))
        if entry.shard not in files:
            data_path = prefix.with_name("%s.data-%05d-of-%05d" % (prefix.name, entry.shard, shards))
            if not data_path.is_file():
                raise CheckpointError("checkpoint data file %s does not exist (needed for %s)" % (data_path, name))
            files[entry.shard] = data_path.read_bytes()
        data = files[entry.shard]
        if entry.offset + entry.size > len(data):
            raise CheckpointError(
                "%s.data-%05d-of-%05d is truncated: variable %s needs bytes %d..%d of %d"
                % (prefix.name, entry.shard, shards, name, entry.offset, entry.offset + entry.size, len(data)))
        raw = data[entry.offset:entry.offset + entry.size]
        if entry.dtype == _BFLOAT16:
            import ml_dtypes

            dtype = np.dtype(ml_dtypes.bfloat16)
        elif entry.dtype in _DTYPES:
            dtype = _DTYPES[entry.dtype]
        else:
            raise CheckpointError("%s: variable %s has TensorFlow dtype code %d, which this reader does not "
                                  "support" % (prefix, name, entry.dtype))
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise CheckpointError("%s: variable %s has %d bytes for shape %s of %s"
                                  % (prefix, name, entry.size, entry.shape, dtype))
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(entry.shape).copy()
    return tensors

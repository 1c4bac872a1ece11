"""Tests of gau_alpha.release: the manifest, release verification and download.

Tiny releases (``helpers.TINY_CONFIG``, the release vocab) are written here with their own
tensor list, spelled out from the variable table of the released checkpoint (two embeddings +
four GAU kernels per layer), not from ``gau_alpha.release.manifest.expected_tensors`` (which
derives it from ``gau_alpha.spec``), so the two are checked against each other. Downloads go to
an HTTP server on 127.0.0.1 started by the tests.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import helpers
from helpers import tf1_name
from gau_alpha import cli
from gau_alpha.errors import DestinationExistsError, DownloadError, ManifestError
from gau_alpha.release.download import ReleaseCheckError, download_release
from gau_alpha.release.manifest import (
    RELEASE_NOTES,
    RELEASE_SOURCES,
    build_manifest,
    dumps_manifest,
    expected_tensors,
    load_manifest,
)
from gau_alpha.release.verify import inspect_release, verify_release
from gau_alpha.resources import RELEASE_CONFIG, RELEASE_MANIFEST, RELEASE_VOCAB


DATA = "bert_model.ckpt.data-00000-of-00001"
INDEX = "bert_model.ckpt.index"

# The project's tiny GAU-alpha: 2 layers, hidden H, expansion E, key size S, the release vocab.
TINY_CONFIG = helpers.TINY_CONFIG
TINY_VOCAB = RELEASE_VOCAB.read_text(encoding="utf-8").split("\n")[:-1]
V, H, E, S = (TINY_CONFIG[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "attention_key_size"))
assert TINY_CONFIG["num_hidden_layers"] == 2 and len(TINY_VOCAB) == V


def tiny_tensors() -> dict[str, np.ndarray]:
    """The tiny release's tensors, named and shaped as in the released checkpoint."""
    rng = np.random.default_rng(0)
    values = {
        tf1_name("Embedding-Token"): rng.normal(size=(V, H)),
        tf1_name("Embedding-Segment"): rng.normal(size=(2, H)),
    }
    for layer in range(2):
        values[tf1_name("i_dense/kernel", layer)] = rng.normal(size=(H, 2 * E + S))
        values[tf1_name("o_dense/kernel", layer)] = rng.normal(size=(E, H))
        values[tf1_name("q_scaleoffset/gamma", layer)] = rng.normal(size=(S,))
        values[tf1_name("k_scaleoffset/gamma", layer)] = rng.normal(size=(S,))
    return {name: value.astype(np.float32) for name, value in values.items()}


# V*H + 2*H + 2 * (H*(2E+S) + E*H + S + S), counted from the shapes above.
TINY_PARAMETERS = V * H + 2 * H + 2 * (H * (2 * E + S) + E * H + 2 * S)


def write_checkpoint(directory: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write ``tensors`` as the TF1 checkpoint ``directory/bert_model.ckpt``."""
    for stale in directory.glob("bert_model.ckpt.*"):
        stale.unlink()
    names = list(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(directory / "bert_model.ckpt"),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tensors[n] for n in names],
    )


def write_release(directory: Path, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A complete tiny release in the layout of the real one."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RELEASE_VOCAB, directory / "vocab.txt")
    (directory / "bert_config.json").write_text(json.dumps(TINY_CONFIG, indent=2))
    write_checkpoint(directory, tiny_tensors() if tensors is None else tensors)
    return directory


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("pristine") / "release")


@pytest.fixture
def release(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "release"))


@pytest.fixture(scope="module")
def manifest(pristine) -> dict:
    return build_manifest(TINY_CONFIG, pristine / "vocab.txt")


@pytest.fixture
def manifest_path(manifest, tmp_path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(dumps_manifest(manifest), encoding="utf-8")
    return path


def kinds(problems) -> list[tuple[str, str, str | None]]:
    return [(p.kind, p.file, p.name) for p in problems]


# --------------------------------------------------------------------------------------------
# The bundled manifest of the base release
# --------------------------------------------------------------------------------------------


def test_manifest_describes_the_base_release():
    manifest = load_manifest()
    tensors = {t["name"]: (t["shape"], t["dtype"]) for t in manifest["checkpoint"]["tensors"]}
    # The variable table of the release (2 embeddings + 24 layers x 4 kernels), recorded
    # independently of the code in tests/data/release_variables.md.
    expected = {name: list(shape) for name, shape in helpers.release_variable_table(24).items()}
    assert len(manifest["checkpoint"]["tensors"]) == 98 == len(tensors)
    assert tensors == {name: (shape, "float32") for name, shape in expected.items()}
    assert manifest["checkpoint"]["num_tensors"] == 98
    params = 12000 * 768 + 2 * 768 + 24 * (768 * 3200 + 1536 * 768 + 2 * 128)
    assert manifest["checkpoint"]["num_parameters"] == params == 96_517_632

    assert manifest["release"] == "chinese_GAU-alpha-char_L-24_H-768"
    assert manifest["vocab"]["sha256"] == (
        "722b0e17d2c0d35a835811967e74f1ec3203c885bade5cd523086594e3d0b29e"
    )
    assert manifest["vocab"]["lines"] == 12000
    assert manifest["vocab"]["special_tokens"] == {
        "[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103,
    }
    values = manifest["config"]["values"]
    assert values["num_hidden_layers"] == 24 and values["hidden_size"] == 768
    assert values["intermediate_size"] == 1536 and values["attention_key_size"] == 128
    assert values["vocab_size"] == 12000 and values["hidden_act"] == "swish"
    assert set(manifest["files"]["required"]) == {
        "bert_config.json", "vocab.txt", INDEX, DATA,
    }
    archive = manifest["sources"]["archive"]
    assert archive["url"] == (
        "https://open.zhuiyi.ai/releases/nlp/models/zhuiyi/chinese_GAU-alpha-char_L-24_H-768.zip"
    )
    assert archive["sha256"] is None and archive["sha256_note"]
    assert manifest["sources"]["pytorch_port"]["hub_id"] == (
        "junnyu/chinese_GAU-alpha-char_L-24_H-768"
    )


def test_manifest_agrees_with_the_bundled_files():
    manifest = load_manifest()
    vocab = RELEASE_VOCAB.read_bytes()
    assert hashlib.sha256(vocab).hexdigest() == manifest["vocab"]["sha256"]
    assert vocab.count(b"\n") == manifest["vocab"]["lines"] and vocab.endswith(b"\n")
    assert json.loads(RELEASE_CONFIG.read_text()) == manifest["config"]["values"]
    # The file on disk is exactly what the generator writes (nobody edited it by hand).
    assert RELEASE_MANIFEST.read_text(encoding="utf-8") == dumps_manifest(
        build_manifest(
            json.loads(RELEASE_CONFIG.read_text()), RELEASE_VOCAB,
            sources=RELEASE_SOURCES, notes=RELEASE_NOTES,
        )
    )


def test_load_manifest_names_the_bad_file(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="manifest.json"):
        load_manifest(path)
    path.write_text(json.dumps({"schema": 1, "release": "x", "files": {"required": []},
                                "vocab": {"file": "v", "sha256": "", "lines": 1},
                                "config": {"file": "c", "values": {}},
                                "checkpoint": {"tensors": [{"name": "a", "shape": "3"}]}}))
    with pytest.raises(ManifestError, match=r"checkpoint\.tensors\[0\]"):
        load_manifest(path)


def test_build_manifest_rejects_inconsistent_input(tmp_path, pristine):
    with pytest.raises(ManifestError, match="vocab_size"):
        build_manifest({**TINY_CONFIG, "vocab_size": V + 1}, pristine / "vocab.txt")
    with pytest.raises(ManifestError, match="hidden_size"):
        expected_tensors({**TINY_CONFIG, "hidden_size": str(H)})


def test_base_checkpoint_missing_is_reported_for_bundled_dir():
    # The repository holds only the small files of the release, not the checkpoint.
    problems = verify_release(RELEASE_MANIFEST.parent)
    assert sorted(kinds(problems)) == [("missing_file", DATA, None), ("missing_file", INDEX, None)]


def test_manifest_tensors_follow_the_spec():
    from gau_alpha.spec import ModelDims, backbone_tensors

    tensors = expected_tensors(TINY_CONFIG)
    assert [(t["name"], tuple(t["shape"])) for t in tensors] == [
        (spec.tf1, spec.shape) for spec in backbone_tensors(ModelDims.from_config(TINY_CONFIG))
    ]
    assert {t["name"]: t["shape"] for t in tensors} == {n: list(v.shape) for n, v in tiny_tensors().items()}


def test_regenerating_writes_the_bundled_manifest(tmp_path):
    out = tmp_path / "manifest.json"
    done = subprocess.run([sys.executable, "-m", "gau_alpha.release.manifest", "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "98 tensors" in done.stdout and "Warning" not in done.stderr
    assert out.read_text(encoding="utf-8") == RELEASE_MANIFEST.read_text(encoding="utf-8")


def test_release_modules_import_no_tensorflow():
    code = ("import sys, gau_alpha.release, gau_alpha.release.verify, gau_alpha.release.download, "
            "gau_alpha.weights; gau_alpha.release.Problem; print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_old_module_name_still_works():
    import gau_alpha.weights as old

    assert old.verify_release is verify_release and old.download_release is download_release
    assert old.build_manifest is build_manifest and old.ManifestError is ManifestError
    assert old.REQUIRED_FILES[:2] == ("bert_config.json", "vocab.txt")


# --------------------------------------------------------------------------------------------
# verify_release on tiny releases
# --------------------------------------------------------------------------------------------


def test_good_release_passes(release, manifest):
    report = inspect_release(release, manifest)
    assert report.problems == []
    assert report.num_tensors == 10
    assert report.num_parameters == TINY_PARAMETERS
    assert report.tensor_bytes == 4 * TINY_PARAMETERS


@pytest.mark.parametrize("name", ["vocab.txt", "bert_config.json", INDEX, DATA])
def test_missing_file(release, manifest, name):
    (release / name).unlink()
    problems = verify_release(release, manifest)
    assert ("missing_file", name, None) in kinds(problems)
    missing = next(p for p in problems if p.kind == "missing_file")
    assert (missing.expected, missing.found) == ("a file", "nothing")
    assert name in str(missing)


def test_missing_directory(tmp_path, manifest):
    problems = verify_release(tmp_path / "nowhere", manifest)
    assert kinds(problems) == [("missing_directory", ".", None)]


def test_wrong_vocab(release, manifest):
    changed = [t if t != "[MASK]" else "[MSK]" for t in TINY_VOCAB] + ["extra"]
    data = "".join(t + "\n" for t in changed).encode()
    (release / "vocab.txt").write_bytes(data)
    problems = {p.kind: p for p in verify_release(release, manifest)}
    assert set(problems) == {"vocab_sha256", "vocab_lines", "vocab_special_token"}
    assert problems["vocab_sha256"].file == "vocab.txt"
    assert problems["vocab_sha256"].found == hashlib.sha256(data).hexdigest()
    assert problems["vocab_sha256"].expected == manifest["vocab"]["sha256"]
    assert (problems["vocab_lines"].expected, problems["vocab_lines"].found) == (V, V + 1)
    special = problems["vocab_special_token"]
    assert (special.name, special.expected, special.found) == ("[MASK]", 103, None)


def test_wrong_config(release, manifest):
    config = {**TINY_CONFIG, "num_hidden_layers": 3, "max_position_embeddings": 512}
    del config["hidden_act"]
    (release / "bert_config.json").write_text(json.dumps(config))
    problems = verify_release(release, manifest)
    by_kind = {p.kind: p for p in problems}
    assert (by_kind["config_value"].name, by_kind["config_value"].expected,
            by_kind["config_value"].found) == ("num_hidden_layers", 2, 3)
    assert by_kind["config_missing_key"].name == "hidden_act"
    extra = by_kind["config_extra_key"]
    assert (extra.name, extra.found, extra.severity) == ("max_position_embeddings", 512, "warning")
    assert all(p.file == "bert_config.json" for p in problems)


def test_unreadable_config(release, manifest):
    (release / "bert_config.json").write_text("{hidden_size: 32")
    assert kinds(verify_release(release, manifest)) == [
        ("config_unreadable", "bert_config.json", None)
    ]


def test_wrong_shape(release, manifest):
    tensors = tiny_tensors()
    name = tf1_name("o_dense/kernel", 1)
    tensors[name] = tensors[name].T.copy()
    write_checkpoint(release, tensors)
    problems = verify_release(release, manifest)
    assert kinds(problems) == [("tensor_shape", INDEX, name)]
    assert (problems[0].expected, problems[0].found) == ([E, H], [H, E])


def test_wrong_dtype(release, manifest):
    tensors = tiny_tensors()
    name = tf1_name("q_scaleoffset/gamma", 0)
    tensors[name] = tensors[name].astype(np.float16)
    write_checkpoint(release, tensors)
    problems = verify_release(release, manifest)
    assert kinds(problems) == [("tensor_dtype", INDEX, name)]
    assert (problems[0].expected, problems[0].found) == ("float32", "float16")


def test_missing_tensor(release, manifest):
    tensors = tiny_tensors()
    name = tf1_name("k_scaleoffset/gamma", 1)
    del tensors[name]
    write_checkpoint(release, tensors)
    assert kinds(verify_release(release, manifest)) == [("missing_tensor", INDEX, name)]


def test_extra_tensor(release, manifest, manifest_path, capsys):
    tensors = tiny_tensors()
    tensors["cls/predictions/output_bias"] = np.zeros(V, np.float32)
    write_checkpoint(release, tensors)
    problems = verify_release(release, manifest)
    assert kinds(problems) == [("unexpected_tensor", INDEX, "cls/predictions/output_bias")]
    assert problems[0].found == f"float32[{V}]"
    assert cli.main(["verify", str(release), "--manifest", str(manifest_path)]) == 1
    assert "cls/predictions/output_bias" in capsys.readouterr().err
    assert cli.main(["verify", str(release), "--manifest", str(manifest_path),
                     "--allow-extra-tensors"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "cls/predictions/output_bias" in out and "OK" in out


def test_truncated_data_file(release, manifest):
    data = release / DATA
    size = data.stat().st_size
    assert size == 4 * TINY_PARAMETERS  # float32 tensors, stored back to back
    with open(data, "r+b") as handle:
        handle.truncate(size - 16)
    problems = verify_release(release, manifest)
    by_kind = {}
    for p in problems:
        by_kind.setdefault(p.kind, []).append(p)
    assert set(by_kind) == {"data_truncated", "unreadable_tensor"}
    [truncated] = by_kind["data_truncated"]
    assert truncated.file == DATA
    assert (truncated.expected, truncated.found) == (
        f">= {4 * TINY_PARAMETERS} bytes", f"{size - 16} bytes"
    )
    # SaveV2 writes the tensors in the order given: the last one lost its tail.
    unreadable = {p.name for p in by_kind["unreadable_tensor"]}
    assert tf1_name("k_scaleoffset/gamma", 1) in unreadable
    assert all(p.file == DATA for p in by_kind["unreadable_tensor"])


def test_corrupt_data_file(release, manifest):
    with open(release / DATA, "r+b") as handle:  # first bytes: the word embeddings
        handle.write(b"\xde\xad\xbe\xef")
    problems = verify_release(release, manifest)
    assert kinds(problems) == [("unreadable_tensor", DATA, tf1_name("Embedding-Token"))]
    assert "checksum" in problems[0].found.lower()


def test_nonfinite_tensor(release, manifest):
    tensors = tiny_tensors()
    name = tf1_name("i_dense/kernel", 0)
    tensors[name][3, 5] = np.nan
    write_checkpoint(release, tensors)
    problems = verify_release(release, manifest)
    assert kinds(problems) == [("nonfinite_tensor", DATA, name)]
    assert problems[0].found == "1 non-finite values"


def test_unreadable_index(release, manifest):
    (release / INDEX).write_bytes(b"garbage")
    problems = verify_release(release, manifest)
    assert kinds(problems) == [("checkpoint_unreadable", INDEX, None)]


def test_cli_verify(release, manifest_path, capsys):
    assert cli.main(["verify", str(release), "--manifest", str(manifest_path)]) == 0
    out = capsys.readouterr().out
    assert "OK: 10 tensors" in out and f"{TINY_PARAMETERS:,} parameters" in out
    (release / "vocab.txt").unlink()
    assert cli.main(["verify", str(release), "--manifest", str(manifest_path)]) == 1
    err = capsys.readouterr().err
    assert "vocab.txt: required file is missing" in err and "1 problem(s)" in err


# --------------------------------------------------------------------------------------------
# download_release against a local HTTP server
# --------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "no such file")
            return
        body, announced = route
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(announced if announced else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def serve(path: str, body: bytes, announced: int | None = None) -> str:
        httpd.routes[path] = (body, announced)
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    yield serve
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def zip_release(directory: Path, folder: str | None, extra: dict[str, bytes] | None = None,
                compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """The bytes of a zip of ``directory``'s files, optionally inside one top-level folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        if folder:
            zf.writestr(folder + "/", b"")
        for path in sorted(directory.iterdir()):
            zf.write(path, f"{folder}/{path.name}" if folder else path.name)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


@pytest.mark.parametrize("folder", ["chinese_GAU-alpha-tiny", None])
def test_download_installs_release(server, pristine, manifest, tmp_path, folder):
    body = zip_release(pristine, folder)
    url = server("/release.zip", body)
    dest = tmp_path / "downloads" / "tiny"
    problems = download_release(url, dest, sha256=hashlib.sha256(body).hexdigest(),
                                        manifest=manifest, progress=False)
    assert problems == []
    assert same_files(dest, pristine)
    assert [p.name for p in dest.parent.iterdir()] == ["tiny"]  # no staging left over


def test_download_accepts_macos_metadata(server, pristine, manifest, tmp_path):
    body = zip_release(pristine, "tiny", extra={"__MACOSX/tiny/._vocab.txt": b"\x00\x05"})
    dest = tmp_path / "tiny"
    problems = download_release(server("/r.zip", body), dest, manifest=manifest,
                                        progress=False)
    assert problems == [] and same_files(dest, pristine)


def test_download_refuses_a_release_that_fails_the_manifest(server, pristine, manifest, tmp_path):
    body = zip_release(pristine, "tiny", extra={})
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(body)) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("vocab.txt"):
                dst.writestr(info, src.read(info))
    dest = tmp_path / "tiny"
    with pytest.raises(ReleaseCheckError, match="fails the manifest check") as caught:
        download_release(server("/r.zip", broken.getvalue()), dest, manifest=manifest, progress=False)
    assert kinds(caught.value.problems) == [("missing_file", "vocab.txt", None)]
    assert "vocab.txt: required file is missing" in str(caught.value)
    assert_nothing_left(tmp_path, set())  # checked in the staging area, never installed


def assert_nothing_left(parent: Path, before: set[str]) -> None:
    assert {p.name for p in parent.iterdir()} == before


def test_download_wrong_sha256(server, pristine, manifest, tmp_path):
    body = zip_release(pristine, "tiny")
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download_release(server("/r.zip", body), tmp_path / "tiny", sha256=wrong,
                                 manifest=manifest, progress=False)
    assert wrong in str(info.value) and hashlib.sha256(body).hexdigest() in str(info.value)
    assert_nothing_left(tmp_path, set())


def test_download_rejects_malformed_sha256(tmp_path):
    with pytest.raises(ValueError, match="64 hexadecimal"):
        download_release("http://127.0.0.1:9/r.zip", tmp_path / "x", sha256="abc")
    assert_nothing_left(tmp_path, set())


def test_download_corrupt_archive(server, pristine, manifest, tmp_path):
    body = bytearray(zip_release(pristine, "tiny", compression=zipfile.ZIP_STORED))
    at = body.find(b"[unused50]")  # inside the stored vocab.txt
    assert at > 0
    body[at + 1:at + 7] = b"BROKEN"
    with pytest.raises(DownloadError, match="corrupt.*vocab.txt"):
        download_release(server("/r.zip", bytes(body)), tmp_path / "tiny",
                                 manifest=manifest, progress=False)
    assert_nothing_left(tmp_path, set())


def test_download_corrupt_compressed_member(server, pristine, manifest, tmp_path):
    body = bytearray(zip_release(pristine, "tiny"))
    with zipfile.ZipFile(io.BytesIO(bytes(body))) as zf:
        info = zf.getinfo("tiny/" + DATA)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    # Local header: 30 fixed bytes, then the name and the extra field, then the data.
    name_len = int.from_bytes(body[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(body[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    middle = start + info.compress_size // 2
    body[middle:middle + 8] = bytes(b ^ 0xFF for b in body[middle:middle + 8])
    with pytest.raises(DownloadError, match="corrupt"):
        download_release(server("/r.zip", bytes(body)), tmp_path / "tiny",
                                 manifest=manifest, progress=False)
    assert_nothing_left(tmp_path, set())


def test_download_not_a_zip(server, manifest, tmp_path):
    with pytest.raises(DownloadError, match="not a zip"):
        download_release(server("/r.zip", b"<html>moved</html>"), tmp_path / "tiny",
                                 manifest=manifest, progress=False)
    assert_nothing_left(tmp_path, set())


def test_download_incomplete_transfer(server, pristine, manifest, tmp_path):
    body = zip_release(pristine, "tiny")
    url = server("/r.zip", body[: len(body) // 2], announced=len(body))
    with pytest.raises(DownloadError, match="incomplete"):
        download_release(url, tmp_path / "tiny", manifest=manifest, progress=False)
    assert_nothing_left(tmp_path, set())


def test_download_http_error(server, tmp_path):
    url = server("/r.zip", b"").rsplit("/", 1)[0] + "/missing.zip"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_release(url, tmp_path / "tiny", progress=False)
    assert_nothing_left(tmp_path, set())


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil.txt", "tiny/../../evil.txt"])
def test_download_rejects_unsafe_members(server, pristine, manifest, tmp_path, member):
    body = zip_release(pristine, "tiny", extra={member: b"boom"})
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DownloadError, match="unsafe member"):
        download_release(server("/r.zip", body), work / "tiny", manifest=manifest,
                                 progress=False)
    assert_nothing_left(work, set())
    assert_nothing_left(tmp_path, {"work"})


def test_download_existing_destination(server, pristine, manifest, tmp_path):
    body = zip_release(pristine, "tiny")
    url = server("/r.zip", body)
    dest = tmp_path / "tiny"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(DestinationExistsError, match="already exists"):
        download_release(url, dest, manifest=manifest, progress=False)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    # --overwrite replaces only a release directory: unrelated files are kept.
    with pytest.raises(DestinationExistsError, match="is not a release directory"):
        download_release(url, dest, overwrite=True, manifest=manifest, progress=False)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    shutil.rmtree(dest)
    old = write_release(dest, {n: v + 1 for n, v in tiny_tensors().items()})
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    # A failed overwrite leaves the old directory as it was.
    with pytest.raises(DownloadError):
        download_release(url, dest, sha256="1" * 64, overwrite=True, manifest=manifest,
                                 progress=False)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert_nothing_left(tmp_path, {"tiny"})
    # A successful one replaces it.
    assert download_release(url, dest, overwrite=True, manifest=manifest,
                                    progress=False) == []
    assert same_files(dest, pristine)
    assert_nothing_left(tmp_path, {"tiny"})


def test_cli_download(server, pristine, manifest_path, tmp_path, capsys):
    body = zip_release(pristine, "tiny")
    url = server("/r.zip", body)
    dest = tmp_path / "tiny"
    args = ["download", "--url", url, "--dest", str(dest), "--manifest", str(manifest_path),
            "--no-progress", "--sha256", hashlib.sha256(body).hexdigest().upper()]
    assert cli.main(args) == 0
    assert "OK: 10 tensors" in capsys.readouterr().out
    assert same_files(dest, pristine)
    assert cli.main(args) == 2  # the destination exists now: bad input (DestinationExistsError)
    assert "already exists" in capsys.readouterr().err

"""``gau-alpha download`` never damages what is there (issue 9): every failure, Ctrl-C and
kill -9 leave the destination byte for byte as it was and nothing behind once the next command
ran; only a release that passes its checks is installed.

Real ``gau-alpha`` processes download tiny releases (``helpers.TINY_CONFIG``) from an HTTP
server on 127.0.0.1 started here (:mod:`http_server`). The destination's parent is hashed
before and after every failure (:func:`interruptions.tree_digest`).
"""
from __future__ import annotations

import io
import random
import shutil
import signal
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Optional

import pytest

import helpers
from helpers import assert_one_line_error, run_cli
from http_server import NO_LENGTH, ReleaseServer
from interruptions import (
    exists_under, interrupt, kill_at_moments, start_cli, temporaries, tree_digest, wait_until,
)
from gau_alpha.release.manifest import build_manifest, dumps_manifest

SEED = 9  # the kill moments below are drawn from random.Random(SEED)


def zip_bytes(directory: Optional[Path], folder: str = "tiny", extra: Optional[Dict[str, bytes]] = None,
              skip: str = "") -> bytes:
    """A zip of ``directory``'s files inside one top-level folder (``extra`` members added,
    the member named ``skip`` left out)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.iterdir()) if directory else []:
            if path.name != skip:
                zf.write(path, "%s/%s" % (folder, path.name))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """An old and a new tiny release (same config, different weights), the manifest of both,
    the new one's zip, and the server."""
    root = tmp_path_factory.mktemp("releases")
    old = helpers.write_release_dir(root / "old", helpers.TINY_CONFIG, seed=0)
    new = helpers.write_release_dir(root / "new", helpers.TINY_CONFIG, seed=1)
    manifest = root / "manifest.json"
    manifest.write_text(dumps_manifest(build_manifest(helpers.TINY_CONFIG, new / "vocab.txt")), encoding="utf-8")
    with ReleaseServer() as server:
        yield SimpleNamespace(old=old, new=new, manifest=manifest, body=zip_bytes(new), server=server)


@pytest.fixture
def cache(releases, tmp_path):
    """``cache/tiny``: a good (old) release that the downloads below may replace."""
    shutil.copytree(releases.old, tmp_path / "cache" / "tiny")
    return tmp_path / "cache"


def download(releases, url: str, dest: Path, *options: str):
    return run_cli(["download", "--url", url, "--dest", dest, "--manifest", releases.manifest, *options],
                   timeout=120)


def download_args(releases, url: str, dest: Path):
    return ["download", "--url", url, "--dest", dest, "--manifest", releases.manifest, "--overwrite"]


# ------------------------------------------------------------------ failures change nothing
FAILURES = {
    # name: (how the archive is served, extra options, exit status, fragments of the message)
    "empty zip": (dict(body=zip_bytes(None)), [], 1, ["holds no files"]),
    "not a zip": (dict(body=b"<html>moved</html>"), [], 1, ["is not a zip archive"]),
    "too many members": (dict(), ["--max-members", "3"], 1, ["5 members", "--max-members"]),
    "expands too much": (dict(), ["--max-expanded-bytes", "1000000"], 1, ["unpacks to", "--max-expanded-bytes"]),
    "zip bomb": (dict(body=zip_bytes(None, extra={"tiny/zeros": bytes(50_000_000)})),
                 ["--max-expanded-bytes", "10000000"], 1, ["unpacks to 50000000 bytes"]),
    "archive too large": (dict(), ["--max-archive-bytes", "100000"], 1, ["--max-archive-bytes", "announces"]),
    "archive too large, no length": (dict(announced=NO_LENGTH), ["--max-archive-bytes", "100000"], 1,
                                     ["larger than the limit of 100000 bytes"]),
    "incomplete": (dict(announced=10 ** 7), [], 1, ["incomplete"]),
    "bad sha256": (dict(), ["--sha256", "0" * 64], 1, ["sha256 of the archive", "expected " + "0" * 64]),
    "malformed sha256": (dict(), ["--sha256", "abc"], 2, ["64 hexadecimal digits"]),
    "HTTP error": (dict(status=500), [], 1, ["HTTP 500"]),
    "unsafe member": (dict(extra={"../evil.txt": b"x"}), [], 1, ["unsafe member path"]),
}


@pytest.mark.parametrize("case", FAILURES)
def test_a_failed_overwrite_leaves_the_release_as_it_was(releases, cache, case):
    served, options, code, fragments = FAILURES[case]
    served = dict(served)
    extra = served.pop("extra", None)
    body = served.pop("body", zip_bytes(releases.new, extra=extra) if extra else releases.body)
    url = releases.server.serve("/%s.zip" % case.replace(" ", "-"), body, **served)
    before = tree_digest(cache)
    result = download(releases, url, cache / "tiny", "--overwrite", *options)
    assert_one_line_error(result, code, "gau-alpha download: error:", *fragments)
    assert tree_digest(cache) == before  # the old release byte for byte, nothing beside it


def test_a_release_failing_the_manifest_is_checked_in_staging_and_never_installed(releases, cache):
    """The zip is intact but its vocab differs from the manifest's (the check reads every tensor)."""
    vocab = (releases.new / "vocab.txt").read_bytes().replace(b"[MASK]", b"[MSK]", 1)
    body = zip_bytes(releases.new, skip="vocab.txt", extra={"tiny/vocab.txt": vocab})
    before = tree_digest(cache)
    result = download(releases, releases.server.serve("/bad-vocab.zip", body), cache / "tiny", "--overwrite")
    assert_one_line_error(result, 1, "fails the manifest check", "nothing was installed",
                          "vocab.txt: vocab content differs", "[MASK]")
    assert tree_digest(cache) == before


def test_existing_or_unrelated_destinations_are_refused(releases, tmp_path):
    url = releases.server.serve("/good.zip", releases.body)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "bert_config.json").write_text("{}")  # a config alone does not make a release
    (tmp_path / "file").write_text("x")
    before = tree_digest(tmp_path)
    assert_one_line_error(download(releases, url, mine), 2, "already exists", "--overwrite")
    assert_one_line_error(download(releases, url, mine, "--overwrite"), 2, "is not a release directory",
                          "not replacing it")
    assert_one_line_error(download(releases, url, tmp_path / "file", "--overwrite"), 2, "not a release directory")
    assert tree_digest(tmp_path) == before


def test_ctrl_c_during_the_transfer_exits_130_and_leaves_nothing(releases, cache):
    path = "/ctrl-c.zip"
    url = releases.server.serve(path, releases.body, pause_at=len(releases.body) // 3)
    before = tree_digest(cache)
    process = start_cli(download_args(releases, url, cache / "tiny"))
    try:
        assert releases.server.paused(path).wait(60), "the transfer never started"
        time.sleep(0.2)  # the client is blocked reading the rest
        code, out, err = interrupt(process, signal.SIGINT)
    finally:
        releases.server.resume(path)
    result = SimpleNamespace(returncode=code, stdout=out, stderr=err)
    assert_one_line_error(result, 130, "gau-alpha download: interrupted")
    assert tree_digest(cache) == before  # no partial archive, no staging directory


# ------------------------------------------------------------------ kill -9, then rerun
def test_kill_9_at_three_moments_then_the_rerun_installs_the_release(releases, cache, tmp_path):
    """kill -9 (1) after a random number of bytes, (2) while the archive is checked in the
    staging area, (3) at a random time. After each kill the old release is there byte for byte
    (or, after (3), possibly the complete new one), and the next command removes the killed
    run's staging directory; the final rerun installs exactly the new release, as an
    uninterrupted run does."""
    rng = random.Random(SEED)
    started = time.monotonic()
    reference = download(releases, releases.server.serve("/reference.zip", releases.body), cache.parent / "reference")
    duration = time.monotonic() - started
    assert reference.returncode == 0, reference.stderr
    assert tree_digest(cache.parent / "reference") == tree_digest(releases.new)  # the files of the zip, exactly
    dest, old = cache / "tiny", tree_digest(cache)
    new = {"tiny": "dir", **{"tiny/" + k: v for k, v in tree_digest(releases.new).items()}}
    url = releases.server.serve("/full.zip", releases.body)
    pause_at = rng.randrange(1, len(releases.body))

    def mid_transfer():
        path = "/killed-at-byte-%d.zip" % pause_at
        process = start_cli(download_args(releases, releases.server.serve(path, releases.body, pause_at=pause_at),
                                          dest))
        assert releases.server.paused(path).wait(60)
        return process

    def while_checking():
        process = start_cli(download_args(releases, url, dest))
        assert wait_until(lambda: exists_under(cache, ".tiny.pid*.partial", "vocab.txt"), process), \
            process.communicate()
        return process

    def at_random_time():
        process = start_cli(download_args(releases, url, dest))
        time.sleep(rng.uniform(0.0, duration))
        return process

    def release_part(state):
        return {k: v for k, v in state.items() if k == "tiny" or k.startswith("tiny/")}

    def listed_by_clean(left):  # gau-alpha clean finds the leftovers too
        listed = run_cli(["clean", "--dry-run", cache])
        assert listed.returncode == 0 and all(str(cache / name) in listed.stdout for name in left), listed

    kill_at_moments((mid_transfer, while_checking, at_random_time), cache, release_part, old, new,
                    anytime=(at_random_time,), after_kill=listed_by_clean)
    rerun = run_cli(download_args(releases, url, dest), timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "OK: 10 tensors" in rerun.stdout
    assert tree_digest(cache) == new  # exactly the new release, nothing else
    assert temporaries(cache) == []

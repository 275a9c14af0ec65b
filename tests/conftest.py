"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

# Never let a test wait on the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Real data beside the checkout (`../shared/data`); an outside user has none, so tests using it skip.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder, or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tiny_uda_folders(tmp_path) -> tuple[dict, dict]:
    """`folder` dataset configs: a labelled 32x64 source (ids 0/1/2 -> road/sidewalk/car) and an unlabelled
    target, 4 frames each."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for domain in ("source", "target"):
        (root / domain / "images").mkdir(parents=True)
        for i in range(4):
            image = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / domain / "images" / f"{i}.png")
    (root / "source" / "masks").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 3, (32, 64), dtype=np.uint8)).save(root / "source" / "masks" / f"{i}.png")
    (root / "source" / "id_map.yaml").write_text(yaml.safe_dump({"ids": {0: 0, 1: 1, 2: 13}}))
    return {"kind": "folder", "root": str(root / "source")}, {"kind": "folder", "root": str(root / "target")}


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """`run_cli(args)` -> (exit status, stdout + stderr) of `syn2real ARGS`, as the console script gives them
    (`sys.exit(main())`; an uncaught exception is status 1 with its traceback in the output)."""
    from rich.console import Console

    from syn2real import cli

    def run(args) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["syn2real", *map(str, args)])
        # The error line unwrapped (rich wraps at the terminal's width, 80 columns when there is none).
        monkeypatch.setattr(cli, "console", Console(stderr=True, width=10_000))
        code, crash = 0, ""
        try:
            cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception:  # noqa: BLE001 - the interpreter would print the traceback and exit with status 1
            code, crash = 1, traceback.format_exc()
        captured = capsys.readouterr()
        return code, captured.out + captured.err + crash

    return run


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: OpenMP threads only add synchronisation, and on a shared 2-core machine a waiting thread
    makes a 30 ms step take seconds. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def serve_on_loopback(app, **config):
    """`app` under a real uvicorn on a free loopback port, in a background thread; yields its base URL."""
    import uvicorn

    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only then; without it each response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

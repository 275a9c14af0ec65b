"""Two CPU processes (gloo) under torchrun: different data on each rank, identical weights after training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).parent

DDP_RUN = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_trainer import TinySegmentor, tiny_config, tiny_datasets
from syn2real.engine import distributed as ddp
from syn2real.engine.trainer import Trainer
from syn2real.methods.source_only import SourceOnly

class RecordsNames(SourceOnly):
    seen = []
    def train_step(self, src, tgt, step):
        self.seen.append(src["name"])
        return super().train_step(src, tgt, step)

out = Path({tmp!r})
cfg = tiny_config(out, "ddp", "train.iters=4", "train.checkpoint_every=2", "train.eval_every=2")
torch.manual_seed(0)
model = TinySegmentor()
init = {{k: v.clone() for k, v in model.state_dict().items()}}
trainer = Trainer(cfg, method=RecordsNames(cfg, model), datasets=tiny_datasets(cfg))
rank = ddp.get_rank()
torch.save(init, out / f"init{{rank}}.pt")
result = trainer.fit()
torch.save(trainer.model.state_dict(), out / f"rank{{rank}}.pt")
(out / f"seen{{rank}}.json").write_text(json.dumps({{"names": RecordsNames.seen, "result": result}}))
ddp.cleanup_distributed()
"""


def test_two_processes_train_equal_weights(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_RUN.format(tests=str(TESTS), tmp=str(tmp_path)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]

    weights = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    init = torch.load(tmp_path / "init0.pt")
    assert weights[0].keys() == weights[1].keys() == init.keys()
    for name in init:
        assert torch.equal(weights[0][name], weights[1][name]), name  # gradients and BN statistics synced
    assert not torch.equal(weights[0]["head.1.weight"], init["head.1.weight"])

    seen = [json.loads((tmp_path / f"seen{r}.json").read_text()) for r in (0, 1)]
    for names0, names1 in zip(seen[0]["names"], seen[1]["names"]):
        assert not set(names0) & set(names1)  # each rank trains on its own share of every batch
    # Evaluation is sharded but summed over ranks: both see the same mIoU.
    assert seen[0]["result"]["val/mIoU"] == seen[1]["result"]["val/mIoU"]

    run = tmp_path / "ddp"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 2, 4, 4]  # losses and validation, written by rank 0 only
    assert json.loads((run / "checkpoints" / "last.json").read_text())["step"] == 4
    saved = torch.load(run / "checkpoints" / "iter_000004.state.pt", weights_only=True)
    assert saved["world_size"] == 2 and len(saved["rng"]) == 2

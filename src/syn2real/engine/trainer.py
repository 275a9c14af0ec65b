"""The training loop: iteration-based, one method-agnostic step, checkpoints that resume bit for bit.

    for step in range(start, iters):
        src, tgt = next(source), next(target)           # endless, resumable, seeded per sample
        zero grads; method.train_step(src, tgt, step)    # under autocast; the method back-propagates
        average gradients over processes; clip; optimiser step(s); lr schedule; method.after_step(step)
        log / evaluate / checkpoint

The trainer knows nothing about any method: `Method` (syn2real.methods.base) describes what it gets.
Run with `torchrun --nproc_per_node N` for several processes (see `engine.distributed` for how gradients
are synchronised). Everything is written into `cfg.run_dir` by rank 0 only.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch
from rich import get_console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from torch import nn
from torch.utils.data import Dataset

from syn2real.config import Config, save_config
from syn2real.data.source_style import build_source_style
from syn2real.engine import distributed as ddp
from syn2real.engine.callbacks import Callback
from syn2real.engine.checkpoint import (last_checkpoint, load_state, load_weights, model_metadata, save_checkpoint,
                                       weights_path)
from syn2real.engine.loader import InfiniteLoader
from syn2real.engine.logging import RunLogger
from syn2real.engine.optim import build_optimizer, build_scheduler
from syn2real.engine.runs import compile_model, resolve_device
from syn2real.errors import ConfigError, TrainingError, WeightsError
from syn2real.evaluate.inference import autocast
from syn2real.io import remove_stale_temporaries
from syn2real.methods import Method, build_method


def build_datasets(cfg: Config) -> dict[str, Dataset | None]:
    """Source (labelled), target (never reads labels) and validation datasets, with their transforms (a dataset
    with `skip_bad` drops its bad frames as it is built)."""
    from syn2real.data import build_dataset, eval_transform, train_transform

    data = cfg.data
    return {
        "source": build_dataset(data.source, train_transform(data), labels=True),
        "target": build_dataset(data.target, train_transform(data), labels=False) if data.target else None,
        "val": build_dataset(data.val, eval_transform(data.val_resize), labels=True) if data.val else None,
    }


class Trainer:
    """Train `cfg.method` on `cfg.data` into `cfg.run_dir`.

    `model`, `method` and `datasets` ({"source", "target", "val"}) replace what the config would build
    (an injected method brings its model; it must already sit on the training device). `init_from`
    loads model weights only (a checkpoint, run folder or `.safetensors`) to start a new run from another,
    e.g. adapting a source-only model (default `cfg.train.init_from`); `resume` continues this run from its
    last checkpoint. `callbacks` run between steps (e.g. active-labelling rounds, `syn2real.active.loop`).
    """

    def __init__(self, cfg: Config, model: nn.Module | None = None, method: Method | None = None,
                 datasets: dict[str, Dataset | None] | None = None, resume: bool = False,
                 init_from: str | Path | None = None, progress: bool = False,
                 callbacks: Sequence[Callback] = ()):
        if model is not None and method is not None:
            raise ValueError("pass either a model or a method (which brings its model), not both")
        for key in ("iters", "keep_checkpoints"):
            if getattr(cfg.train, key) < 1:
                raise ConfigError(f"train.{key} must be at least 1, got {getattr(cfg.train, key)}")
        self.cfg = cfg
        # Built first: an unknown style or option stops the run before any work.
        self.source_style = build_source_style(cfg.data)
        self.progress = progress
        device = resolve_device(cfg.train.device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", ddp.local_rank())
        self.device = device
        # Loaded before the datasets are built: a missing translator run stops the run before any work.
        self.translator = None
        if cfg.data.source.translator is not None:
            from syn2real.translate import load_translator

            self.translator = load_translator(cfg.data.source.translator).to(device)
        ddp.init_distributed(device)
        self.is_main = ddp.is_main_process()
        self.run_dir = cfg.run_dir
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.precision = cfg.train.precision
        if self.precision == "fp16" and device.type != "cuda":
            raise ConfigError("train.precision: fp16 needs CUDA (a loss scaler); use bf16 on CPU")
        _set_determinism(cfg.train.deterministic, device)
        self._check_run_dir(resume)
        if self.is_main:
            _warn_long_warmup(cfg)

        # The same seed on every rank first, so that every rank builds identical initial weights.
        _seed_everything(cfg.train.seed)
        datasets = datasets if datasets is not None else build_datasets(cfg)
        # Loaded on resume too: a method may keep a frozen copy of its initial weights that the checkpoint
        # does not store (DAFormer's feature distance).
        init_from = init_from if init_from is not None else cfg.train.init_from
        if method is None:
            model = model if model is not None else _build_model(cfg)
            if init_from is not None:
                _load_model_weights(model, load_weights(init_from), init_from)
            method = build_method(cfg, self._prepare_model(model))
        else:
            if init_from is not None:
                _load_model_weights(method.model, load_weights(init_from), init_from)
            self._prepare_model(method.model)
        self.method = method
        self.model = method.model
        self.datasets = datasets
        self.model_space = getattr(datasets["source"], "space", None)
        if cfg.loss.class_weight != "none":
            method.class_weight = self._source_class_weight(datasets["source"]).to(device)

        self.optimizers = [build_optimizer(cfg.optim, method.param_groups()), *method.extra_optimizers()]
        self.schedulers = [build_scheduler(opt, cfg.optim, cfg.train.iters) for opt in self.optimizers]
        ddp.broadcast_from_rank0([*self._params(), *self.model.buffers()])
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        method.grad_scaler = self.scaler
        method.prepare(progress=progress and self.is_main)
        train_sets = {"source": method.wrap_source_dataset(datasets["source"], progress=progress and self.is_main),
                      "target": datasets.get("target")}
        self.loaders = {name: InfiniteLoader(dataset, cfg.data.batch_size, cfg.data.workers, cfg.train.seed, name,
                                             pin_memory=device.type == "cuda")
                        for name, dataset in train_sets.items() if dataset is not None}
        self.val_dataset = datasets.get("val")
        if self.val_dataset is not None and self.model_space is None:
            raise ConfigError("validation needs the source dataset's label space (`.space`) to map predictions")
        self.callbacks = list(callbacks)
        self.step = 0
        self.last_saved: Path | None = None
        self.last_saved_step: int | None = None
        if resume:
            self._resume()
        else:
            # Each rank its own stream for dropout, masks and mixing; rank 0 keeps `seed`.
            _seed_everything(cfg.train.seed + ddp.get_rank())
        self.logger = RunLogger(self.run_dir, enabled=self.is_main, resume_step=self.step if resume else None)
        if self.is_main:
            save_config(cfg, self.run_dir / "config.yaml")

    # ---- setup ---------------------------------------------------------------------------------------

    def _check_run_dir(self, resume: bool) -> None:
        if self.is_main:
            remove_stale_temporaries(self.run_dir)
        has_checkpoint = last_checkpoint(self.ckpt_dir) is not None
        if resume and not has_checkpoint:
            raise TrainingError(f"nothing to resume: {self.ckpt_dir / 'last.json'} does not exist")
        if not resume and has_checkpoint:
            raise TrainingError(f"{self.run_dir} already holds checkpoints; pass --resume to continue it "
                                f"or choose another name / out_dir")

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        """SyncBatchNorm, device and memory format, in place (the method keeps the same object)."""
        if self.cfg.train.sync_bn and ddp.is_distributed():
            if self.device.type == "cpu":
                raise ConfigError("train.sync_bn: SyncBatchNorm needs CUDA devices; set train.sync_bn=false")
            converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            if converted is not model:
                raise ConfigError("train.sync_bn: the model itself is a BatchNorm layer; nothing to convert")
        model.to(self.device)
        if self.cfg.model.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.cfg.train.compile is not None:
            compile_model(model, self.cfg.train.compile, what=f"train.compile={self.cfg.train.compile}")
        return model

    def _source_class_weight(self, dataset: Dataset) -> torch.Tensor:
        """`loss.class_weight` from the source labels' pixel counts (cached in the run folder)."""
        from syn2real.data.sampling import image_class_counts
        from syn2real.methods.losses import median_frequency_weights

        counts = image_class_counts(dataset, cache=self.run_dir / "class_counts.json" if self.is_main else None,
                                    progress=self.progress and self.is_main)
        return median_frequency_weights(torch.from_numpy(counts), self.cfg.loss.class_weight_power)

    def _resume(self) -> None:
        last = last_checkpoint(self.ckpt_dir)
        state = load_state(last["state"])
        if state["world_size"] != ddp.get_world_size():
            raise TrainingError(f"{last['state']} was written by {state['world_size']} process(es); resume "
                                f"with the same number (torchrun --nproc_per_node {state['world_size']})")
        _load_model_weights(self.model, load_weights(last["weights"]), last["weights"])
        for opt, sd in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(sd)
        for sched, sd in zip(self.schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(sd)
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.method.load_state_dict(state["method"])
        for name, loader in self.loaders.items():
            loader.load_state_dict(state["data"][name])
        _set_rng_state(state["rng"][ddp.get_rank()], self.device)
        self.step = state["step"]
        self.last_saved = last["weights"]
        self.last_saved_step = self.step

    # ---- the loop ------------------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train to `cfg.train.iters`, or until a callback pauses the run (it resumes from the checkpoint at that
        step). Returns the last logged metrics (losses, lr, `val/mIoU`) and `paused`."""
        train = self.cfg.train
        params = self._params()
        window: dict[str, float] = {}
        window_steps, window_images, window_start = 0, 0, time.perf_counter()
        final: dict[str, float] = {}
        self.method.set_train_mode()
        columns = (TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
        show = self.progress and self.is_main
        # Rich draws its bar only on a terminal; a log file (`make demo > log`) gets plain lines instead.
        plain = _PlainProgress(train.iters, self.step) if show and not get_console().is_terminal else None
        try:
            with Progress(*columns, disable=not show or plain is not None) as bar:
                task = bar.add_task("train", total=train.iters, completed=self.step, info="")
                while self.step < train.iters:
                    if self.callbacks:
                        if any([callback.before_step(self) for callback in self.callbacks]):
                            self.logger.close()
                            return {"step": self.step, "paused": True, **final}
                        self.method.set_train_mode()  # a callback may have run the model in eval mode
                    step = self.step
                    src = self._next_batch("source")
                    tgt = self._next_batch("target") if "target" in self.loaders else None
                    for opt in self.optimizers:
                        opt.zero_grad(set_to_none=True)
                    with self._autocast():
                        losses = self.method.train_step(src, tgt, step)
                    losses = self._mean_over_ranks(losses)
                    if not all(math.isfinite(v) for v in losses.values()):
                        raise TrainingError(self._nonfinite_message(step, losses))
                    ddp.average_gradients(params)
                    lrs = self._learning_rates()  # the rates this step uses (the schedule moves on below)
                    self._optimizer_steps()
                    ddp.broadcast_from_rank0(self.model.buffers())
                    self.method.after_step(step)
                    self.step += 1

                    for name, value in losses.items():
                        window[name] = window.get(name, 0.0) + value
                    window_steps += 1
                    window_images += len(src["image"]) * ddp.get_world_size()
                    info = " ".join(f"{k} {v:.3f}" for k, v in losses.items())
                    bar.update(task, completed=self.step, info=info)
                    if plain is not None:
                        plain.update(self.step, info)
                    at_end = self.step == train.iters
                    if self.step % max(train.log_every, 1) == 0 or at_end:
                        elapsed = time.perf_counter() - window_start
                        final = {**{k: v / window_steps for k, v in window.items()}, **lrs,
                                 "images_per_s": window_images / max(elapsed, 1e-9)}
                        self.logger.log(self.step, final)
                        window, window_steps, window_images = {}, 0, 0
                        window_start = time.perf_counter()
                    if self.val_dataset is not None and (
                            at_end or (train.eval_every and self.step % train.eval_every == 0)):
                        final.update(self.evaluate(save=at_end))
                        window_start = time.perf_counter()  # evaluation time is not training speed
                    if at_end or (train.checkpoint_every and self.step % train.checkpoint_every == 0):
                        self.save_checkpoint()
        except BaseException:
            self.logger.close()
            raise
        self.logger.close()
        return {"step": self.step, "paused": False, **final}

    def _autocast(self) -> AbstractContextManager:
        return autocast(self.device.type, self.precision)

    def _params(self) -> list[nn.Parameter]:
        """Everything the optimisers update."""
        return [p for opt in self.optimizers for g in opt.param_groups for p in g["params"]]

    def _next_batch(self, name: str) -> dict:
        batch = next(self.loaders[name])
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if key == "image" and name == "source":
                    # A translator, then `data.source_style`, restyle source images only; target images are what
                    # the model must meet.
                    if self.translator is not None:
                        with torch.no_grad():
                            value = self.translator(value)
                    value = self.source_style(value)
                if value.ndim == 4 and self.cfg.model.channels_last:
                    value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    def _mean_over_ranks(self, losses: dict[str, float]) -> dict[str, float]:
        """Average the logged losses over processes; a NaN on any rank makes the mean NaN on all ranks."""
        if not ddp.is_distributed():
            return {k: float(v) for k, v in losses.items()}
        names = sorted(losses)
        values = torch.tensor([float(losses[k]) for k in names], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(values)
        return {k: v / ddp.get_world_size() for k, v in zip(names, values.tolist())}

    def _optimizer_steps(self) -> None:
        clip = self.cfg.optim.grad_clip
        for opt in self.optimizers:
            if self.scaler is not None:
                self.scaler.unscale_(opt)
            if clip:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                opt.step()
        if self.scaler is not None:
            self.scaler.update()
        for sched in self.schedulers:
            sched.step()

    def _learning_rates(self) -> dict[str, float]:
        return {f"lr/{g.get('name', i)}": g["lr"] for i, g in enumerate(self.optimizers[0].param_groups)}

    def _nonfinite_message(self, step: int, losses: dict[str, float]) -> str:
        terms = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        kept = f"the last good checkpoint is {self.last_saved}" if self.last_saved else "no checkpoint was written"
        return (f"step {step}: non-finite loss ({terms}); training stopped and {kept}. "
                f"Lower optim.lr, set optim.grad_clip or check the data.")

    # ---- evaluation and checkpoints ------------------------------------------------------------------

    def evaluate(self, save: bool = False) -> dict[str, float]:
        """Score the model on the validation set (every rank its shard); log `val/mIoU` and per-class IoU."""
        from syn2real.evaluate.evaluator import evaluate

        result = evaluate(self.model, self.val_dataset, self.cfg.eval, self.model_space,
                          progress=self.progress and self.is_main, device=self.device,
                          precision=self.cfg.train.precision, workers=self.cfg.data.workers)
        self.method.set_train_mode()
        scalars = {"val/mIoU": result.miou, "val/pixel_accuracy": result.pixel_accuracy,
                   **{f"val/IoU/{name}": iou for name, iou in zip(result.class_names, result.iou)}}
        self.logger.log(self.step, scalars)
        if save and self.is_main:
            result.save(self.run_dir / "eval" / "final")
            if self.progress:
                result.print_table()
        return {"val/mIoU": result.miou}

    def save_checkpoint(self) -> None:
        """Write the current step's checkpoint (rank 0); refuses non-finite weights."""
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainingError(f"step {self.step}: non-finite weights in {bad[:5]}; not saving a checkpoint. "
                                f"The last good checkpoint is {self.last_saved}.")
        state = {
            "step": self.step,
            "world_size": ddp.get_world_size(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedulers": [sched.state_dict() for sched in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "method": self.method.state_dict(),
            "data": {name: loader.state_dict() for name, loader in self.loaders.items()},
            "rng": ddp.all_gather_objects(_rng_state(self.device)),
        }
        if self.is_main:
            space = self.model_space.name if self.model_space is not None else None
            save_checkpoint(self.ckpt_dir, self.step, self.model.state_dict(), state,
                            keep=self.cfg.train.keep_checkpoints, metadata=model_metadata(self.cfg.model, space))
        ddp.barrier()
        self.last_saved = weights_path(self.ckpt_dir, self.step)
        self.last_saved_step = self.step

    def ensure_checkpoint(self) -> None:
        """A checkpoint at the current step, so work done now (a labelling round) resumes from here."""
        if self.last_saved_step != self.step:
            self.save_checkpoint()


# ---- helpers -------------------------------------------------------------------------------------------

#: Warn when the learning-rate warm-up takes more than this share of the run.
WARMUP_SHARE_WARNING = 0.75


def _warn_long_warmup(cfg: Config) -> None:
    warmup, iters = cfg.optim.warmup_iters, cfg.train.iters
    if warmup > WARMUP_SHARE_WARNING * iters:
        reach = "never reaches optim.lr" if warmup >= iters else f"reaches optim.lr only after {warmup}"
        warnings.warn(f"optim.warmup_iters={warmup} for train.iters={iters}: the learning rate {reach}, so the "
                      f"model barely trains; lower optim.warmup_iters or raise train.iters", stacklevel=3)


class _PlainProgress:
    """Training progress as plain lines, for output that is not a terminal: one line each `percent` of the run
    or `seconds`, whichever comes first, and one at the end."""

    def __init__(self, total: int, start: int, percent: float = 5.0, seconds: float = 60.0):
        self.total, self.start = total, start
        self.every = max(1, math.ceil(total * percent / 100))
        self.seconds = seconds
        self.began = self.last = time.perf_counter()

    def update(self, step: int, info: str) -> None:
        now = time.perf_counter()
        if step % self.every and step != self.total and now - self.last < self.seconds:
            return
        self.last = now
        elapsed = now - self.began
        left = elapsed / max(step - self.start, 1) * (self.total - step)
        print(f"train {step}/{self.total} ({100 * step / self.total:.0f}%) {info} elapsed {_clock(elapsed)} "
              f"eta {_clock(left)}", flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"



def _build_model(cfg: Config) -> nn.Module:
    from syn2real.models import build_model

    return build_model(cfg.model)


def _load_model_weights(model: nn.Module, weights: dict[str, torch.Tensor], source) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise WeightsError(f"{source}: weights do not fit this model ({e})") from None


def _set_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # CPU kernels without a deterministic variant warn instead of failing; on CUDA they fail loudly.
    torch.use_deterministic_algorithms(deterministic, warn_only=device.type == "cpu")
    torch.backends.cudnn.benchmark = not deterministic


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(device: torch.device) -> dict:
    # Plain values and tensors only, so checkpoints load with torch.load(weights_only=True).
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


"""Checkpoints: `iter_XXXXXX.safetensors` (model weights) + `iter_XXXXXX.state.pt` (trainer state), and
`last.json` naming the last complete pair.

The weights file's metadata carries the model config section (`syn2real.model`, JSON) and the label space's
name (`syn2real.labels`), so a `.safetensors` file alone rebuilds its model (`model_config_of`); files written
before that have only `step` and still load as weights.

Each file is written atomically and `last.json` last, so a run killed at any moment leaves `last.json`
pointing at a complete, earlier pair.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from syn2real.config import ModelConfig, from_dict, to_dict
from syn2real.io import atomic_path, atomic_write_json, read_json
from syn2real.errors import ConfigError, TrainingError, WeightsError

LAST = "last.json"
MODEL_KEY = "syn2real.model"
LABELS_KEY = "syn2real.labels"
_STEP_FILE = re.compile(r"iter_(\d+)\.(safetensors|state\.pt)")


def _stem(step: int) -> str:
    return f"iter_{step:06d}"


def weights_path(ckpt_dir: str | Path, step: int) -> Path:
    return Path(ckpt_dir) / f"{_stem(step)}.safetensors"


def _standalone_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory or are not contiguous: give each its own storage."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def model_metadata(model_cfg: ModelConfig, labels: str | None) -> dict[str, str]:
    """The weights file's description of its model: the config section and the label space's name (None: a
    space syn2real does not know, left out)."""
    metadata = {MODEL_KEY: json.dumps(to_dict(model_cfg), sort_keys=True)}
    if labels is not None:
        metadata[LABELS_KEY] = labels
    return metadata


def save_checkpoint(ckpt_dir: str | Path, step: int, weights: dict[str, torch.Tensor], state: dict,
                    keep: int = 2, metadata: dict[str, str] | None = None) -> None:
    """Write the pair for `step`, point `last.json` at it, then delete all but the newest `keep` pairs.
    `metadata` (e.g. `model_metadata(...)`) goes into the weights file beside the step."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stem = _stem(step)
    with atomic_path(weights_path(ckpt_dir, step)) as tmp:
        save_file(_standalone_tensors(weights), str(tmp), metadata={**(metadata or {}), "step": str(step)})
    with atomic_path(ckpt_dir / f"{stem}.state.pt") as tmp:
        torch.save(state, tmp)
    atomic_write_json(ckpt_dir / LAST, {"step": step, "weights": f"{stem}.safetensors",
                                        "state": f"{stem}.state.pt"})
    _prune(ckpt_dir, step, keep)


def _prune(ckpt_dir: Path, last_step: int, keep: int) -> None:
    """Keep the `keep` newest steps up to `last_step`; files of later steps are leftovers of a killed run."""
    files = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_FILE.fullmatch(p.name))]
    kept = sorted({s for s, _ in files if s <= last_step})[-max(keep, 1):]
    for step, path in files:
        if step not in kept:
            path.unlink(missing_ok=True)


def last_checkpoint(ckpt_dir: str | Path) -> dict | None:
    """`last.json` as a dict with absolute `weights` / `state` paths, or None when there is none."""
    path = Path(ckpt_dir) / LAST
    if not path.is_file():
        return None
    last = read_json(path, "checkpoint index")
    try:
        return {"step": int(last["step"]), "weights": path.parent / last["weights"],
                "state": path.parent / last["state"]}
    except (ValueError, KeyError, TypeError) as e:
        raise TrainingError(f"{path}: not a valid checkpoint index ({e})") from None


def load_state(path: str | Path) -> dict:
    """The trainer state saved with a checkpoint (tensors and plain Python values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise TrainingError(f"{path}: cannot read the trainer state ({e})") from None


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights from a `.safetensors` file, a checkpoints folder or a run folder (its last checkpoint)."""
    path = Path(path)
    if path.name == LAST:
        path = path.parent
    if path.is_dir():
        ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        last = last_checkpoint(ckpt_dir)
        if last is None:
            raise WeightsError(f"{path}: no checkpoint found ({ckpt_dir / LAST} is missing)")
        path = last["weights"]
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None


def weights_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a `.safetensors` file (empty when it has none)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None


def model_config_of(path: str | Path) -> tuple[ModelConfig, str]:
    """(model config, label space name) stored in a weights file's metadata."""
    metadata = weights_metadata(path)
    if MODEL_KEY not in metadata or LABELS_KEY not in metadata:
        raise WeightsError(f"{path}: no model config in its metadata ({MODEL_KEY}, {LABELS_KEY}); it predates "
                           f"them or was not written by syn2real: load its run folder instead")
    try:
        fields = json.loads(metadata[MODEL_KEY])
        if not isinstance(fields, dict):
            raise ConfigError(f"expected a JSON object, got {fields!r}")
        model_cfg = from_dict(ModelConfig, fields, where=MODEL_KEY)
    except (json.JSONDecodeError, ConfigError) as e:
        raise WeightsError(f"{path}: unreadable {MODEL_KEY} metadata ({e})") from None
    return model_cfg, metadata[LABELS_KEY]

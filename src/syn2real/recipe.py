"""One recipe: render -> (translate) -> source-only -> adapt -> self-training rounds -> distil -> evaluate -> report.

A recipe is a YAML file (or a shipped preset, `src/syn2real/recipes/NAME.yaml`) with a list of stages:

```yaml
out: runs/recipes/mine            # the recipe's folder: one folder per stage (default runs/recipes/FILE_STEM)
stages:
  - {name: render, kind: render, n: 2000, size: 480x360, style: synthetic, seed: 0}
  - name: source_only
    kind: train
    config: synstreets2camvid_source_only      # a preset name or a YAML file (relative to the recipe)
    set: {data.source.root: "${render}"}       # dotted overrides of the training config
  - {name: adapt, kind: train, config: adaptsegnet_cpu, set: {train.init_from: "${source_only@1000}"}}
  - {name: self_train, kind: train, config: noisy_student_cpu, rounds: 2, set: {train.init_from: "${adapt}"}}
  - {name: evaluate, kind: evaluate, run: "${self_train}"}
  - {name: report, kind: report}
```

`${STAGE}` is an earlier stage's output: a render stage's data folder, a translate or train stage's run folder (a
train stage with rounds: its last round's), an evaluate stage's folder; `${STAGE@ITER}` a train stage's checkpoint
at iteration ITER (`checkpoints/iter_00ITER.safetensors`). A noisy_student stage with `rounds: N` runs N runs
`NAME_r1` .. `NAME_rN`; round k+1 takes run k as its teacher and initial weights and a larger CBST portion
(`portion_step`, default 0.05, at most 0.5).

Every stage is an ordinary run: `run.train_once` resumes an interrupted one at its last checkpoint and leaves a
finished one as it is, a render stage renders only missing frames, a translate stage resumes its translator, an
evaluate or report stage whose output exists is skipped. The whole recipe is checked before any work (stage
kinds, option names, references to earlier stages only, presets, every stage's training config and registered
names, checkpoints that a referenced stage keeps), each error one line naming the file and the stage. At the end
`OUT/summary.json` and `OUT/summary.md` hold one row per run: stage, folder, mIoU, minutes.

Paths in a recipe file are relative to its folder; in a shipped preset, to `$SYN2REAL_DATA` (as the shipped
training presets); on the command line, to the current directory.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syn2real.config import (
    Config,
    DatasetConfig,
    absolute_paths,
    data_root,
    from_dict,
    read_yaml,
    resolve_config_path,
    to_dict,
)
from syn2real.errors import ConfigError, Syn2RealError

RECIPES_DIR = Path(__file__).parent / "recipes"
KINDS = ("render", "translate", "train", "evaluate", "report")
#: The options of each stage kind (besides `name`, `kind` and `about`, a free-text note).
OPTIONS = {
    "render": ("out", "n", "size", "style", "randomize", "seed", "workers", "split"),
    "translate": ("config", "set", "source", "target"),
    "train": ("config", "set", "rounds", "portion_step"),
    "evaluate": ("run", "data", "protocol", "mode", "size"),
    "report": ("runs",),
}
REQUIRED = {"render": ("n", "size"), "translate": ("config", "source", "target"), "train": ("config",),
            "evaluate": ("run",), "report": ()}
#: `${stage}` or `${stage@1000}` (a train stage's checkpoint at iteration 1000).
REFERENCE = re.compile(r"\$\{([^}@]*)(?:@([^}]*))?\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: CBST (Zou et al., ECCV 2018): the portion of pseudo-labelled pixels per class grows 5 % a round, at most 50 %.
PORTION_STEP, PORTION_MAX = 0.05, 0.5


def round_portion(first: float, round_: int, step: float = PORTION_STEP) -> float:
    """The CBST portion of Noisy Student round `round_` (from 1): `first`, growing by `step` a round, at most
    PORTION_MAX."""
    return round(min(first + step * (round_ - 1), PORTION_MAX), 4)
SUMMARY_JSON, SUMMARY_MD, STATE_FILE = "summary.json", "summary.md", "recipe_state.json"


@dataclass
class Stage:
    name: str
    kind: str
    options: dict[str, Any]
    #: Where each option's relative paths start (the recipe's anchor, or the current directory for command-line
    #: overrides): keys are option names and `set.KEY`.
    anchors: dict[str, Path] = field(default_factory=dict)

    def anchor(self, key: str, default: Path) -> Path:
        return self.anchors.get(key, default)


@dataclass
class Recipe:
    path: Path
    out: Path
    stages: list[Stage]
    anchor: Path
    about: str = ""
    #: The command-line overrides applied (kept in summary.json).
    overrides: list[str] = field(default_factory=list)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def fail(self, stage: Stage | str | None, message: str) -> ConfigError:
        name = stage.name if isinstance(stage, Stage) else stage
        return ConfigError(f"{self.path}: " + (f"stage {name!r}: " if name else "") + message)


@dataclass
class Row:
    """One line of the summary: a run (a stage, or one round of a stage) with its folder, score and time."""

    stage: str
    kind: str
    folder: str
    miou: float | None
    minutes: float
    status: str  # ran | resumed | skipped


# ---- presets and loading ---------------------------------------------------------------------------------


def recipe_names() -> list[str]:
    """The shipped recipes, by name."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_catalog() -> list[tuple[str, str]]:
    """(name, first sentence of its leading comment) for each shipped recipe: `syn2real recipe --list`."""
    rows = []
    for name in recipe_names():
        lines = []
        for line in (RECIPES_DIR / f"{name}.yaml").read_text().splitlines():
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("# ").strip())
        rows.append((name, " ".join(lines).split(". ")[0].rstrip(".")))
    return rows


def resolve_recipe_path(recipe: str | Path) -> Path:
    """A recipe file, or the name of a shipped recipe (`synstreets2camvid_best`)."""
    path = Path(recipe)
    if path.is_file() or path.suffix or len(path.parts) > 1:
        if not path.is_file():
            raise ConfigError(f"recipe file not found: {path}")
        return path
    preset = RECIPES_DIR / f"{path}.yaml"
    if not preset.is_file():
        raise ConfigError(f"{recipe} is neither a recipe file nor a shipped recipe; recipes: "
                          f"{', '.join(recipe_names())}")
    return preset


def _is_shipped(path: Path) -> bool:
    return RECIPES_DIR.resolve() in path.resolve().parents


def load_recipe(recipe: str | Path, overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
                check: bool = True) -> Recipe:
    """Read a recipe file or shipped recipe, apply command-line overrides (`STAGE.KEY=VALUE`, `*.KEY=VALUE` for
    every train stage, `out=DIR`; an optional `stages.` prefix) and `out`, and check it all (`check_recipe`)."""
    path = resolve_recipe_path(recipe)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with `stages:` (and optionally `out:`)")
    unknown = sorted(set(data) - {"out", "stages", "about"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: about, out, stages")
    anchor = data_root() if _is_shipped(path) else path.parent.resolve()
    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        raise ConfigError(f"{path}: `stages:` must be a non-empty list of stages")
    stages = []
    for i, item in enumerate(stages_data):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: stage {i + 1}: expected a mapping with name, kind and options; got {item!r}")
        item = dict(item)
        name, kind = item.pop("name", None), item.pop("kind", None)
        item.pop("about", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{path}: stage {i + 1}: name must be a plain identifier (letters, digits, '_'); "
                              f"got {name!r}")
        if any(s.name == name for s in stages):
            raise ConfigError(f"{path}: stage {name!r}: a second stage of that name")
        if kind not in KINDS:
            raise ConfigError(f"{path}: stage {name!r}: kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if "set" in item and not isinstance(item["set"], dict):
            raise ConfigError(f"{path}: stage {name!r}: set must be a mapping of dotted key: value; "
                              f"got {item['set']!r}")
        stages.append(Stage(name, kind, item))
    default_out = Path("runs") / "recipes" / path.stem
    recipe_out = Path(anchor / Path(str(data.get("out") or default_out)).expanduser())
    result = Recipe(path=path, out=recipe_out, stages=stages, anchor=anchor, about=str(data.get("about") or ""))
    for override in overrides:
        _apply_override(result, override)
        result.overrides.append(override)
    if out is not None:
        result.out = Path(out).expanduser().absolute()
    result.out = Path(result.out).absolute()
    if check:
        check_recipe(result)
    return result


def _apply_override(recipe: Recipe, override: str) -> None:
    if "=" not in override:
        raise recipe.fail(None, f"override {override!r} must look like STAGE.KEY=VALUE (e.g. "
                                f"source_only.train.iters=300) or out=DIR")
    key, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    key = key.strip()
    if key == "out":
        recipe.out = Path(str(value)).expanduser().absolute()
        return
    key = key.removeprefix("stages.")
    stage_name, _, rest = key.partition(".")
    if not rest:
        raise recipe.fail(None, f"override {override!r} must look like STAGE.KEY=VALUE")
    if stage_name == "*":
        targets = [s for s in recipe.stages if s.kind == "train"]
    else:
        targets = [s for s in recipe.stages if s.name == stage_name]
        if not targets:
            raise recipe.fail(None, f"override {override!r}: no stage {stage_name!r}; stages: "
                                    f"{', '.join(s.name for s in recipe.stages)}")
    for stage in targets:
        if rest.startswith("set."):
            rest = rest[4:]
        elif rest in OPTIONS[stage.kind] and rest != "set":
            stage.options[rest] = value
            stage.anchors[rest] = Path.cwd()
            continue
        if stage.kind not in ("train", "translate"):
            raise recipe.fail(stage, f"override {override!r}: a {stage.kind} stage has the options "
                                     f"{', '.join(OPTIONS[stage.kind])}")
        stage.options.setdefault("set", {})[rest] = value
        stage.anchors[f"set.{rest}"] = Path.cwd()


# ---- references and planned outputs ----------------------------------------------------------------------


def _round_names(stage: Stage) -> list[str]:
    rounds = stage.options.get("rounds", 1)
    return [stage.name] if rounds == 1 else [f"{stage.name}_r{k}" for k in range(1, rounds + 1)]


def planned_outputs(recipe: Recipe) -> dict[str, Path]:
    """Each stage's output folder (a train stage with rounds: its last round's run folder)."""
    outputs = {}
    for stage in recipe.stages:
        if stage.kind == "render" and stage.options.get("out"):
            outputs[stage.name] = stage.anchor("out", recipe.anchor) / Path(str(stage.options["out"])).expanduser()
        elif stage.kind == "train":
            outputs[stage.name] = recipe.out / _round_names(stage)[-1]
        else:
            outputs[stage.name] = recipe.out / stage.name
    return {k: Path(v).absolute() for k, v in outputs.items()}


def _references(value) -> list[tuple[str, str | None]]:
    if isinstance(value, str):
        return [(m.group(1), m.group(2)) for m in REFERENCE.finditer(value)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def _target(outputs: dict[str, Path], name: str, iteration: str | None) -> str:
    path = outputs[name]
    if iteration is not None:
        path = path / "checkpoints" / f"iter_{int(iteration):06d}.safetensors"
    return str(path)


def resolve(value, outputs: dict[str, Path]):
    """`value` with every `${STAGE}` / `${STAGE@ITER}` replaced by that stage's output path."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: _target(outputs, m.group(1), m.group(2)), value)
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value


# ---- stage configs ---------------------------------------------------------------------------------------


def _config_path(recipe: Recipe, stage: Stage) -> Path:
    config = str(stage.options["config"])
    path = Path(config)
    if not path.suffix and len(path.parts) == 1:
        return resolve_config_path(config)  # a preset name (one-line error naming the presets)
    path = stage.anchor("config", recipe.anchor) / path.expanduser()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return path


def _put(data: dict, key: str, value, anchor: Path) -> None:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise ConfigError(f"set {key}: {p} is not a section")
        node = node[p]
    node[parts[-1]] = absolute_paths(value, anchor, key)


def train_configs(recipe: Recipe, stage: Stage, outputs: dict[str, Path] | None = None) -> list[Config]:
    """The training config of each run of a train stage (one per round), references resolved."""
    outputs = outputs or planned_outputs(recipe)
    path = _config_path(recipe, stage)
    names = _round_names(stage)
    step = float(stage.options.get("portion_step", PORTION_STEP))
    configs = []
    portion = None
    for k, name in enumerate(names, start=1):
        data = read_yaml(path)
        for key, value in (stage.options.get("set") or {}).items():
            _put(data, str(key), resolve(value, outputs), stage.anchor(f"set.{key}", recipe.anchor))
        if k == 1:
            portion = float(((data.get("method") or {}).get("params") or {}).get("portion", 0.2))
        else:
            previous = str(recipe.out / names[k - 2])
            _put(data, "method.params.teacher", previous, recipe.out)
            _put(data, "train.init_from", previous, recipe.out)
            _put(data, "method.params.portion", round_portion(portion, k, step), recipe.out)
        data["name"], data["out_dir"] = name, str(recipe.out)
        cfg = from_dict(Config, data, f"{path.name} + set")
        configs.append(from_dict(Config, absolute_paths(to_dict(cfg), Path.cwd()), str(path), check=False))
    return configs


def _translator_config(recipe: Recipe, stage: Stage, outputs: dict[str, Path]):
    from syn2real.translate.config import (
        PRESETS,
        absolute,
        check_translator_config,
        load_translator_config,
    )

    config = str(stage.options["config"])
    if config not in PRESETS:
        config = str(stage.anchor("config", recipe.anchor) / Path(config).expanduser())
    overrides = [f"{k}={json.dumps(resolve(v, outputs)) if not isinstance(v, str) else resolve(v, outputs)}"
                 for k, v in (stage.options.get("set") or {}).items()]
    overrides += [f"name={stage.name}", f"out_dir={recipe.out}"]
    cfg = load_translator_config(config, overrides)
    sets = {}
    for side in ("source", "target"):
        spec = resolve(stage.options[side], outputs)
        if not isinstance(spec, dict):
            raise ConfigError(f"{side} must be a dataset mapping {{kind, root, split}}; got {spec!r}")
        spec = absolute_paths(spec, stage.anchor(side, recipe.anchor), "data.source")
        sets[side] = from_dict(DatasetConfig, spec, side)
    return check_translator_config(absolute(dataclasses.replace(cfg, **sets)))


def _dataset(recipe: Recipe, stage: Stage, key: str, outputs: dict[str, Path]) -> DatasetConfig | None:
    spec = stage.options.get(key)
    if spec is None:
        return None
    spec = resolve(spec, outputs)
    if not isinstance(spec, dict):
        raise ConfigError(f"{key} must be a dataset mapping {{kind, root, split}}; got {spec!r}")
    return from_dict(DatasetConfig, absolute_paths(spec, stage.anchor(key, recipe.anchor), "data.val"), key)


def _size(text, what: str) -> tuple[int, int] | None:
    """'WxH' -> (W, H)."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"{what} must look like 480x360 (width x height); got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"{what} must be positive; got {text!r}")
    return w, h


# ---- checks ----------------------------------------------------------------------------------------------


def _kept_checkpoint(cfg: Config, iteration: int) -> str | None:
    """Why the run of `cfg` will not keep a checkpoint at `iteration`, or None when it will."""
    t = cfg.train
    steps = sorted({s for s in range(t.checkpoint_every, t.iters + 1, t.checkpoint_every)} | {t.iters}
                   if t.checkpoint_every else {t.iters})
    if iteration not in steps:
        return f"it writes checkpoints at iterations {steps[:4]}{' ...' if len(steps) > 4 else ''} (train.iters=" \
               f"{t.iters}, train.checkpoint_every={t.checkpoint_every}), not at {iteration}"
    later = sum(1 for s in steps if s > iteration)
    if later >= t.keep_checkpoints:
        return (f"it keeps only its last {t.keep_checkpoints} checkpoints (train.keep_checkpoints), so iteration "
                f"{iteration} is deleted by iteration {t.iters}")
    return None


def check_recipe(recipe: Recipe) -> Recipe:
    """Check everything that can be checked before any work; one-line ConfigErrors naming the file and stage."""
    from syn2real.run import check_names

    outputs = planned_outputs(recipe)
    configs: dict[str, list[Config]] = {}
    seen: list[str] = []
    for stage in recipe.stages:
        unknown = sorted(set(stage.options) - set(OPTIONS[stage.kind]))
        if unknown:
            raise recipe.fail(stage, f"unknown option(s) {unknown} for a {stage.kind} stage; allowed: name, kind, "
                                     f"about, {', '.join(OPTIONS[stage.kind])}")
        missing = [k for k in REQUIRED[stage.kind] if stage.options.get(k) in (None, "")]
        if missing:
            raise recipe.fail(stage, f"a {stage.kind} stage needs {', '.join(missing)}")
        for name, iteration in _references(stage.options):
            if name not in outputs:
                raise recipe.fail(stage, f"${{{name}}} names no stage; stages: {', '.join(outputs)}")
            if name not in seen:
                raise recipe.fail(stage, f"${{{name}}} names a stage that runs later (or this one); a stage can use "
                                         f"only the outputs of the stages before it")
            if iteration is not None:
                ref = recipe.stage(name)
                if ref.kind != "train" or not iteration.isdigit():
                    raise recipe.fail(stage, f"${{{name}@{iteration}}}: @ITERATION picks a checkpoint of a train "
                                             f"stage, e.g. ${{{name}@1000}}")
                why = _kept_checkpoint(configs[name][-1], int(iteration))
                if why:
                    raise recipe.fail(stage, f"${{{name}@{iteration}}}: stage {name!r} will have no such "
                                             f"checkpoint: {why}")
        try:
            configs[stage.name] = _check_stage(recipe, stage, outputs, check_names)
        except Syn2RealError as e:
            raise recipe.fail(stage, str(e)) from None
        seen.append(stage.name)
    return recipe


def _check_stage(recipe: Recipe, stage: Stage, outputs: dict[str, Path], check_names) -> list[Config]:
    o = stage.options
    if stage.kind == "render":
        n = o["n"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"n must be a positive number of frames; got {n!r}")
        _size(o["size"], "size")
        if o.get("style") is not None and o.get("randomize") is not None:
            raise ConfigError("give either style or randomize, not both")
        if o.get("style") is not None:
            from syn2real.synth.styles import check_style

            check_style(o["style"])
        for key in ("seed", "workers"):
            if key in o and (not isinstance(o[key], int) or isinstance(o[key], bool) or o[key] < (key == "workers")):
                raise ConfigError(f"{key} must be an integer >= {int(key == 'workers')}; got {o[key]!r}")
        return []
    if stage.kind == "train":
        rounds = o.get("rounds", 1)
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ConfigError(f"rounds must be a positive integer; got {rounds!r}")
        step = o.get("portion_step", PORTION_STEP)
        if not isinstance(step, (int, float)) or isinstance(step, bool) or not 0 <= step <= PORTION_MAX:
            raise ConfigError(f"portion_step must lie in [0, {PORTION_MAX}]; got {step!r}")
        configs = train_configs(recipe, stage, outputs)
        if rounds > 1 and configs[0].method.name != "noisy_student":
            raise ConfigError(f"rounds: {rounds} needs method.name noisy_student (each round's teacher is the "
                              f"previous round); the config's method is {configs[0].method.name!r}")
        for cfg in configs:
            check_names(cfg)
        return configs
    if stage.kind == "translate":
        _translator_config(recipe, stage, outputs)
        return []
    if stage.kind == "evaluate":
        run = resolve(o["run"], outputs)
        if not isinstance(run, str):
            raise ConfigError(f"run must be a run folder or ${{STAGE}}; got {run!r}")
        _dataset(recipe, stage, "data", outputs)
        from syn2real.config import EVAL_MODES, EVAL_PROTOCOLS

        if o.get("protocol") is not None and o["protocol"] not in EVAL_PROTOCOLS:
            raise ConfigError(f"protocol must be one of {', '.join(EVAL_PROTOCOLS)}; got {o['protocol']!r}")
        if o.get("mode") is not None and o["mode"] not in EVAL_MODES:
            raise ConfigError(f"mode must be one of {', '.join(EVAL_MODES)}; got {o['mode']!r}")
        _size(o.get("size"), "size")
        return []
    runs = o.get("runs")
    if runs is not None and not (isinstance(runs, list) and all(isinstance(r, str) for r in runs)):
        raise ConfigError(f"runs must be a list of run folders or ${{STAGE}} references; got {runs!r}")
    return []


# ---- running ---------------------------------------------------------------------------------------------


def _read_state(out: Path) -> dict:
    from syn2real.io import read_json

    path = out / STATE_FILE
    return read_json(path, "recipe state") if path.is_file() else {"minutes": {}}


def _train_finished(cfg: Config) -> bool:
    from syn2real.engine.checkpoint import last_checkpoint
    from syn2real.run import is_finished

    if is_finished(cfg.run_dir):
        return True
    last = last_checkpoint(cfg.run_dir / "checkpoints")
    return cfg.data.val is None and last is not None and last["step"] >= cfg.train.iters


def _miou(path: Path) -> float | None:
    from syn2real.io import read_json

    return read_json(path, "evaluation result").get("miou") if path.is_file() else None


def run_recipe(recipe: Recipe, progress: bool = True, say: Callable[[str], None] | None = None) -> list[Row]:
    """Run every stage of a checked recipe in order, skipping what is finished and resuming what was
    interrupted; writes OUT/summary.json and OUT/summary.md (after each stage, so a killed recipe leaves one)
    and returns the rows."""
    from syn2real.io import atomic_write_json, atomic_write_text

    say = say or (lambda _: None)
    out = recipe.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "recipe.yaml", recipe.path.read_text())
    outputs = planned_outputs(recipe)
    state = _read_state(out)
    rows: list[Row] = []

    def record(row: str, seconds: float) -> float:
        state["minutes"][row] = state["minutes"].get(row, 0.0) + seconds / 60
        atomic_write_json(out / STATE_FILE, state)
        return state["minutes"][row]

    for stage in recipe.stages:
        for row, folder, status_of, work, score in _units(recipe, stage, outputs, progress):
            status = status_of()
            if status == "skipped":
                say(f"{row}: finished already ({folder}), skipped")
                minutes = state["minutes"].get(row, 0.0)
            else:
                say(f"{row}: {'resuming' if status == 'resumed' else 'running'} {stage.kind} -> {folder}")
                tic = time.monotonic()
                try:
                    work()
                except Syn2RealError as e:  # one line naming the recipe and the run, as the checks do
                    raise type(e)(f"{recipe.path}: stage {row!r}: {e}") from None
                minutes = record(row, time.monotonic() - tic)
            rows.append(Row(row, stage.kind, str(folder), score(), round(minutes, 2), status))
            write_summary(recipe, rows)
    return rows


def _units(recipe: Recipe, stage: Stage, outputs: dict[str, Path], progress: bool):
    """(row name, folder, status(), work(), score()) for each run of a stage."""
    o = stage.options
    folder = outputs[stage.name]
    if stage.kind == "render":
        from syn2real.synth import render_dataset
        from syn2real.synth.writer import MANIFEST

        split = o.get("split", "train")

        def status() -> str:
            path = folder / MANIFEST
            if not path.is_file():
                return "ran"
            entry = json.loads(path.read_text()).get("splits", {}).get(split) or {}
            return "skipped" if entry.get("complete") and entry.get("n") == o["n"] else "resumed"

        def work() -> None:
            render_dataset(folder, n=o["n"], size=_size(o["size"], "size"), style=o.get("style"),
                           seed=o.get("seed", 0), workers=o.get("workers", 1), split=split, progress=progress,
                           randomize=o.get("randomize"))

        def render_status() -> str:
            # render_dataset also checks the settings and the files of a complete folder: call it either way.
            result = status()
            if result == "skipped":
                work()
            return result

        yield stage.name, folder, render_status, work, lambda: None
    elif stage.kind == "translate":
        from syn2real.translate.train import last_checkpoint as last_translator
        from syn2real.translate.train import train_translator

        cfg = _translator_config(recipe, stage, outputs)

        def status() -> str:
            last = last_translator(folder)
            return "ran" if last is None else ("skipped" if last["step"] >= cfg.iters else "resumed")

        yield (stage.name, folder, status,
               lambda: train_translator(cfg, resume=last_translator(folder) is not None, progress=progress),
               lambda: None)
    elif stage.kind == "train":
        from syn2real.engine.checkpoint import last_checkpoint
        from syn2real.run import train_once

        for cfg in train_configs(recipe, stage, outputs):
            def status(cfg=cfg) -> str:
                if _train_finished(cfg):
                    return "skipped"
                return "resumed" if last_checkpoint(cfg.run_dir / "checkpoints") is not None else "ran"

            yield (cfg.name, cfg.run_dir, status, lambda cfg=cfg: train_once(cfg, progress=progress),
                   lambda cfg=cfg: _miou(cfg.run_dir / "eval" / "final" / "metrics.json"))
    elif stage.kind == "evaluate":
        from syn2real.run import evaluate_run

        def work() -> None:
            size = _size(o.get("size"), "size")
            result, dest = evaluate_run(Path(resolve(o["run"], outputs)), _dataset(recipe, stage, "data", outputs),
                                        o.get("protocol"), o.get("mode"), size[::-1] if size else None,
                                        progress=progress, name=f"recipe-{stage.name}")
            result.save(folder, {"run": str(Path(resolve(o["run"], outputs)).absolute()), "saved_in": str(dest)})

        yield (stage.name, folder, lambda: "skipped" if (folder / "metrics.json").is_file() else "ran", work,
               lambda: _miou(folder / "metrics.json"))
    else:
        from syn2real.io import atomic_write_json
        from syn2real.report.html import write_report

        index = [s.name for s in recipe.stages].index(stage.name)
        runs = o.get("runs")
        if runs is None:
            runs = [str(recipe.out / name) for s in recipe.stages[:index] if s.kind == "train"
                    for name in _round_names(s)]
        runs = [Path(resolve(r, outputs)).absolute() for r in runs]

        def status() -> str:
            done = folder / "reports.json"
            return "skipped" if done.is_file() and all((r / "report.html").is_file() for r in runs) else "ran"

        def work() -> None:
            written = [str(write_report(r)) for r in runs]
            atomic_write_json(folder / "reports.json", {"reports": written})

        yield stage.name, folder, status, work, lambda: None


def write_summary(recipe: Recipe, rows: list[Row]) -> None:
    """OUT/summary.json and OUT/summary.md (a markdown table), each written atomically."""
    from syn2real.io import atomic_write_json, atomic_write_text

    atomic_write_json(recipe.out / SUMMARY_JSON, {
        "recipe": str(recipe.path.absolute()), "out": str(recipe.out), "overrides": recipe.overrides,
        "rows": [dataclasses.asdict(r) for r in rows]})
    atomic_write_text(recipe.out / SUMMARY_MD, summary_markdown(recipe, rows))


def _shown(folder: str, out: Path) -> str:
    try:
        return str(Path(folder).relative_to(out))
    except ValueError:
        return folder


def summary_markdown(recipe: Recipe, rows: list[Row]) -> str:
    lines = [f"# Recipe {recipe.path.stem}", "", f"Folder: `{recipe.out}`", "",
             "| stage | kind | folder | mIoU % | minutes |", "|---|---|---|---:|---:|"]
    for r in rows:
        miou = f"{100 * r.miou:.1f}" if r.miou is not None else ""
        lines.append(f"| {r.stage} | {r.kind} | `{_shown(r.folder, recipe.out)}` | {miou} | {r.minutes:.1f} |")
    return "\n".join(lines) + "\n"


def plan(recipe: Recipe) -> list[tuple[str, str, str]]:
    """(run name, kind, folder) of every run the recipe makes, in order (`syn2real recipe --check`)."""
    outputs = planned_outputs(recipe)
    rows = []
    for stage in recipe.stages:
        if stage.kind == "train":
            rows += [(name, "train", str(recipe.out / name)) for name in _round_names(stage)]
        else:
            rows.append((stage.name, stage.kind, str(outputs[stage.name])))
    return rows

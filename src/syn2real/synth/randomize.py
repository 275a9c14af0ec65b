"""Structured domain randomisation (Prakash et al., ICRA 2019): every SynStreets knob as a range in one YAML file.

`syn2real synth --randomize FILE` draws each frame from the ranges of FILE: the scene's (`Knobs`, drawn from
the frame's scene generator) and the picture's (`Look`, from its look generator). A file is grouped by what
a knob varies (camera, structure, light, surfaces, vegetation, sensor); `base:` names a point or another file
whose values it changes; keys it leaves out keep the base's values (with no base, the `photo` point's: the
renderer as it was before randomisation, whose scene knobs are all at their old values). A group given as a
name (`camera: default`) takes that point's (or file's) whole group: `base: photo` plus one such line is the
old renderer with one group of knobs randomised, a row of an ablation.

Shipped next to this module: `randomize.yaml` (the documented default, also called `default`), and the named
points `synthetic.yaml` and `photo.yaml`, which give the very bytes of `--style synthetic` / `--style photo`.
Every error is one line naming the file and the key (docs/SYNSTREETS.md lists every knob).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from syn2real.errors import ConfigError
from syn2real.synth.look import Look, check_look
from syn2real.synth.street.knobs import Knobs, check_value

HERE = Path(__file__).parent
#: Names `--randomize` takes besides a file path, and the files they stand for.
POINTS = {"default": HERE / "randomize.yaml", "randomize": HERE / "randomize.yaml",
          "synthetic": HERE / "synthetic.yaml", "photo": HERE / "photo.yaml"}
GROUPS = ("camera", "structure", "light", "surfaces", "vegetation", "sensor")
_KNOB_FIELDS = {f.name: f for f in dataclasses.fields(Knobs)}
_LOOK_FIELDS = {f.name: f for f in dataclasses.fields(Look)}


def group_keys(group: str) -> list[str]:
    """The knobs a YAML group holds, scene knobs first."""
    return ([n for n, f in _KNOB_FIELDS.items() if f.metadata["group"] == group]
            + [n for n, f in _LOOK_FIELDS.items() if f.metadata["group"] == group])


@dataclass
class Randomization:
    """A point or a region of the renderer's space: the scene's knobs and the look's."""

    knobs: Knobs = field(default_factory=Knobs)
    look: Look = field(default_factory=Look)
    source: str = "photo"  # where it came from (a name or a file), for messages only

    def to_dict(self) -> dict:
        """Every value, by group: what a manifest records (and `from_dict` reads back)."""
        out: dict[str, dict] = {g: {} for g in GROUPS}
        for values, fields in ((self.knobs.to_dict(), _KNOB_FIELDS), (self.look.to_dict(), _LOOK_FIELDS)):
            for name, value in values.items():
                out[fields[name].metadata["group"]][name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "randomisation", base: Randomization | None = None) -> Randomization:
        """A randomisation from grouped values (a YAML file's, without `base:`), over `base`'s values."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: must be a mapping of groups ({', '.join(GROUPS)}), got {type(data).__name__}")
        base = base or cls()
        knobs, look = base.knobs.to_dict(), base.look.to_dict()
        for group, values in data.items():
            if group not in GROUPS:
                raise ConfigError(f"{source}: unknown section {group!r}; sections: base, {', '.join(GROUPS)}")
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: {group} must be a mapping of knobs, got {values!r}")
            for key, value in values.items():
                name = f"{source}: {group}.{key}"
                f = _KNOB_FIELDS.get(key) or _LOOK_FIELDS.get(key)
                if f is None:
                    raise ConfigError(f"{name}: unknown knob; {group} knobs: {', '.join(group_keys(group))}")
                if f.metadata["group"] != group:
                    raise ConfigError(f"{name}: {key} belongs under {f.metadata['group']}, not {group}")
                if key in _KNOB_FIELDS:
                    knobs[key] = check_value(f, value, name)
                else:
                    look[key] = check_look(f, value, name)
        return cls(Knobs(**knobs), Look(**look), source)


def load_randomization(spec: str | Path | Randomization | None) -> Randomization:
    """A randomisation from a named point (`default`, `synthetic`, `photo`), a YAML file, or as given."""
    if isinstance(spec, Randomization):
        return spec
    if spec is None:
        return Randomization()
    return _load(_resolve(spec), [])


def _resolve(spec: str | Path, relative_to: Path | None = None) -> Path:
    if isinstance(spec, str) and spec in POINTS:
        return POINTS[spec]
    path = Path(spec).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to.parent / path
    if not path.is_file():
        raise ConfigError(f"--randomize {spec}: no such file, and not a named point ({', '.join(POINTS)})")
    return path


def _load(path: Path, seen: list[Path]) -> Randomization:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: base files include each other ({' -> '.join(str(p) for p in seen + [path])})")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not a readable YAML file ({' '.join(str(err).split())})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of groups ({', '.join(GROUPS)}), got {type(data).__name__}")
    data = dict(data)
    base = None
    if "base" in data:
        name = data.pop("base")
        if not isinstance(name, str):
            raise ConfigError(f"{path}: base must name a point ({', '.join(POINTS)}) or a file, got {name!r}")
        try:
            base_path = _resolve(name, path)
        except ConfigError:
            raise ConfigError(f"{path}: base {name!r} is neither a named point ({', '.join(POINTS)}) "
                              "nor a file next to it") from None
        base = _load(base_path, seen + [path.resolve()])
    for group, values in data.items():  # a group given as a name: that point's (or file's) whole group
        if isinstance(values, str) and group in GROUPS:
            try:
                source = _resolve(values, path)
            except ConfigError:
                raise ConfigError(f"{path}: {group}: {values!r} is neither a named point ({', '.join(POINTS)}) "
                                  "nor a file next to it") from None
            data[group] = _load(source, seen + [path.resolve()]).to_dict()[group]
    return Randomization.from_dict(data, str(path), base)

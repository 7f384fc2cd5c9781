"""A study's YAML config and its grid of cells (benchmarks x losses x variants x {base, TCM arms} x seeds).

```yaml
output_dir: runs/study/offline           # relative to the current folder
seeds: [0, 1, 2]
benchmarks:                               # name -> training config (relative to this file) [+ overrides]
  glyphs-small_cnn: {config: ../benchmarks/glyphs-small_cnn.yaml, overrides: []}
losses:                                   # name -> the loss section (name, params) of every cell
  arcface: {name: arcface, params: {scale: 30, margin: 28.6}}
tcm: {lambda_pos: 1.0, margin_pos: 0.9, margin_neg: 0.5}   # the loss.tcm of +TCM cells (arm "tcm"), or
# tcm: {fixed: {margin_pos: 0.9, margin_neg: 0.5}, auto: {margins: auto}}  # named arms, one base shared
variants: {default: []}                   # optional: name -> overrides (e.g. batch sizes)
overrides: [trainer.max_epochs=5]         # optional: applied to every cell
target_far: 0.01                          # optional: FAR of the threshold the per-class spreads are read at
```

Every key is checked; an error names the file and the key. Pure: nothing here trains or reads datasets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.checks import is_int, is_real
from tcdml.errors import TcdmlInputError
from tcdml.io.yaml_file import read_yaml_mapping

REQUIRED_KEYS = ("output_dir", "seeds", "benchmarks", "losses", "tcm")
OPTIONAL_KEYS = ("variants", "overrides", "target_far")
#: Keys ``--only`` filters on, and how a cell spells each.
CELL_KEYS = ("benchmark", "loss", "variant", "tcm", "seed")
#: Axis names become folder names: keep them portable.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
DEFAULT_TARGET_FAR = 0.01


@dataclass(frozen=True)
class Benchmark:
    """A training config file (absolute) and the overrides applied to it for this benchmark."""

    name: str
    config: Path
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyConfig:
    """A checked study config; ``path`` is the YAML file, ``output_dir`` where the cells write."""

    path: Path
    output_dir: Path
    seeds: tuple[int, ...]
    benchmarks: dict[str, Benchmark]
    losses: dict[str, dict[str, Any]]
    tcm: dict[str, dict[str, Any]]
    variants: dict[str, tuple[str, ...]]
    overrides: tuple[str, ...] = ()
    target_far: float = DEFAULT_TARGET_FAR


#: The arm of cells trained without TCM (every TCM arm is compared with it).
BASE_ARM = "base"


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a benchmark, a loss, a variant, an arm (``base`` or a TCM arm), one seed."""

    benchmark: str
    loss: str
    variant: str
    arm: str
    seed: int

    @property
    def tcm(self) -> bool:
        """Whether the cell trains with TCM (any arm but ``base``)."""
        return self.arm != BASE_ARM

    def keys(self) -> dict[str, Any]:
        """The cell's coordinates, as stored in ``result.json``."""
        return {
            "benchmark": self.benchmark,
            "loss": self.loss,
            "variant": self.variant,
            "tcm": self.tcm,
            "arm": self.arm,
            "seed": self.seed,
        }

    def label(self) -> str:
        """``glyphs-small_cnn / arcface / default / +tcm / seed 1`` (progress lines and errors)."""
        arm = f"+{self.arm}" if self.tcm else BASE_ARM
        return f"{self.benchmark} / {self.loss} / {self.variant} / {arm} / seed {self.seed}"

    def directory(self, output_dir: Path) -> Path:
        """``<output_dir>/<benchmark>/<loss>/<variant>/<base|tcm>/seed<k>``."""
        return output_dir / self.benchmark / self.loss / self.variant / self.arm / f"seed{self.seed}"


def load_study(path: str | Path) -> StudyConfig:
    """Read and check a study YAML file (module docstring); ``TcdmlInputError`` names the file and key.

    Benchmark config paths are resolved against the YAML's folder (and must exist); ``output_dir`` against
    the current folder. Every axis must be non-empty.
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "study config")
    _check_keys(raw, REQUIRED_KEYS, OPTIONAL_KEYS, f"{path}")
    where = str(path)
    output_dir = raw["output_dir"]
    if not isinstance(output_dir, str) or not output_dir:
        raise TcdmlInputError(f"{where}: key 'output_dir' = {output_dir!r}, expected a folder path")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(is_int(seed) for seed in seeds):
        raise TcdmlInputError(f"{where}: key 'seeds' = {seeds!r}, expected a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise TcdmlInputError(f"{where}: key 'seeds' = {seeds!r} repeats a seed")
    target_far = raw.get("target_far", DEFAULT_TARGET_FAR)
    if not (is_real(target_far) and 0 < target_far < 1):
        raise TcdmlInputError(f"{where}: key 'target_far' = {target_far!r}, expected a number in (0, 1)")
    tcm = _tcm_arms(raw["tcm"], where)
    return StudyConfig(
        path=path,
        output_dir=Path(output_dir),
        seeds=tuple(seeds),
        benchmarks=_benchmarks(_axis(raw, "benchmarks", where), path.parent, where),
        losses=_losses(_axis(raw, "losses", where), where),
        tcm=tcm,
        variants={
            name: _overrides(value, f"variants.{name}", where)
            for name, value in _axis(raw, "variants", where, default={"default": []}).items()
        },
        overrides=_overrides(raw.get("overrides", []), "overrides", where),
        target_far=float(target_far),
    )


def _check_keys(
    values: Mapping[str, Any], required: Sequence[str], optional: Sequence[str], where: str
) -> None:
    known = (*required, *optional)
    for key in values:
        if key not in known:
            raise TcdmlInputError(f"{where}: unknown key '{key}' (expected one of {', '.join(known)})")
    for key in required:
        if key not in values:
            raise TcdmlInputError(f"{where}: missing key '{key}'")


def _axis(raw: Mapping[str, Any], key: str, where: str, default: Any = None) -> dict[str, Any]:
    """A non-empty mapping of path-safe names (the grid's axis ``key``)."""
    values = raw.get(key, default)
    if not isinstance(values, dict) or not values:
        raise TcdmlInputError(f"{where}: key '{key}' = {values!r}, expected a non-empty mapping of names")
    for name in values:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise TcdmlInputError(
                f"{where}: key '{key}.{name}': names are folder names (letters, digits, _ . + -)"
            )
    return values


def _tcm_arms(tcm: Any, where: str) -> dict[str, dict[str, Any]]:
    """Named TCM arms: a mapping of TCM parameters is the one arm ``tcm``; a mapping whose values are all
    mappings names several arms (``{fixed: {...}, auto: {...}}``), each compared with the one base."""
    if not isinstance(tcm, dict):
        raise TcdmlInputError(f"{where}: key 'tcm' = {tcm!r}, expected a mapping of TCM parameters or arms")
    if not tcm or not all(isinstance(value, dict) for value in tcm.values()):
        return {"tcm": dict(tcm)}
    arms = _axis({"tcm": tcm}, "tcm", where)
    if BASE_ARM in arms:
        raise TcdmlInputError(f"{where}: key 'tcm.{BASE_ARM}': '{BASE_ARM}' names the cells without TCM")
    return {name: dict(params) for name, params in arms.items()}


def _overrides(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and "=" in item for item in value):
        raise TcdmlInputError(f"{where}: key '{key}' = {value!r}, expected a list of KEY.SUB=VALUE overrides")
    return tuple(value)


def _benchmarks(values: Mapping[str, Any], folder: Path, where: str) -> dict[str, Benchmark]:
    out = {}
    for name, value in values.items():
        if isinstance(value, str):  # shorthand: name -> config path
            value = {"config": value}
        if not isinstance(value, dict):
            raise TcdmlInputError(
                f"{where}: key 'benchmarks.{name}' = {value!r}, expected {{config, overrides}}"
            )
        _check_keys(value, ("config",), ("overrides",), f"{where}: benchmarks.{name}")
        config = folder / str(value["config"])
        if not config.is_file():
            raise TcdmlInputError(f"{where}: key 'benchmarks.{name}.config': no such file {config}")
        overrides = _overrides(value.get("overrides"), f"benchmarks.{name}.overrides", where)
        out[name] = Benchmark(name, config, overrides)
    return out


def _losses(values: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    out = {}
    for name, value in values.items():
        if not isinstance(value, dict):
            raise TcdmlInputError(f"{where}: key 'losses.{name}' = {value!r}, expected {{name, params}}")
        _check_keys(value, ("name",), ("params",), f"{where}: losses.{name}")
        params = value.get("params") or {}
        if not isinstance(value["name"], str) or not isinstance(params, dict):
            raise TcdmlInputError(
                f"{where}: key 'losses.{name}': expected a string name and a params mapping"
            )
        out[name] = {"name": value["name"], "params": dict(params)}
    return out


def study_cells(study: StudyConfig) -> list[Cell]:
    """Every cell, benchmark-major: benchmarks x losses x variants x seeds x (base, TCM arms), in file order.

    Base and the TCM arms of one seed are adjacent, so a partial study already holds paired comparisons.
    """
    return [
        Cell(benchmark, loss, variant, arm, seed)
        for benchmark in study.benchmarks
        for loss in study.losses
        for variant in study.variants
        for seed in study.seeds
        for arm in (BASE_ARM, *study.tcm)
    ]


def parse_filters(filters: Sequence[str]) -> dict[str, set[str]]:
    """``["loss=arcface", "loss=smooth_ap", "seed=0"]`` -> ``{"loss": {...}, "seed": {"0"}}``.

    Keys are ``CELL_KEYS``; ``tcm`` takes an arm: ``base``, ``tcm`` (or false / true) or a named TCM arm.
    Values of one key are ORed, keys are ANDed.
    """
    out: dict[str, set[str]] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or key not in CELL_KEYS or not value:
            raise TcdmlInputError(
                f"--only {text!r}: expected KEY=VALUE with KEY one of {', '.join(CELL_KEYS)}"
            )
        if key == "tcm":
            value = {"true": "tcm", "false": BASE_ARM}.get(value.lower(), value.removeprefix("+"))
        out.setdefault(key, set()).add(value)
    return out


def select_cells(cells: Sequence[Cell], filters: Sequence[str]) -> list[Cell]:
    """The cells matching every ``--only`` filter (``parse_filters``); all cells without filters."""
    wanted = parse_filters(filters)

    def spelled(cell: Cell, key: str) -> str:
        return cell.arm if key == "tcm" else str(getattr(cell, key))

    for key, values in wanted.items():  # a typo would otherwise silently select nothing
        known = sorted({spelled(cell, key) for cell in cells})
        for value in sorted(values - set(known)):
            raise TcdmlInputError(f"--only {key}={value}: no such {key} (expected one of {', '.join(known)})")
    return [cell for cell in cells if all(spelled(cell, key) in values for key, values in wanted.items())]

"""Every command's ``--help`` renders, and the choices and defaults it shows are the library's."""

from __future__ import annotations

import typer

from tcdml.adapt.settings import KINDS, MARGINS, SELECT, AdaptSettings
from tcdml.cli.main import commands, main
from tcdml.data.registry import DATASETS
from tcdml.metrics.settings import KNN_BACKENDS, MODES, EvaluationSettings
from tcdml.models.embedding import LOCAL_BACKBONES
from tcdml.training.templates import KINDS as INIT_KINDS


def command_paths(group=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of ``tcdml``, as the words that name it (``("adapt", "train")``)."""
    group = group or typer.main.get_command(commands())
    paths = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        paths += command_paths(command, (*prefix, name)) if sub else [(*prefix, name)]
    return paths


def help_text(capsys, *words: str) -> str:
    assert main([*words, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Usage: tcdml"), text[:200]
    return text


def test_every_command_has_help(capsys) -> None:
    paths = command_paths()
    assert {("evaluate",), ("calibrate",), ("train",), ("adapt", "train"), ("export",)} <= set(paths)
    help_text(capsys)
    for path in paths:
        assert "Options:" in help_text(capsys, *path), path


def option_choices(*path: str) -> dict[str, tuple]:
    """Each choice option of a command: its name -> the values it accepts (typer's reading of the enum)."""
    command = typer.main.get_command(commands())
    for word in path:
        command = command.commands[word]
    found = {}
    for param in command.params:
        kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        if isinstance(kind, type) and issubclass(kind, str) and kind is not str:
            found[param.name] = tuple(member.value for member in kind)
    return found


def test_choices_are_the_librarys() -> None:
    evaluate = option_choices("evaluate")
    assert (evaluate["mode"], evaluate["knn"]) == (MODES, KNN_BACKENDS)
    assert option_choices("calibrate")["mode"] == MODES
    adapt = option_choices("adapt", "train")
    assert (adapt["kind"], adapt["margins"], adapt["select"]) == (KINDS, MARGINS, SELECT)
    assert option_choices("init")["kind"] == INIT_KINDS


def test_defaults_and_lists_are_the_librarys(capsys) -> None:
    defaults, adapt = EvaluationSettings(), AdaptSettings()
    evaluate = " ".join(help_text(capsys, "evaluate").split())
    for shown in (defaults.beta, defaults.eps, defaults.num_thresholds, defaults.uncertainty.resamples):
        assert f"[default: {shown}]" in evaluate
    assert "[default: " + ",".join(map(str, defaults.ks)) + "]" in evaluate
    train = " ".join(help_text(capsys, "adapt", "train").split())
    for shown in (adapt.hidden, adapt.epochs, adapt.batch_size, adapt.loss, adapt.select):
        assert f"[default: {shown}]" in train
    embed = " ".join(help_text(capsys, "embed").split())
    assert ", ".join(DATASETS) in embed and ", ".join(LOCAL_BACKBONES) in embed

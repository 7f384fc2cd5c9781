"""Study configs: every key checked (errors name file and key), the grid of cells, overrides, --only."""

from __future__ import annotations

import pytest

from tcdml.errors import TcdmlInputError
from tcdml.experiments.study import cell_overrides, plan_study
from tcdml.experiments.study_config import Cell, load_study, select_cells, study_cells
from tests.experiments.study_helpers import write_study


def test_grid_is_every_combination(tmp_path) -> None:
    variants = {"bs64": ["data.classes_per_batch=8"], "bs128": ["data.classes_per_batch=10"]}
    study = load_study(write_study(tmp_path, seeds=[0, 1], variants=variants))
    cells = study_cells(study)
    assert len(cells) == 1 * 2 * 2 * 2 * 2
    assert cells[:2] == [
        Cell("mnist", "smooth_ap", "bs64", "base", 0),
        Cell("mnist", "smooth_ap", "bs64", "tcm", 0),
    ]
    assert cells[0].directory(study.output_dir) == tmp_path / "out/mnist/smooth_ap/bs64/base/seed0"
    assert len(plan_study(study)) == 16  # every cell's overrides are valid


def test_cell_overrides_replace_the_loss_and_order_specific_last(tmp_path) -> None:
    study = load_study(write_study(tmp_path, seeds=[1], variants={"big": ["trainer.max_epochs=3"]}))
    base, tcm = Cell("mnist", "arcface", "big", "base", 1), Cell("mnist", "arcface", "big", "tcm", 1)
    overrides = cell_overrides(study, base)
    assert overrides.index("trainer.max_epochs=1") < overrides.index("trainer.max_epochs=3")
    assert 'loss.name="arcface"' in overrides and "loss.tcm=null" in overrides and "seed=1" in overrides
    config = dict(plan_study(study, ["variant=big", "loss=arcface", "seed=1"]))
    assert config[base].loss.tcm is None and config[tcm].loss.tcm["margin_neg"] == 0.5
    assert config[base].loss.params == {"scale": 16, "margin": 10} and config[base].trainer.max_epochs == 3


def test_named_tcm_arms_share_one_base(tmp_path) -> None:
    arms = {"fixed": {"margin_pos": 0.9, "margin_neg": 0.5}, "auto": {"margins": "auto", "target_far": 0.2}}
    study = load_study(write_study(tmp_path, seeds=[0], tcm=arms))
    cells = study_cells(study)
    assert [cell.arm for cell in cells[:3]] == ["base", "fixed", "auto"] and len(cells) == 2 * 3
    auto = next(cell for cell in cells if cell.arm == "auto")
    assert auto.directory(study.output_dir).parts[-2:] == ("auto", "seed0") and auto.label().endswith(
        "+auto / seed 0"
    )
    config = dict(plan_study(study, ["tcm=auto", "loss=smooth_ap"]))
    assert config[auto].loss.tcm == {"margins": "auto", "target_far": 0.2}
    assert len(select_cells(cells, ["tcm=+fixed"])) == 2
    with pytest.raises(TcdmlInputError, match=r"'tcm.base': 'base' names the cells without TCM"):
        load_study(write_study(tmp_path, seeds=[0], tcm={"base": {}, "auto": {"margins": "auto"}}))


def test_only_filters_and_their_errors(tmp_path) -> None:
    cells = study_cells(load_study(write_study(tmp_path, seeds=[0, 1])))
    assert len(select_cells(cells, ["loss=arcface", "tcm=base"])) == 2
    assert len(select_cells(cells, ["seed=1", "seed=0", "tcm=true"])) == 4
    with pytest.raises(TcdmlInputError, match="--only loss=arcfce: no such loss"):
        select_cells(cells, ["loss=arcfce"])
    with pytest.raises(TcdmlInputError, match="--only 'colour=red'"):
        select_cells(cells, ["colour=red"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 3}, r"study.yaml: unknown key 'epochs'"),
        ({"losses": {}}, r"study.yaml: key 'losses' = \{\}, expected a non-empty mapping"),
        ({"seeds": []}, r"key 'seeds' = \[\], expected a non-empty list"),
        ({"seeds": [0, 0]}, r"key 'seeds' = \[0, 0\] repeats a seed"),
        ({"variants": {}}, r"key 'variants' = \{\}"),
        (
            {"benchmarks": {"b": {"config": "nope.yaml"}}},
            r"key 'benchmarks.b.config': no such file .*nope.yaml",
        ),
        ({"benchmarks": {"b": {"config": "x", "extra": 1}}}, r"benchmarks.b: unknown key 'extra'"),
        ({"losses": {"a": {"params": {}}}}, r"losses.a: missing key 'name'"),
        ({"losses": {"a/b": {"name": "x"}}}, r"key 'losses.a/b': names are folder names"),
        (
            {"overrides": ["max_epochs"]},
            r"key 'overrides' = \['max_epochs'\], expected a list of KEY.SUB=VALUE",
        ),
        ({"target_far": 2}, r"key 'target_far' = 2, expected a number in \(0, 1\)"),
    ],
)
def test_bad_keys_name_file_and_key(tmp_path, changes, message) -> None:
    with pytest.raises(TcdmlInputError, match=message):
        load_study(write_study(tmp_path, **changes))


def test_missing_file_key_and_bad_override(tmp_path) -> None:
    with pytest.raises(TcdmlInputError, match="no such study config file"):
        load_study(tmp_path / "absent.yaml")
    path = write_study(tmp_path)
    path.write_text(path.read_text().replace("tcm:", "tcm_settings:"))
    with pytest.raises(TcdmlInputError, match="unknown key 'tcm_settings'"):
        load_study(path)
    study = load_study(write_study(tmp_path, overrides=["trainer.max_epoch=1"]))
    with pytest.raises(
        TcdmlInputError, match=r"cell mnist / smooth_ap / default / base / seed 0: .*max_epoch"
    ):
        plan_study(study)

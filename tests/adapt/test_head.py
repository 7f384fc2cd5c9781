"""The adapter heads and the adapter folder: identity at init, round trip, atomic replacement."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tcdml.adapt import build_head, load_adapter, write_adapter_dir
from tcdml.adapt.folder import ADAPTER_JSON, ADAPTER_PT, check_output_dir
from tcdml.adapt.head import head_meta, init_projection, transform
from tcdml.errors import TcdmlInputError


@pytest.mark.parametrize("kind", ["residual", "linear"])
def test_untrained_head_is_the_normalised_input_bit_for_bit(kind, digits) -> None:
    x = torch.from_numpy(digits[0])
    head = build_head(kind, 64, 64, 32)
    assert torch.equal(transform(head, x), F.normalize(x, dim=1))


def test_wider_linear_head_pads_with_zeros_and_keeps_cosines(digits) -> None:
    x = torch.from_numpy(digits[0])
    y = transform(build_head("linear", 64, 80, None), x)
    assert y.shape == (len(x), 80)
    assert torch.equal(y[:, :64], F.normalize(x, dim=1)) and not y[:, 64:].any()


def test_narrow_linear_head_starts_as_the_top_singular_directions(digits) -> None:
    head = build_head("linear", 64, 16, None)
    init_projection(head, digits[0])
    w = head.proj.weight.detach().double()
    assert torch.allclose(w @ w.T, torch.eye(16, dtype=torch.float64), atol=1e-5)  # orthonormal rows
    x = F.normalize(torch.from_numpy(digits[0]).double(), dim=1)
    kept = (x @ w.T).square().sum() / x.square().sum()
    assert kept > 0.9  # most of the energy of the normalised digits lies in 16 directions


def test_residual_head_keeps_the_input_size() -> None:
    with pytest.raises(TcdmlInputError, match="--embedding-size=16"):
        build_head("residual", 64, 16, 32)


def test_load_adapter_round_trip(tmp_path, digits) -> None:
    head = build_head("residual", 64, 64, 32)
    with torch.no_grad():
        head.down.weight.normal_(0, 0.1)  # a trained-looking head
    folder = write_adapter_dir(
        tmp_path / "ad", head, {**head_meta("residual", 64, 64, 32), "training": {"a": 1}}
    )
    assert sorted(p.name for p in folder.iterdir()) == [ADAPTER_JSON, ADAPTER_PT]
    loaded, meta = load_adapter(folder)
    assert not loaded.training
    assert (meta["kind"], meta["input_size"], meta["hidden"], meta["embedding_size"]) == (
        "residual",
        64,
        32,
        64,
    )
    assert meta["training"] == {"a": 1} and meta["tcdml_version"]
    x = torch.from_numpy(digits[0][:50])
    assert torch.equal(transform(loaded, x), transform(head, x))
    assert not torch.equal(transform(loaded, x), F.normalize(x, dim=1))


def test_load_adapter_refuses_bad_folders(tmp_path) -> None:
    folder = write_adapter_dir(
        tmp_path / "ad", build_head("linear", 8, 8, None), head_meta("linear", 8, 8, None)
    )
    meta = json.loads((folder / ADAPTER_JSON).read_text())
    (folder / ADAPTER_JSON).write_text(json.dumps({**meta, "input_size": 9}))
    with pytest.raises(TcdmlInputError, match=f"{ADAPTER_PT}: weights do not fit"):
        load_adapter(folder)
    (folder / ADAPTER_JSON).write_text(json.dumps({k: v for k, v in meta.items() if k != "kind"}))
    with pytest.raises(TcdmlInputError, match="missing key 'kind'"):
        load_adapter(folder)
    with pytest.raises(TcdmlInputError, match="no such adapter folder"):
        load_adapter(tmp_path / "absent")


def test_force_replaces_only_adapter_folders(tmp_path) -> None:
    head = build_head("linear", 4, 4, None)
    folder = write_adapter_dir(tmp_path / "ad", head, head_meta("linear", 4, 4, None))
    with pytest.raises(TcdmlInputError, match="exists"):
        check_output_dir(folder, force=False)
    check_output_dir(folder, force=True)
    write_adapter_dir(folder, build_head("linear", 4, 2, None), head_meta("linear", 4, 2, None))
    assert load_adapter(folder)[1]["embedding_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad"]  # no staging or old copy left behind
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(TcdmlInputError, match="not an adapter folder"):
        check_output_dir(other, force=True)
    assert (other / "keep.txt").read_text() == "x"

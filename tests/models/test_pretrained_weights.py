"""Backbone weights from local files: torch (weights_only) and safetensors, checkpoint wrappers, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from tcdml.errors import TcdmlInputError
from tcdml.models import ModelConfig, build_model


def reference_state(name: str = "resnet18", **kwargs) -> dict[str, torch.Tensor]:
    """Weights of a timm model with its classifier, as a published checkpoint has them."""
    torch.manual_seed(1)
    return timm.create_model(name, pretrained=False, num_classes=10, **kwargs).state_dict()


def assert_loaded(model, state: dict[str, torch.Tensor]) -> None:
    loaded = model.backbone.state_dict()
    assert loaded.keys() == {k for k in state if not k.startswith("fc.")}
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key])


def test_torch_file_and_checkpoint_wrappers(tmp_path: Path) -> None:
    state = reference_state()
    torch.save(state, tmp_path / "plain.pth")
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.ckpt"
    )
    for name in ("plain.pth", "ddp.ckpt"):
        model = build_model(
            ModelConfig(backbone="resnet18", embedding_size=8, pretrained=str(tmp_path / name))
        )
        assert_loaded(model, state)


def test_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = reference_state()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "weights.safetensors")
    model = build_model(
        ModelConfig(backbone="resnet18", embedding_size=8, pretrained=str(tmp_path / "weights.safetensors"))
    )
    assert_loaded(model, state)


def test_vit_position_embeddings_resampled_to_img_size(tmp_path: Path) -> None:
    torch.save(reference_state("vit_tiny_patch16_224"), tmp_path / "vit.pth")  # 14 x 14 patches
    config = ModelConfig(
        backbone="vit_tiny_patch16_224", embedding_size=8, img_size=32, pretrained=str(tmp_path / "vit.pth")
    )
    model = build_model(config)
    assert model.backbone.pos_embed.shape == (1, 1 + 2 * 2, 192)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 8)


class NotWeights:
    """A pickled object of a user class: weights_only loading must refuse it, not run it."""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing", "expected weights file 'w.pth' at"),
        ("pickle", r"w.pth: cannot read as a weights file \(it holds the Python object .*NotWeights"),
        ("garbage", r"w.pth: cannot read as a weights file"),
        ("other-arch", r"does not fit the backbone: 0 missing keys \[\], 96 unexpected keys \['layer1.2"),
        ("wrong-shape", r"does not fit the backbone: size mismatch for conv1.weight"),
        ("partial", r"does not fit the backbone: 1 missing keys \['conv1.weight'\], 1 unexpected keys"),
        ("not-tensors", "holds no state dict of tensors"),
    ],
)
def test_bad_weight_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "w.pth"
    if content == "pickle":
        torch.save({"conv1.weight": NotWeights()}, path)
    elif content == "garbage":
        path.write_bytes(b"\x00not a checkpoint")
    elif content == "other-arch":
        torch.save(reference_state("resnet34"), path)
    elif content == "wrong-shape":
        torch.save({**reference_state(), "conv1.weight": torch.zeros(1, 1, 1, 1)}, path)
    elif content == "partial":
        state = reference_state()
        state["stem.weight"] = state.pop("conv1.weight")
        torch.save(state, path)
    elif content == "not-tensors":
        torch.save({"lr": 0.1, "epoch": 2}, path)
    with pytest.raises(TcdmlInputError, match=message):
        build_model(ModelConfig(backbone="resnet18", embedding_size=8, pretrained=str(path)))

"""The dataset class of text benchmarks: a list of (text, label), the counterpart of ``ImageListDataset``.

It has the same interface (``labels``, ``class_names``, ``name``, ``split``, ``paths``, ``num_classes``,
``transform``), so the sampler, the training pipeline and ``embed_dataset`` treat both alike; ``modality``
(``"text"`` here, ``"image"`` for ``ImageListDataset``) is what tells the pipeline not to apply image
transforms. ``paths`` are pseudo-paths (e.g. ``hscodes/010121``) used as sample ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset


class TextListDataset(Dataset):
    """A list of (text, label) with a split name, sample ids and an optional transform.

    ``labels`` are ``0 .. num_classes-1`` (int64); ``class_names[label]`` is the class as the benchmark names
    it. ``dataset[i]`` is ``(text, label)``, the ``str`` passed through ``transform`` when one is set (the
    default collate then batches texts into a list of ``str``, which text backbones take as they are).
    """

    modality = "text"

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        *,
        ids: Sequence[str | Path],
        class_names: Sequence[str],
        name: str,
        split: str,
        transform: Callable[[str], Any] | None = None,
    ) -> None:
        self.texts = [str(text) for text in texts]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.paths = [Path(sample_id) for sample_id in ids]
        self.class_names = tuple(class_names)
        self.name = name
        self.split = split
        self.transform = transform
        if not len(self.texts) == len(self.labels) == len(self.paths):
            raise ValueError(
                f"{name}: {len(self.texts)} texts, {len(self.labels)} labels and {len(self.paths)} ids"
            )

    @property
    def num_classes(self) -> int:
        """Number of classes in this split."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        text: Any = self.texts[index]
        if self.transform is not None:
            text = self.transform(text)
        return text, int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
            f"samples={len(self)}, classes={self.num_classes})"
        )

"""The dataset class of text benchmarks: a list of (text, label), the counterpart of ``ImageListDataset``.

It has the same interface (``labels``, ``class_names``, ``name``, ``split``, ``paths``, ``num_classes``,
``transform``), so the sampler, the training pipeline and ``embed_dataset`` treat both alike; ``modality``
(``Modality.TEXT`` here, ``Modality.IMAGE`` for ``ImageListDataset``) is what tells the pipeline not to apply
image transforms. ``paths`` are pseudo-paths (e.g. ``hscodes/010121``) used as sample ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.data.base import LabelledDataset, Modality
from tcdml.errors import TcdmlInputError


class TextListDataset(LabelledDataset):
    """A list of (text, label) with a split name, sample ids and an optional transform.

    ``dataset[i]`` is ``(text, label)``, the ``str`` passed through ``transform`` when one is set (the default
    collate then batches texts into a list of ``str``, which text backbones take as they are). The rest is
    ``LabelledDataset``'s (``ids`` become its ``paths``).
    """

    modality = Modality.TEXT

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
        super().__init__(ids, labels, class_names=class_names, name=name, split=split, transform=transform)
        self.texts = [str(text) for text in texts]
        if len(self.texts) != len(self.labels):
            raise TcdmlInputError(f"{name}: {len(self.texts)} texts but {len(self.labels)} labels")

    def load_sample(self, index: int) -> str:
        """The text ``index``."""
        return self.texts[index]

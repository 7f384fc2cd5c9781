"""Reading and writing tcdml's files: embedding files (docs/spec.md) and atomic writes."""

from tcdml.io.atomic import atomic_write
from tcdml.io.embeddings_file import EmbeddingsFile, load_embeddings_file, save_embeddings_file

__all__ = ["EmbeddingsFile", "atomic_write", "load_embeddings_file", "save_embeddings_file"]

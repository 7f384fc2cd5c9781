"""Experiments built on tcdml's training, evaluation and calibration: the MNIST demo and its figures.

- ``mnist_demo.run_demo(output, epochs=, embedding_size=, seed=)``: ArcFace with and without TCM on MNIST,
  the comparison table, figures, ``metrics.json`` and ``report.md`` (``tcdml demo``; docs/demo.md).
- ``mnist_figures``: the class-cluster and utility-curve figures; ``demo_report``: the table and report.

Import the submodules directly: they load Lightning and matplotlib, which ``import tcdml`` never does.
"""

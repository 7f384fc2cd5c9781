"""Experiments built on tcdml's training, evaluation and calibration: the MNIST demo and the studies.

- ``mnist_demo.run_demo(output, epochs=, embedding_size=, seeds=, threads=)``: ArcFace with and without TCM
  on MNIST over several seeds, the tables, figures, ``metrics.json`` and ``report.md`` (``tcdml demo``;
  docs/demo.md).
- ``mnist_figures``: the class-cluster and utility-curve figures; ``demo_report``: the tables and report;
  ``demo_stats``: the per-digit angular spread and the summary over seeds.
- ``study_config`` / ``study``: a grid of runs (benchmarks x losses x variants x +/-TCM x seeds), resumable
  (``tcdml study``); ``study_table``: the paper-style table; ``pareto``: error vs OPIS, frontiers and knee
  (``tcdml pareto``); docs/study.md.
- ``runs``: what the demo and the studies share (fit, embed, evaluate, calibrate one run).

Import the submodules directly: they load Lightning and matplotlib, which ``import tcdml`` never does.
"""

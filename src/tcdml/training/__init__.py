"""Training: Lightning module, data module, Trainer from config, checkpoints, resume, DDP, ``tcdml embed``.

- ``config_files.load_config(path, overrides)`` -> ``config.TrainConfig`` (YAML parts + overrides).
- ``build.build_run(config)`` -> ``Run`` (filled config, model, loss, data module): the one builder.
- ``trainer.fit(config, resume=None)`` -> ``FitResult``; ``trainer.build_trainer(config)``.
- ``module.EmbeddingModule`` (built model + loss in), ``evaluation.SelectOnValidation`` (the validation
  callback that keeps ``best.ckpt``), ``data.MetricDataModule``, ``optim.param_groups`` / ``lr_factor``.
- ``checkpoint.model_from_checkpoint(path)``; ``embed.embed_dataset(checkpoint, root, output)``;
  ``embed.starting_point(backbone)`` (the untrained model a run starts from).

Import the submodules directly: they load Lightning and timm, which ``import tcdml`` never does.
See docs/training.md.
"""

"""``quiet_lightning``: Lightning's start-up chatter and the warnings that do not apply to small CPU runs,
silenced while a run trains (``fit`` trains inside it), so that a run prints what tcdml says and nothing
else: its progress bar, its result, or one error line."""

from __future__ import annotations

import logging
import warnings


class quiet_lightning:
    """Silence Lightning's start-up chatter and the warnings that do not apply to small CPU runs."""

    names = ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning_fabric")

    def __enter__(self) -> None:
        self._levels = {name: logging.getLogger(name).level for name in self.names}
        for name in self.names:
            logging.getLogger(name).setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        patterns = (".*does not have many workers.*", ".*tensorboard.*", ".*LeafSpec.*")
        patterns += (".*logging interval.*", r".*module\(s\) in eval mode.*")  # frozen backbones: intended
        for pattern in patterns:
            warnings.filterwarnings("ignore", message=pattern)

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(*exc)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

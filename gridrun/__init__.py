"""gridrun: a terminal experiment manager for deep-learning sweeps.

Installed, the repository's `engine/`, `tui/` and `experiments/` folders are the subpackages
`gridrun.engine`, `gridrun.tui` and `gridrun.experiments` (see pyproject.toml): one top-level
name in site-packages, so a user's own `engine/` or `experiments/` folder never shadows ours.

Scripts report metrics with `from gridrun import report`; that import stays light (standard
library only).
"""
from gridrun.engine.report import report

__all__ = ["report"]

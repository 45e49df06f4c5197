"""The model's import path before the tasks were grouped by stage (`tasks/training/model.py`).

Versions registered before then name it: their model code runs `from tasks.model import
GreenlightModel`, and older pickled versions unpickle `tasks.model.GreenlightModel`. This
keeps both loading; new versions name `tasks.training.model`.
"""

from tasks.training.model import GreenlightModel  # noqa: F401 (the old path, re-exported)

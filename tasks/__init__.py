"""The work of the loop, one sub-package per stage; plain functions, testable without Prefect.

- `data/`: the dataset spec, the state dir, sources, ingest, validation, the lake, the
  manifest, labels and the prediction log's harvest.
- `monitoring/`: drift, adversarial validation, input and output quality, alarms.
- `training/`: train, the model and its code, recipes, evaluation.
- `gate/`: decide, the gate and its bootstrap.
- `publish/`: reports, dashboards, the Evidently workspace, plots.
- `scale/`: the same steps on Dask above a size threshold.

Stages import `core` and each other's modules; flows import stages; nothing here imports
flows, cli or serving.
"""

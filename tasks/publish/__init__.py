"""Publishing what a cycle saw where people look: MLflow and Prefect reports
(`reports`), the Evidently workspace and dashboards (`workspace`, `dashboards`) and the
history plots (`plots`)."""

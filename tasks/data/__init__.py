"""Data in: the dataset spec and the state dir, the sources (the landing folder, a SQL
table, a bucket), the replay of the seeded synthetic stream and the shipped datasets
(`replay.py`), ingest, Great Expectations validation and quarantine, the parquet lake, the
batch manifest, late labels, the prediction log and its harvest, and `greenlight init` (a
spec and suite inferred from a file).

A new data source implements `source_base.Source` (tasks/data/source_base.py) beside the
landing folder, the SQL source (`sql_source.py`) and the remote landing
(`remote_landing.py`); `source.py` picks a dataset's sources."""

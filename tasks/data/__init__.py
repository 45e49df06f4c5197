"""Data in: the dataset spec and the state dir, the sources (the landing folder, the
seeded synthetic stream, the shipped datasets), ingest, Great Expectations validation and
quarantine, the parquet lake, the batch manifest, late labels, the prediction log and its
harvest, and `greenlight init` (a spec and suite inferred from a file).

A new data source implements `source.Source` (tasks/data/source.py) beside the landing
folder, the SQL source (`sql_source.py`) and the remote landing (`remote_landing.py`)."""

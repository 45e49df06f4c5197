"""The heavy steps on Dask above a size threshold: validation and monitoring by
partition, training with lightgbm.dask (`distributed`), each partition a Prefect task run
through prefect-dask (`dispatch`)."""

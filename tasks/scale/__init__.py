"""The heavy steps on Dask above a size threshold: validation and monitoring by
partition, training with lightgbm.dask (`distributed`), the landed file and the lake read
and written by the workers so the flow never holds a big batch (`landed`), each partition
a Prefect task run through prefect-dask (`dispatch`)."""

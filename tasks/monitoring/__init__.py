"""Monitoring a batch against the live champion: data, label and prediction drift
(`drift`, Evidently), adversarial validation, input and output quality, concept drift
(`monitor`), and the alarms that follow from them.

A new drift metric goes in `drift.py`; its threshold in `flows/params.py`."""

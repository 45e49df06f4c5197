"""Deciding: whether to retrain (`decide`), whether a challenger beats the champion on
the same recent rows (`gate`, with the paired bootstrap in `bootstrap`).

Promotion policies themselves are in `flows/policies.py`; registry moves in `registry/`."""

"""The demo command's own code on a short replay (the full replay is tests/test_loop_synthetic.py,
in the end-to-end tier): it bootstraps, runs a cycle per batch and prints what it decided."""

from __future__ import annotations

import io

from rich.console import Console

from cli.demo import run_demo


def test_a_two_batch_demo_bootstraps_then_monitors_and_says_where_to_look(tmp_path):
    out = io.StringIO()
    root = tmp_path / "gl"
    run_demo(root, dataset="synthetic", data=None, freq="W", warmup=None, limit=2, seed=7,
             console=Console(file=out, width=400))
    text = out.getvalue()
    assert "greenlight demo: synthetic (2 batches" in text
    assert "bootstrap" in text and "no action" in text
    assert "champion: v1, previous: vNone, 1 versions, 1 promotions" in text
    assert f"mlflow ui --backend-store-uri sqlite:///{root}" in text

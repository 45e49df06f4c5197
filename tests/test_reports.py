"""The cycle's markdown artifact tells a person where to look next."""

from __future__ import annotations

from dataclasses import replace

from flows.cycle import registry_for
from registry.store import Registry
from tasks.data.spec import load_spec
from tasks.publish.links import links as _links
from tasks.publish.reports import cycle_markdown


def _markdown(links: dict[str, str]) -> str:
    return cycle_markdown("synthetic", "no action", [], [], {}, {"monitor": 0.5},
                          "sqlite:///x.db", links=links)


def test_links_without_servers_are_paths_and_commands(home, monkeypatch):
    monkeypatch.delenv("GREENLIGHT_EVIDENTLY_URL", raising=False)
    links = _links(registry_for(home, load_spec("synthetic")), None, {"b1": "run1"}, home)
    text = _markdown(links)
    assert "## Links" in text
    assert f"- drift report b1: `{home.reports / 'b1' / 'drift.html'}`" in text
    assert f"evidently ui --workspace {home.evidently}" in text


def test_links_with_servers_point_into_the_uis(home, monkeypatch):
    monkeypatch.setenv("GREENLIGHT_EVIDENTLY_URL", "http://127.0.0.1:8000")
    reg = replace(registry_for(home, load_spec("synthetic")),
                  tracking_uri="http://127.0.0.1:5000")
    # the experiment id is what the server would answer; no server is needed for the links
    monkeypatch.setattr(Registry, "experiment_id", lambda self, name: "7")
    text = _markdown(_links(reg, 3, {"b1": "run1"}, home))
    assert "- [MLflow model version v3](http://127.0.0.1:5000/#/models/" in text
    assert "(http://127.0.0.1:5000/#/experiments/7/runs/run1/artifacts)" in text
    assert "- [Evidently dashboard](http://127.0.0.1:8000)" in text

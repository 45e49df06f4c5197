"""What `greenlight up` says and links to, without starting its servers (the e2e tier in
tests/test_deployments.py starts them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli.deployments import POLICIES, for_policy
from cli.up import _banner
from tasks.data.spec import load_spec
from tasks.publish.dashboards import dashboard_url

REPO = Path(__file__).resolve().parents[1]


def test_the_banner_says_which_schedules_are_paused():
    """16.10c: greenlight-monitor's schedule was paused, and the banner listed it as served
    like the others. Now every deployment of another policy says PAUSED and how to switch."""
    for policy in POLICIES:
        lines = _banner(Path("/state"), "http://127.0.0.1:4200", "http://127.0.0.1:5000",
                        "synthetic", None, policy, for_policy(policy))
        for d in for_policy(policy):
            (line,) = [x for x in lines if d.full_name + "  (" in x]
            assert ("PAUSED" in line) == (not d.active), (policy, line)
            if not d.active:
                assert line.lstrip().startswith("paused") and "--policy" in line, line
        assert f"policy      {policy}:" in "\n".join(lines)
    (monitor,) = [x for x in _banner(Path("/s"), "p", "m", "synthetic")
                  if "greenlight-monitor" in x and "(" in x]
    assert "schedule PAUSED" in monitor and "greenlight up --policy monitor" in monitor


def test_the_dashboard_link_opens_the_projects_dashboard(tmp_path):
    """16.10b: the link opened the Evidently UI's home page. It names the dataset's project,
    created (with its panels) in a fresh workspace, and the same one every time."""
    spec = load_spec("synthetic")
    first = dashboard_url("http://127.0.0.1:8000/", tmp_path / "evidently", spec)
    assert first.startswith("http://127.0.0.1:8000/projects/")
    project_id = first.rsplit("/", 1)[1]
    meta = json.loads((tmp_path / "evidently" / project_id / "metadata.json").read_text())
    assert meta["name"] == "greenlight-synthetic"
    assert dashboard_url("http://127.0.0.1:8000", tmp_path / "evidently", spec) == first
    assert len(list((tmp_path / "evidently").glob("*/metadata.json"))) == 1


def test_an_unknown_policy_is_one_line_before_anything_starts(tmp_path):
    """`greenlight up --policy` takes one of the policies that have deployments."""
    done = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "up",
                           "--home", str(tmp_path / "gl"), "--policy", "sometimes"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --policy sometimes: up serves one of auto, manual, monitor"]
    assert not (tmp_path / "gl" / "logs").exists()  # no server was started


def test_up_on_an_object_store_home_serves_runs_on_the_store(monkeypatch, tmp_path):
    """`greenlight up` with GREENLIGHT_HOME=s3://…: found by walking the issue's tour. Its
    deployments named this machine's scratch folder as their home, so every scheduled cycle
    would have started a new local state there instead of the shared one; its tips said
    `--home <scratch folder>` too. Both name the store now."""
    from cli.up import runner_deployments, served_state

    url = "s3://greenlight-state/prod"
    monkeypatch.setenv("GREENLIGHT_HOME", url)
    scratch = tmp_path / "scratch"
    shared = served_state(scratch)
    assert str(shared.root) == url
    for deployment in runner_deployments(for_policy("auto"), dataset="synthetic",
                                         home=str(shared.root)):
        assert deployment.parameters["home"] == url
    lines = _banner(scratch, "p", "m", "synthetic", state=str(shared.root))
    assert f"state in {url}, logs in {scratch / 'logs'}" in lines[0]
    assert all(f"--home {url}" in x for x in lines if "--home" in x)
    monkeypatch.delenv("GREENLIGHT_HOME")
    assert served_state(scratch).root == scratch  # a local state dir is its own

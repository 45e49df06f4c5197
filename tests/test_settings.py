"""Settings from `--set` and `greenlight.toml` reach the cycle as the typed models; bad ones are
one line naming the flag or the file and the key (cli/settings.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from cli.settings import SettingsError, parse_flags, resolve, settings_file
from flows.params import Scale, Thresholds, Training
from tests.approval_helpers import land
from tests.test_idle import REPO, _cli


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    """The command refused in one line, exit 2, having imported nothing heavy."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED []", done.stdout
    return lines[0]


# --- the real command line, in a fresh process --------------------------------------------


def test_an_unknown_key_is_one_line_naming_it_and_the_keys_there_are(home):
    line = _one_error_line(_cli(["run", "--set", "thresholds.drift_shar=0.2"], home.root))
    assert line.startswith("error: --set thresholds.drift_shar: unknown setting")
    assert "did you mean drift_share?" in line and "label_drift" in line


def test_a_wrong_type_is_one_line_with_pydantics_reason(home):
    line = _one_error_line(_cli(["run", "--set", "training.gate_fraction=abc"], home.root))
    assert line.startswith("error: --set training.gate_fraction: Input should be a valid number")
    assert "'abc'" in line
    line = _one_error_line(_cli(["run", "--set", "training.gate_fraction=1.5"], home.root))
    assert "Input should be less than 1" in line


def test_an_environment_variable_is_checked_like_a_flag(home):
    """GREENLIGHT_<SECTION>__<KEY>: a bad value or an unknown key is one line naming the
    variable, before an idle run answers."""
    line = _one_error_line(_cli(["run"], home.root, GREENLIGHT_TRAINING__BACKTEST_FOLDS="six"))
    assert line.startswith("error: GREENLIGHT_TRAINING__BACKTEST_FOLDS='six': Input should be "
                           "a valid integer"), line
    line = _one_error_line(_cli(["run"], home.root, GREENLIGHT_TRAINING__RECIPE_MOD="best"))
    assert line.startswith("error: GREENLIGHT_TRAINING__RECIPE_MOD: unknown setting "
                           "(did you mean recipe_mode?"), line


def test_an_environment_variable_replaces_the_default_and_the_file_and_flags_beat_it(
        home, monkeypatch):
    """The variable is the default wherever the model is built (the suite itself pins its
    recipe so, tests/conftest.py); the file and `--set` still win, as for any default."""
    monkeypatch.setenv("GREENLIGHT_TRAINING__ENSEMBLE_TAU", "0.2")
    monkeypatch.setenv("GREENLIGHT_THRESHOLDS__LABEL_DRIFT", "0.3")
    monkeypatch.setenv("GREENLIGHT_TRAINING__RECIPE_MODE", "ensemble")
    assert Training().ensemble_tau == 0.2 and Training().recipe_mode == "ensemble"
    assert Thresholds().label_drift == 0.3
    settings_file(home.root).write_text("[training]\nensemble_tau = 0.05\n")
    models = resolve("synthetic", ["thresholds.label_drift=null"], home.root).models()
    assert models["training"].ensemble_tau == 0.05 and models["training"].recipe_mode == \
        "ensemble"
    assert models["thresholds"].label_drift is None
    monkeypatch.setenv("GREENLIGHT_THRESHOLDS__LABEL_DRIFT", "-1")
    with pytest.raises(SettingsError, match="GREENLIGHT_THRESHOLDS__LABEL_DRIFT='-1': Input "
                                            "should be greater than 0"):
        resolve("synthetic", [], home.root)


def test_the_demo_takes_the_same_flags(home):
    line = _one_error_line(_cli(["demo", "--set", "trainin.gate_fraction=0.5"], home.root))
    assert "unknown section 'trainin' (did you mean training?" in line


def test_a_typo_in_the_file_is_caught_even_on_an_idle_run(home):
    path = settings_file(home.root)
    path.write_text("[thresholds]\ndrift_share = 0.2\n\n[training]\ngate_fractoin = 0.5\n")
    line = _one_error_line(_cli(["run"], home.root))
    assert line.startswith(f"error: {path} [training] gate_fractoin: unknown setting")
    path.write_text("[datasets.elec2.training]\ngate_fraction = \"half\"\n")  # not this dataset's
    line = _one_error_line(_cli(["run"], home.root))
    assert line.startswith(f"error: {path} [datasets.elec2.training] gate_fraction: "
                           "Input should be a valid number")


def test_good_settings_keep_an_idle_run_light(home):
    settings_file(home.root).write_text("[thresholds]\nmin_rows = 10\n")
    done = _cli(["run", "--set", "training.gate_fraction=0.5"], home.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("synthetic: nothing new in ") and done.stderr == ""
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED []"


def test_file_values_and_flags_reach_the_cycle_as_prefect_records_them(champion_home,
                                                                        prefect_server):
    """A real `greenlight run` on a landed batch of 3000 rows. The file says min_rows 5 and
    the flag 100000: the flag wins, so the batch is "not enough rows"; the file's other
    values, and its table for this dataset, are in the parameters Prefect recorded."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterStartTime,
    )

    settings_file(champion_home).write_text(
        "[thresholds]\nmin_rows = 5\n\n[training]\ngate_fraction = 0.25\n\n"
        "[datasets.synthetic.training]\nreference_rows = 500\n\n"
        "[datasets.elec2.thresholds]\ndrift_share = 0.9\n")
    land(champion_home, 1)
    started = datetime.now(UTC)
    env = {**os.environ, "GREENLIGHT_HOME": str(champion_home),
           "PREFECT_API_URL": prefect_server.api_url}
    done = subprocess.run([sys.executable, "-m", "cli.main", "run", "--no-harvest", "--json",
                           "--set", "thresholds.min_rows=100000"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert any("not enough rows" in r and "100000" in r for r in summary["reasons"]), summary

    time.sleep(0.5)
    # Started since, and not by a deployment: other tests' schedules leave future runs on the
    # session server, and Prefect filters start times on the expected start when none.
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["greenlight-cycle"])),
            flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime(after_=started, is_null_=False),
                deployment_id=FlowRunFilterDeploymentId(is_null_=True)))
    assert len(runs) == 1, [r.name for r in runs]
    recorded = runs[0].parameters
    thresholds = Thresholds.model_validate(recorded["thresholds"])
    training = Training.model_validate(recorded["training"])
    assert thresholds.min_rows == 100000  # the flag beat the file's 5
    assert thresholds.drift_share == 0.3  # elec2's table is not synthetic's
    assert training.gate_fraction == 0.25 and training.reference_rows == 500
    assert Scale.model_validate(recorded["scale"]) == Scale()


# --- the functions, in this process ---------------------------------------------------------


def test_precedence_is_flag_then_option_then_dataset_table_then_table_then_default(tmp_path):
    settings_file(tmp_path).write_text(
        "[training]\nhalf_life_days = 10\ngate_fraction = 0.2\n"
        "[scale]\ndask_min_rows = 7\npartition_rows = 9\n"
        "[datasets.elec2.training]\nhalf_life_days = 30\n")
    chosen = resolve("elec2", ["training.gate_fraction=0.4", "training.gate_fraction=0.5"],
                     tmp_path, {"scale": {"dask_min_rows": 100, "dask_address": None}})
    models = chosen.models()
    assert models["training"].half_life_days == 30  # the dataset's table beats [training]
    assert models["training"].gate_fraction == 0.5  # the last flag wins
    assert models["scale"] == Scale(dask_min_rows=100, partition_rows=9)  # the option wins
    assert models["thresholds"] == Thresholds()
    assert resolve("synthetic", [], tmp_path).models()["training"].half_life_days == 10
    assert resolve("synthetic", [], tmp_path / "no-such-dir").empty


def test_values_are_typed_by_the_models_and_json_where_a_string_will_not_do():
    values = parse_flags(["thresholds.min_rows=12", "training.refit=false",
                          "thresholds.label_drift=null", "thresholds.num_method=psi",
                          'thresholds.per_column_method={"price": "psi"}',
                          "training.refresh_on=never"])
    assert values == {"thresholds": {"min_rows": 12, "label_drift": None, "num_method": "psi",
                                     "per_column_method": {"price": "psi"}},
                      "training": {"refit": False, "refresh_on": "never"}}


@pytest.mark.parametrize(("text", "expected"), [
    ("drift_share = 0.2\n", "drift_share: not in a table; put it under [thresholds]"),
    ("[threshold]\ndrift_share = 0.2\n", "[threshold]: unknown table (did you mean "
                                         "[thresholds]?"),
    ("[datasets.elec9.training]\nrefit = true\n", "[datasets.elec9]: no such dataset"),
    ("[thresholds\n", ": not valid TOML: "),
    ("[thresholds]\nper_column_method = {price = 1}\n",
     "[thresholds] per_column_method: price: Input should be a valid string"),
])
def test_each_problem_in_the_file_is_one_line_naming_the_file(tmp_path, text, expected):
    settings_file(tmp_path).write_text(text)
    with pytest.raises(SettingsError) as caught:
        resolve("synthetic", [], tmp_path)
    message = str(caught.value)
    assert message.startswith(str(settings_file(tmp_path))) and "\n" not in message
    assert expected in message, message


def test_settings_need_no_prefect():
    probe = ("import sys\nfrom cli.settings import resolve\n"
             "resolve('synthetic', ['thresholds.min_rows=3']).models()\n"
             "print(sorted(m for m in ('prefect', 'mlflow', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_every_key_is_listed_with_its_description():
    done = subprocess.run([sys.executable, "-m", "cli.settings"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for model, section in ((Thresholds, "thresholds"), (Training, "training"),
                           (Scale, "scale")):
        for key in model.model_fields:
            assert f"  {section}.{key} = " in done.stdout


def test_the_demo_keeps_the_settings_file_when_it_sets_the_old_state_aside(tmp_path):
    """The demo starts from an empty state dir; the settings file is configuration, so the
    fresh one keeps a copy (and the old one, set aside, keeps its own)."""
    from rich.console import Console

    from cli.demo import _fresh_home

    root = tmp_path / "gl"
    root.mkdir()
    (root / "manifest.jsonl").write_text("")
    settings_file(root).write_text("[thresholds]\ndrift_share = 0.2\n")
    _fresh_home(root, Console(quiet=True))
    assert not (root / "manifest.jsonl").exists()
    assert resolve("synthetic", [], root).models()["thresholds"].drift_share == 0.2
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("gl-")]
    assert settings_file(aside).is_file()

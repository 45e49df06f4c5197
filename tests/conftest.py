"""Test set-up: every test gets its own state dir; one Prefect server serves the whole run.

The expensive states are built once per run by the real loop (session fixtures) and copied
per test (tests/state_helpers.py): a migrated empty MLflow store, a bootstrapped champion
(v1 from synthetic week 0), and two versions (v2, retrained after the concept change at
week 15, is champion and v1 is @previous).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="greenlight-prefect-"))
for key, value in {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GIT_PYTHON_REFRESH": "quiet",
                   "PREFECT_HOME": str(_PREFECT_HOME), "PREFECT_LOGGING_LEVEL": "WARNING",
                   "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                   # CI runs on 2 cores next to real servers: 20 s is too short to be sure of.
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}.items():
    os.environ[key] = value
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("PREFECT_API_URL", None)
# The suite retrains with the best recipe alone (the default until 2026-12-07), as a user's
# own tests would pin a small model: the shipped default, the leaf-refit ensemble on six
# folds, costs about four times as much per retrain, and with it the tiers took 45 minutes
# of CI's 35 (docs/benchmarks.md). Every process of the run inherits these
# (flows.params.Section); the tests of the default itself build `shipped_training()`.
PINNED_RECIPE = {"GREENLIGHT_TRAINING__RECIPE_MODE": "best",
                 "GREENLIGHT_TRAINING__LEAF_REFIT": "false",
                 "GREENLIGHT_TRAINING__BACKTEST_FOLDS": "3"}
os.environ.update(PINNED_RECIPE)

pytest_plugins = ["tests.servers"]  # real Prefect / MLflow servers on loopback

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shipped_training(**values):
    """flows.params.Training as a user gets it: the shipped defaults, not the suite's pinned
    recipe (PINNED_RECIPE), with `values` over them."""
    from flows.params import Training

    saved = {k: os.environ.pop(k) for k in PINNED_RECIPE if k in os.environ}
    try:
        return Training(**values)
    finally:
        os.environ.update(saved)


def shared_file(*parts: str) -> Path:
    """A file from ../shared/data, or a skip that says why (the data is never copied in)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the real datasets live in ../shared/data")
    return path


@pytest.fixture(scope="session", autouse=True)
def one_prefect_server(prefect_server):
    """Every flow run of the test run, in this process or in a child that inherits the
    environment, goes to one real Prefect server started once (tests/servers.py), instead
    of each process starting Prefect's temporary server. Tests that mean to run embedded
    (a cron-style `greenlight run`, a kill -9) drop `PREFECT_API_URL` from their child's
    environment, as they always did."""
    return prefect_server


@pytest.fixture(scope="session")
def migrated_mlflow(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, migrated once; copy it with `fresh_mlflow`."""
    from tests.state_helpers import migrated_store

    return migrated_store(tmp_path_factory.mktemp("mlflow-migrated"))


@pytest.fixture
def fresh_mlflow(migrated_mlflow):
    """`fresh_mlflow(directory)`: a new, migrated SQLite store there; returns its URI."""
    from tests.state_helpers import fresh_store

    return lambda directory: fresh_store(migrated_mlflow, Path(directory))


@pytest.fixture
def home(tmp_path, monkeypatch, migrated_mlflow):
    from tasks.data.home import Home
    from tests.state_helpers import fresh_store

    monkeypatch.setenv("GREENLIGHT_HOME", str(tmp_path / "gl"))
    state = Home.from_env().ensure()
    fresh_store(migrated_mlflow, state.root)
    return state


@pytest.fixture(scope="session")
def champion_state(tmp_path_factory, migrated_mlflow) -> Path:
    """A state dir with a bootstrapped champion: the real cycle on synthetic week 0 (v1,
    with its reference), on the session's Prefect server. Never modified: copy it."""
    from registry import versions
    from tests.approval_helpers import registry
    from tests.serving_helpers import bootstrap_champion
    from tests.state_helpers import fresh_store

    root = tmp_path_factory.mktemp("champion") / "gl"
    fresh_store(migrated_mlflow, root)
    assert bootstrap_champion(root)["decision"] == "bootstrap"
    assert versions.aliases(registry(root)) == {"champion": 1}
    return root


@pytest.fixture(scope="session")
def two_versions_state(tmp_path_factory, champion_state) -> Path:
    """`tests.serving_helpers.two_versions`, its second cycle on a copy of the champion:
    week 15 (the concept change) retrained with min_delta -1, so v2 is champion and v1
    @previous."""
    from registry import versions
    from tests.approval_helpers import registry
    from tests.serving_helpers import retrain_after_concept_change
    from tests.state_helpers import copy_state

    root = copy_state(champion_state, tmp_path_factory.mktemp("two-versions") / "gl")
    retrain_after_concept_change(root)
    assert versions.aliases(registry(root)) == {"champion": 2, "previous": 1}
    return root


@pytest.fixture
def champion_home(champion_state, tmp_path) -> Path:
    """This test's own copy of the bootstrapped champion's state dir."""
    from tests.state_helpers import copy_state

    return copy_state(champion_state, tmp_path / "gl")


@pytest.fixture
def two_versions_home(two_versions_state, tmp_path) -> Path:
    """This test's own copy of the two-versions state dir."""
    from tests.state_helpers import copy_state

    return copy_state(two_versions_state, tmp_path / "gl")


@pytest.fixture(scope="module")
def store(tmp_path_factory, migrated_mlflow) -> Path:
    """One SQLite MLflow store per test module, a copy of the run's migrated one: creating
    one costs seconds of migrations."""
    from tests.state_helpers import fresh_store

    root = tmp_path_factory.mktemp("mlflow")
    fresh_store(migrated_mlflow, root)
    return root


@pytest.fixture
def reg(store, request):
    """A registered model of the test's own name in the module's store."""
    from registry.store import Registry

    return Registry(f"sqlite:///{store}/mlflow.db", f"m-{request.node.name[:40]}", store)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """moto's S3 server on loopback for the session: s3fs and boto3 talk to it exactly as
    to AWS, with only the endpoint URL set (moto takes any key; these are dummies)."""
    from moto.server import ThreadedMotoServer

    from cli import stack

    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    port = stack.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

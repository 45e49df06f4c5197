"""Authentication in `greenlight up`: each server refuses an unauthenticated call and accepts
an authenticated one, and greenlight's own clients get the credentials.

The servers are started through cli.stack with the environment `greenlight up` reads
(`PREFECT_SERVER_API_AUTH_STRING`, `MLFLOW_AUTH_ADMIN_PASSWORD`); the secrets are made up
per test, never stored.
"""

from __future__ import annotations

import os
import secrets

import httpx
import pytest
from mlflow.exceptions import MlflowException

from cli import stack
from cli.up import client_auth
from registry.store import Registry
from tests.servers import STARTUP_TIMEOUT, fresh_database


def test_up_gives_its_clients_the_servers_credentials():
    environ = {"PREFECT_SERVER_API_AUTH_STRING": "ops:p1", "MLFLOW_AUTH_ADMIN_PASSWORD": "p2",
               "MLFLOW_TRACKING_USERNAME": "alice"}
    on = client_auth(environ)
    assert environ["PREFECT_API_AUTH_STRING"] == "ops:p1"
    assert (environ["MLFLOW_TRACKING_USERNAME"], environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "alice", "p2")  # what the user set wins
    assert len(on) == 2
    assert client_auth({}) == []


@pytest.mark.e2e
def test_prefect_server_refuses_calls_without_the_auth_string(tmp_path):
    secret = f"greenlight:{secrets.token_urlsafe(16)}"
    port = stack.free_port()
    with fresh_database("auth") as database_url:
        proc = stack.start_prefect_server(tmp_path, port, database_url=database_url,
                                          env={"PREFECT_SERVER_API_AUTH_STRING": secret})
        try:
            api = f"http://127.0.0.1:{port}/api"
            stack.wait_healthy(f"{api}/health", STARTUP_TIMEOUT, proc)  # probes stay open
            anonymous = httpx.post(f"{api}/flow_runs/filter", json={})
            wrong = httpx.post(f"{api}/flow_runs/filter", json={}, auth=("greenlight", "no"))
            user, password = secret.split(":", 1)
            right = httpx.post(f"{api}/flow_runs/filter", json={}, auth=(user, password))
        finally:
            stack.stop([proc])
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert right.status_code == 200 and right.json() == []


@pytest.mark.e2e
def test_mlflow_server_with_basic_auth_refuses_anonymous_calls(tmp_path, monkeypatch):
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", password)
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    port = stack.free_port()
    url = f"http://127.0.0.1:{port}"
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    with fresh_database("auth") as database_url:
        proc = stack.start_mlflow_server(tmp_path, port, database_url=database_url, auth=True)
        try:
            stack.wait_healthy(f"{url}/health", STARTUP_TIMEOUT, proc)
            anonymous = httpx.get(search)
            right = httpx.get(search, auth=("admin", password))
            with pytest.raises(MlflowException, match="401|Unauthorized|credentials"):
                Registry(url, "m-auth", tmp_path).experiment_id("refused")
            given = dict(os.environ)
            client_auth(given)  # as `greenlight up` does for the flows it serves
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                monkeypatch.setenv(key, given[key])
            created = Registry(url, "m-auth", tmp_path).experiment_id("accepted")
        finally:
            stack.stop([proc])
    assert anonymous.status_code == 401
    assert right.status_code == 200
    assert created
    assert password not in (tmp_path / "mlflow-auth.ini").read_text()


def test_the_production_env_example_names_real_settings_and_holds_no_secret():
    from pathlib import Path

    import typer

    from cli import main as cli

    text = (Path(__file__).resolve().parents[1] / "deployments" / "production.env.example"
            ).read_text()
    settings = dict(line.lstrip("# ").split("=", 1) for line in text.splitlines()
                    if "=" in line and line.lstrip("# ").split("=", 1)[0].isupper())
    secret = [k for k in settings if any(w in k for w in ("PASSWORD", "AUTH_STRING", "SECRET"))]
    assert secret and all(settings[k] == "" for k in secret), settings  # filled in elsewhere
    assert all(":" not in settings[k].split("@")[0].split("//")[-1]
               for k in settings if k.endswith("DATABASE_URL"))  # no password in a URL
    up = {p.envvar for p in typer.main.get_command(cli.app).commands["up"].params
          if p.envvar}
    assert {"GREENLIGHT_PREFECT_DATABASE_URL", "GREENLIGHT_MLFLOW_DATABASE_URL"} <= up
    assert up <= set(settings) | {"GREENLIGHT_HOME"}


@pytest.mark.e2e
def test_only_greenlight_s_account_may_move_champion(tmp_path, monkeypatch):
    """MLflow 3.17's permissions have no grant per alias: setting any alias of a registered
    model needs EDIT on that model (`validate_can_set_model_or_prompt_version_alias`). So
    greenlight's account, which creates the model (its creator gets MANAGE), is the only one
    with EDIT; a second user granted READ reads @champion and is refused moving it (403),
    as is one with an explicit DENY on the model. docs/reliability.md, "Who may move
    @champion"."""
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    password, bob_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", password)
    port = stack.free_port()
    url, model = f"http://127.0.0.1:{port}", "greenlight-synthetic"

    def as_user(name: str, secret: str) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", name)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secret)
        return MlflowClient(url, registry_uri=url)

    with fresh_database("auth") as database_url:
        proc = stack.start_mlflow_server(tmp_path, port, database_url=database_url, auth=True)
        try:
            stack.wait_healthy(f"{url}/health", STARTUP_TIMEOUT, proc)
            greenlight = as_user("admin", password)  # the account `greenlight up` gives
            greenlight.create_registered_model(model)
            run = greenlight.create_run(greenlight.create_experiment("auth")).info.run_id
            for _ in range(2):
                greenlight.create_model_version(model, source=f"runs:/{run}/model",
                                                run_id=run)
            greenlight.set_registered_model_alias(model, "champion", "1")
            AuthServiceClient(url).create_user("bob", bob_password)
            AuthServiceClient(url).grant_user_permission("bob", "registered_model", model,
                                                         "READ")
            bob = as_user("bob", bob_password)
            seen = bob.get_registered_model(model).aliases
            with pytest.raises(MlflowException, match="PERMISSION_DENIED|403|Permission"):
                bob.set_registered_model_alias(model, "champion", "2")
            with pytest.raises(MlflowException, match="PERMISSION_DENIED|403|Permission"):
                bob.delete_registered_model_alias(model, "champion")
            as_user("admin", password)
            admin = AuthServiceClient(url)
            admin.revoke_user_permission("bob", "registered_model", model)
            admin.grant_user_permission("bob", "registered_model", model, "DENY")
            bob = as_user("bob", bob_password)
            with pytest.raises(MlflowException, match="PERMISSION_DENIED|403|Permission"):
                bob.set_registered_model_alias(model, "champion", "2")
            greenlight = as_user("admin", password)
            greenlight.set_registered_model_alias(model, "champion", "2")
            after = greenlight.get_registered_model(model).aliases
        finally:
            stack.stop([proc])
    assert seen == {"champion": "1"}
    assert after == {"champion": "2"}  # greenlight's account moves it; nobody else did

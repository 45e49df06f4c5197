"""`greenlight up`: the real stack on loopback, with the scheduled cycles served in-process.

One state dir feeds everything: the Prefect server reads the same SQLite DB as embedded
runs and MLflow the same store, so a restart (or an earlier demo) shows the same history.
Prefect and the flow are imported only once the environment points at the servers, because
both read their settings at import.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from flows import stack
from flows.deployments import DEPLOYMENTS, TIMEZONE, DeploymentDef

if TYPE_CHECKING:
    from prefect.runner import Runner

HEALTH_TIMEOUT = 180.0  # cold starts on a busy 2-core machine took 30-40 s; leave headroom


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP take the Ctrl-C path, so the `finally` that stops the servers runs."""
    raise KeyboardInterrupt


async def _serve_until_stopped(runner: Runner) -> None:
    """Ctrl-C, SIGTERM and SIGHUP stop the runner the way `Runner.stop` means to.

    In-flight flow runs are killed and marked Cancelled ("Runner is shutting down."), not
    left Running forever in the UI. Prefect's own SIGTERM handler calls the sync `stop()`
    inside the running loop, which never awaits `Runner.astop` and exits mid-loop, and a
    bare Ctrl-C skips the cancellation. A second signal cancels outright."""
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    stopping: list[asyncio.Task[None]] = []

    def stop() -> None:
        if stopping or not runner.started:
            main.cancel()
        else:
            stopping.append(loop.create_task(runner.astop()))

    runner.handle_sigterm = lambda *_: loop.call_soon_threadsafe(stop)  # set by runner.start
    for sig in (signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop)
    await runner.start()


def serve_deployments(defs: Iterable[DeploymentDef], *, dataset: str, home: Path,
                      limit: int = 1) -> None:
    """Serve cycle deployments against `PREFECT_API_URL` until Ctrl-C, SIGTERM or SIGHUP.

    As `prefect.serve(..., pause_on_shutdown=False)`, with a clean SIGTERM. Schedules stay
    active on shutdown, so a restart carries on where it stopped. `limit=1`: cycles over
    one state dir must not ingest the same landing files at once."""
    from prefect.deployments.runner import EntrypointType
    from prefect.events import DeploymentTriggerTypes
    from prefect.runner import Runner
    from prefect.schedules import Cron
    from pydantic import TypeAdapter

    from flows.cycle import cycle

    runner = Runner(pause_on_shutdown=False, limit=limit)
    trigger = TypeAdapter(DeploymentTriggerTypes)  # as `prefect deploy` reads prefect.yaml
    for d in defs:
        runner.add_deployment(cycle.to_deployment(
            d.name,
            schedules=[Cron(d.cron, timezone=TIMEZONE, active=d.active)] if d.cron else None,
            triggers=[trigger.validate_python({**t, "name": f"{d.name}__automation_{i}"})
                      for i, t in enumerate(d.triggers(dataset), start=1)] or None,
            description=d.description, parameters=d.parameters(dataset, home),
            entrypoint_type=EntrypointType.MODULE_PATH))
    try:
        asyncio.run(_serve_until_stopped(runner))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass


def _banner(home: Path, prefect_url: str, mlflow_url: str, dataset: str,
            evidently_url: str | None = None) -> list[str]:
    """Where to look and what to type next; commands stay on one line so they can be copied."""
    lines = [f"[bold green]greenlight is up[/] (state in {home}, logs in {home / 'logs'})",
             f"  Prefect UI  {prefect_url}  (flow runs, schedules, approvals)",
             f"  MLflow UI   {mlflow_url}  (models, aliases, runs, drift reports)"]
    if evidently_url:
        lines.append(f"  Evidently   {evidently_url}  (project greenlight-{dataset}: drift "
                     "share, decay, missing share over batches)")
    lines += [f"  serving     {d.full_name}  ("
              + (f"{d.cron} {TIMEZONE}" if d.cron else f"on {d.on_events_from} alarms")
              + f", policy {d.policy})" for d in DEPLOYMENTS]
    return lines + [
        "Next, from the repo:",
        "  # land a batch",
        f"  uv run greenlight replay --dataset {dataset} --count 1 --home {home}",
        "  # run a cycle now instead of waiting for the schedule",
        f"  PREFECT_API_URL={prefect_url}/api uv run prefect deployment run "
        f"'{DEPLOYMENTS[0].full_name}'",
        "Ctrl-C stops everything."]


def client_auth(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Give this process's clients the credentials the servers will demand; say which.

    The servers read `PREFECT_SERVER_API_AUTH_STRING` and `MLFLOW_AUTH_ADMIN_*` themselves;
    the flows served here are clients, which read `PREFECT_API_AUTH_STRING` and
    `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`. Values the user set win."""
    on = []
    if environ.get("PREFECT_SERVER_API_AUTH_STRING"):
        environ.setdefault("PREFECT_API_AUTH_STRING", environ["PREFECT_SERVER_API_AUTH_STRING"])
        on.append("Prefect (PREFECT_API_AUTH_STRING)")
    if environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        environ.setdefault("MLFLOW_TRACKING_USERNAME",
                           environ.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin")
        environ.setdefault("MLFLOW_TRACKING_PASSWORD", environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
        on.append("MLflow (MLFLOW_TRACKING_USERNAME/PASSWORD)")
    return on


def _where(url: str | None, sqlite_file: str) -> str:
    """A database URL without its password, for the banner."""
    if not url:
        return f"SQLite ({sqlite_file})"
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def up(home: Path, *, prefect_port: int = 4200, mlflow_port: int = 5000,
       dataset: str = "synthetic", console: Console | None = None,
       evidently_port: int | None = 8000, prefect_db: str | None = None,
       mlflow_db: str | None = None) -> None:
    """Start the servers, wait until they answer, then serve the deployments until stopped.

    Prefect, MLflow and (unless `evidently_port` is None) the Evidently UI, on SQLite in
    `home` or on the given database URLs (PostgreSQL). Authentication is on when its
    environment is set (see `client_auth`). Returns normally on Ctrl-C or SIGTERM, with
    every server stopped: no orphans."""
    console = console or Console()
    home = Path(home).expanduser().resolve()
    prefect_url, mlflow_url = f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}"
    saved = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    saved[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    procs: list[stack.Server] = []
    try:
        procs.append(stack.start_prefect_server(home, prefect_port, database_url=prefect_db))
        procs.append(stack.start_mlflow_server(
            home, mlflow_port, database_url=mlflow_db,
            auth=bool(os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"))))
        evidently_url = None
        if evidently_port is not None:
            evidently_url = f"http://127.0.0.1:{evidently_port}"
            procs.append(stack.start_evidently_ui(home, evidently_port))
        console.print("starting Prefect, MLflow and Evidently servers...")
        stack.wait_healthy(f"{prefect_url}/api/health", HEALTH_TIMEOUT, procs[0])
        stack.wait_healthy(f"{mlflow_url}/health", HEALTH_TIMEOUT, procs[1])
        if evidently_url:
            stack.wait_healthy(evidently_url + stack.EVIDENTLY_HEALTH, HEALTH_TIMEOUT, procs[2])
        os.environ.update({"PREFECT_API_URL": f"{prefect_url}/api",
                           "MLFLOW_TRACKING_URI": mlflow_url, "GREENLIGHT_HOME": str(home)})
        if evidently_url:  # the flows it serves link their artifacts to the dashboard
            os.environ["GREENLIGHT_EVIDENTLY_URL"] = evidently_url
        auth = client_auth(os.environ)
        for line in _banner(home, prefect_url, mlflow_url, dataset, evidently_url):
            console.print(line, soft_wrap=True, highlight=False)
        console.print(f"  stores      Prefect {_where(prefect_db, 'prefect/prefect.db')}, "
                      f"MLflow {_where(mlflow_db, 'mlflow.db')}; authentication: "
                      f"{', '.join(auth) or 'off'}", soft_wrap=True, highlight=False)
        serve_deployments(DEPLOYMENTS, dataset=dataset, home=home)
    except KeyboardInterrupt:
        pass
    finally:
        for sig in saved:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not orphan a server
        console.print("stopping servers...")
        stack.stop(procs)
        console.print("stopped.")
        for sig, handler in saved.items():
            signal.signal(sig, handler)

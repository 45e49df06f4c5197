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
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from cli import stack
from cli.deployments import DEFAULT_POLICY, DEPLOYMENTS, TIMEZONE, DeploymentDef, for_policy
from tasks.data.home import SERVERS_FILE, Home
from tasks.data.spec import load_spec

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment
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


def runner_deployments(defs: Iterable[DeploymentDef], *, dataset: str,
                       home: Path | None) -> list[RunnerDeployment]:
    """The cycle's deployments as Prefect builds them from `defs`: schedules paused and
    triggers disabled where `active` is False, triggers as `prefect deploy` reads them."""
    from prefect.deployments.runner import EntrypointType
    from prefect.events import DeploymentTriggerTypes
    from prefect.schedules import Cron
    from pydantic import TypeAdapter

    from flows.cycle import cycle

    trigger = TypeAdapter(DeploymentTriggerTypes)  # as `prefect deploy` reads prefect.yaml
    return [cycle.to_deployment(
        d.name,
        schedules=[Cron(d.cron, timezone=TIMEZONE, active=d.active)] if d.cron else None,
        triggers=[trigger.validate_python({**t, "name": f"{d.name}__automation_{i}"})
                  for i, t in enumerate(d.triggers(dataset), start=1)] or None,
        description=d.description, parameters=d.parameters(dataset, home),
        entrypoint_type=EntrypointType.MODULE_PATH) for d in defs]


FLOW_NAME = "greenlight-cycle"  # flows/cycle.py's @flow name: the deployments' flow


def drop_paused_runs(defs: Iterable[DeploymentDef], settle_seconds: float = 1.0) -> int:
    """Delete the runs Prefect's scheduler made for a deployment whose schedule is now paused.

    Pausing a schedule deletes its auto-scheduled runs, but the scheduler service (every
    few seconds for recently changed deployments) can read the schedule as active just
    before the change and insert runs just after it: a paused policy would then still run
    once, racing the active one for the same batches. So sweep, let such a pass finish,
    and sweep again. Returns how many runs were deleted."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    paused = [d.name for d in defs if d.cron and not d.active]
    if not paused:
        return 0
    dropped = 0
    with get_client(sync_client=True) as client:
        for sweep in range(2):
            if sweep:
                time.sleep(settle_seconds)
            waiting = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=paused)),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
            for run in waiting:
                if run.auto_scheduled:
                    client.delete_flow_run(run.id)
                    dropped += 1
    return dropped


def prepared_runner(defs: Iterable[DeploymentDef], *, dataset: str, home: Path | str,
                    limit: int = 1) -> Runner:
    """A Prefect runner with the cycle's deployments applied and stale paused runs dropped.

    The slow part of serving (it imports the cycle and talks to the server): `up` does it
    before it says "Ctrl-C stops everything.", so a Ctrl-C after that line meets the
    runner's own handler, not an import half done (a Ctrl-C there ended `up` with exit 1).
    `limit=1`: cycles over one state dir must not ingest the same landing files at once."""
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=False, limit=limit)
    defs = list(defs)
    for deployment in runner_deployments(defs, dataset=dataset, home=home):
        runner.add_deployment(deployment)
    drop_paused_runs(defs)
    return runner


def serve_deployments(defs: Iterable[DeploymentDef], *, dataset: str, home: Path | str,
                      limit: int = 1, runner: Runner | None = None) -> None:
    """Serve cycle deployments against `PREFECT_API_URL` until Ctrl-C, SIGTERM or SIGHUP.

    As `prefect.serve(..., pause_on_shutdown=False)`, with a clean SIGTERM. Schedules keep
    their state on shutdown, so a restart carries on where it stopped. `runner`: one
    `prepared_runner` made already."""
    runner = runner or prepared_runner(defs, dataset=dataset, home=home, limit=limit)
    try:
        asyncio.run(_serve_until_stopped(runner))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass


def _schedule(d: DeploymentDef) -> str:
    """When a deployment runs, and whether that is switched on, in words."""
    when = f"{d.cron} {TIMEZONE}" if d.cron else f"on {d.on_events_from} alarms"
    if d.active:
        return f"{when}, policy {d.policy}"
    what = "schedule" if d.cron else "trigger"
    owner = d.on_events_from or d.policy
    return f"{when}, policy {d.policy}; {what} PAUSED: `greenlight up --policy {owner}` " \
           "switches it on"


def _banner(home: Path, prefect_url: str, mlflow_url: str, dataset: str,
            evidently_url: str | None = None, policy: str = DEFAULT_POLICY,
            defs: Iterable[DeploymentDef] = DEPLOYMENTS, state: str | None = None) -> list[str]:
    """Where to look and what to type next; commands stay on one line so they can be copied.
    `state` is the state dir as the runs name it (an object-store URL), when `home` is this
    machine's folder for it."""
    defs = list(defs)
    state = state or str(home)
    lines = [f"[bold green]greenlight is up[/] (state in {state}, logs in {home / 'logs'})",
             f"  Prefect UI  {prefect_url}  (flow runs, schedules, approvals)",
             f"  MLflow UI   {mlflow_url}  (models, aliases, runs, drift reports)"]
    if evidently_url:
        lines.append(f"  Evidently   {evidently_url}  (project greenlight-{dataset}: drift "
                     "share, decay, missing share over batches)")
    lines.append(f"  policy      {policy}: only its deployments are on, so two policies never "
                 "race for the same batches")
    lines += [f"  {'serving' if d.active else 'paused'}{' ' * (5 if d.active else 6)}"
              f"{d.full_name}  ({_schedule(d)})" for d in defs]
    first = next((d for d in defs if d.active and d.cron), defs[0])
    return lines + [
        "  found by    greenlight serve, status, run, rollback, approve, canary, harvest on "
        f"this state dir, with nothing to export ({home / SERVERS_FILE})",
        "Next, from the repo:",
        "  # land a batch",
        f"  uv run greenlight replay --dataset {dataset} --count 1 --home {state}",
        "  # run a cycle now instead of waiting for the schedule",
        f"  PREFECT_API_URL={prefect_url}/api uv run prefect deployment run "
        f"'{first.full_name}'",
        "  # serve @champion; it follows every promotion",
        f"  uv run greenlight serve --dataset {dataset} --home {state}",
        "Ctrl-C stops everything."]


class _Say:
    """Console output that never stops `up`: under `greenlight up | tee up.log`, Ctrl-C
    kills tee too, and a write to the dead pipe raised in the stop path, which orphaned
    every server. After the first failed write, stdout goes to /dev/null and lines are
    dropped; stopping the servers depends on nothing being printed."""

    def __init__(self, console: Console) -> None:
        self.console, self.gone = console, False

    def __call__(self, line: str) -> None:
        if self.gone:
            return
        try:
            self.console.print(line, soft_wrap=True, highlight=False)
        # EPIPE or a closed file; rich answers EPIPE with SystemExit(1) (`on_broken_pipe`)
        except (OSError, ValueError, SystemExit):
            self.gone = True
            _stdout_to_devnull()


def _stdout_to_devnull() -> None:
    """Point fd 1 at /dev/null, so no later write (Prefect's, or the interpreter's flush at
    exit) meets the broken pipe again; as the Python docs advise for EPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _come_up(say: _Say, name: str, url: str, proc: stack.Server, started: float) -> None:
    """Wait for one server, then say so: start-up takes a minute on a busy machine, and a
    silent minute looks like a hang."""
    stack.wait_healthy(url, HEALTH_TIMEOUT, proc)
    say(f"  {name} is up ({time.monotonic() - started:.0f} s)")


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


def _notifications(say: _Say) -> None:
    """Set up the automations that tell people (cli/notify.py) when a destination is set;
    a notification is news, so a failure here is said and never stops the stack."""
    from cli import notify

    where = notify.configured()
    if where is None:
        say(f"  notify      off (set {notify.NOTIFY_URL_ENV} to a webhook URL to be told)")
        return
    try:
        say(f"  notify      {len(notify.set_up())} automations send to {where}")
    except Exception as exc:  # noqa: BLE001 (see the docstring)
        say(f"  notify      not set up ({type(exc).__name__}: {exc})")


def served_state(home: Path) -> Home:
    """The state dir the servers and the scheduled runs work on: an object-store
    GREENLIGHT_HOME when it is one (`home` is then this machine's folder for it, holding the
    servers' logs and databases, and MLflow keeps its artifacts in the store beside the
    lake), else `home`. The deployments must name the store: a run given the local folder
    would start a new state there instead."""
    shared = Home.from_env(os.environ.get("GREENLIGHT_HOME") or home)
    return shared if shared.remote else Home(Path(home))


def up(home: Path, *, prefect_port: int = 4200, mlflow_port: int = 5000,
       dataset: str = "synthetic", console: Console | None = None,
       evidently_port: int | None = 8000, prefect_db: str | None = None,
       mlflow_db: str | None = None, policy: str = DEFAULT_POLICY) -> None:
    """Start the servers, wait until they answer, then serve the deployments until stopped.

    Prefect, MLflow and (unless `evidently_port` is None) the Evidently UI, on SQLite in
    `home` or on the given database URLs (PostgreSQL). Only `policy`'s deployments are
    switched on (`for_policy`). Authentication is on when its environment is set (see
    `client_auth`). While up, `<home>/servers.json` names the servers, so other commands
    on this state dir find them. Returns normally on Ctrl-C or SIGTERM, with every server
    stopped, even when stdout has gone: no orphans."""
    say = _Say(console or Console())
    home = Path(home).expanduser().resolve()
    defs = for_policy(policy)  # a bad policy or dataset is refused before anything starts
    spec = load_spec(dataset)
    state, shared = Home(home), served_state(home)
    prefect_url, mlflow_url = f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}"
    saved = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    saved[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    saved[signal.SIGPIPE] = signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # EPIPE, not death
    procs: list[stack.Server] = []
    try:
        started = time.monotonic()
        procs.append(stack.start_prefect_server(home, prefect_port, database_url=prefect_db))
        say(f"starting Prefect server on {prefect_url} (log {procs[-1].log})")
        procs.append(stack.start_mlflow_server(
            home, mlflow_port, database_url=mlflow_db,
            auth=bool(os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")),
            artifacts=str(shared.artifacts) if shared.remote else None))
        say(f"starting MLflow server on {mlflow_url} (log {procs[-1].log})")
        evidently_url = dashboard = None
        if evidently_port is not None:
            from tasks.publish.dashboards import dashboard_url

            evidently_url = f"http://127.0.0.1:{evidently_port}"
            # the project first (while the others start), so the UI lists it when it opens
            try:
                dashboard = dashboard_url(evidently_url, state.evidently, spec)
            except Exception as exc:  # a view: it must never keep the stack from starting
                dashboard = evidently_url
                say(f"Evidently project not created ({type(exc).__name__}: {exc}); the link "
                    "opens the UI's home page")
            procs.append(stack.start_evidently_ui(home, evidently_port))
            say(f"starting Evidently UI on {evidently_url} (log {procs[-1].log})")
        say("waiting for them to answer (a minute or two on a busy machine)...")
        _come_up(say, "Prefect server", f"{prefect_url}/api/health", procs[0], started)
        _come_up(say, "MLflow server", f"{mlflow_url}/health", procs[1], started)
        if evidently_url:
            _come_up(say, "Evidently UI", evidently_url + stack.EVIDENTLY_HEALTH, procs[2],
                     started)
        settings = {"PREFECT_API_URL": f"{prefect_url}/api", "MLFLOW_TRACKING_URI": mlflow_url}
        health = {"PREFECT_API_URL": f"{prefect_url}/api/health",
                  "MLFLOW_TRACKING_URI": f"{mlflow_url}/health"}
        if dashboard:  # the flows link their artifacts to the project's dashboard
            settings["GREENLIGHT_EVIDENTLY_URL"] = dashboard
            health["GREENLIGHT_EVIDENTLY_URL"] = f"{evidently_url}{stack.EVIDENTLY_HEALTH}"
        os.environ.update({**settings, "GREENLIGHT_HOME": str(shared.root)})
        auth = client_auth(os.environ)
        state.record_servers(settings, health)
        runner = prepared_runner(defs, dataset=dataset, home=str(shared.root))
        for line in _banner(home, prefect_url, mlflow_url, dataset, dashboard, policy, defs,
                            state=str(shared.root)):
            say(line)
        say(f"  stores      Prefect {_where(prefect_db, 'prefect/prefect.db')}, "
            f"MLflow {_where(mlflow_db, 'mlflow.db')}; authentication: "
            f"{', '.join(auth) or 'off'}")
        _notifications(say)
        serve_deployments(defs, dataset=dataset, home=str(shared.root), runner=runner)
    except KeyboardInterrupt:
        pass
    finally:
        for sig in saved:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not orphan a server
        try:
            say("stopping servers...")
        finally:
            stack.stop(procs)
            state.forget_servers()
        say("stopped.")
        for sig, handler in saved.items():
            signal.signal(sig, handler)

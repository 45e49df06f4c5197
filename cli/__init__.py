"""The command line and the local stack: Typer commands (`main`), `greenlight up` with its
servers and deployments (`up`, `stack`, `deployments`), the demo, the settings file, the
views that print for people, and the embedded Prefect server.

Imports flows, tasks, registry and serving; nothing imports it. Each command imports only
what it uses, inside its own body, so `status` never pays for the cycle's stack.
"""

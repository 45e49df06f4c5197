"""A person approves in the real Prefect UI: Chromium opens the paused run, clicks Resume,
fills the form and submits; the challenger becomes @champion with the approver recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from registry import promote, versions
from tests.approval_helpers import land, registry, run_state, start_cycle, wait_paused

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def open_resume_form(pw, ui_url: str, run_id: str, heading: str, height: int):
    """The paused run's page in Chromium with its Resume form open, once `heading` shows:
    (page, dialog), as a person reaches the approval form."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(f"{ui_url}/runs/flow-run/{run_id}", wait_until="networkidle")
    page.get_by_role("button", name="Resume").first.click()
    dialog = page.locator(".p-modal__card")
    dialog.get_by_text(heading).wait_for()
    return page, dialog


def _choose(page, dialog, option: str) -> None:
    """Pick `option` in the form's Decision select with the keyboard, as a person can: its
    options open on ArrowDown (approve first, then reject) and Enter picks one."""
    select = dialog.locator(".p-select-button__control").first
    value = dialog.locator(".p-select-button__value").first
    for _ in range(4):
        select.scroll_into_view_if_needed()
        select.focus()
        page.keyboard.press("ArrowDown")
        page.wait_for_timeout(300)  # pacing for the UI, not an assertion
        page.keyboard.press("ArrowUp" if value.inner_text() == "reject" else "Enter")
        page.wait_for_timeout(300)
        if value.inner_text() == option:
            return
    page.screenshot(path=str(ARTIFACTS / "approval-form-select.png"), full_page=True)
    assert value.inner_text() == option


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed "
                                                               "(.ci/run installs it)")
def test_approve_by_clicking_resume_in_the_prefect_ui(prefect_server, tmp_path):
    from playwright.sync_api import sync_playwright

    api, home = prefect_server.api_url, tmp_path / "gl"
    land(home, 0)
    assert start_cycle(api, home, "auto", force=False).wait(timeout=300) == 0
    land(home, 1)
    proc = start_cycle(api, home, "manual")
    run_id = wait_paused(api, proc)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        page, dialog = open_resume_form(pw, prefect_server.ui_url, run_id,
                                        "Champion vs challenger on the gate window", 1100)
        assert dialog.locator("[role=switch]").count() == 0  # no toggle to leave off
        fields = dialog.locator("textarea")
        fields.nth(0).fill("clicked in the UI")
        fields.nth(1).fill("carol")
        # Submit with no decision chosen: refused, never a rejection; the run keeps waiting.
        dialog.get_by_role("button", name="Submit").click()
        page.wait_for_load_state("networkidle")
        assert run_state(api, run_id) == "PAUSED"
        assert "greenlight.approval" not in versions.all_versions(registry(home))[-1].tags
        page.screenshot(path=str(ARTIFACTS / "approval-form-no-decision.png"), full_page=True)
        _choose(page, dialog, "approve")
        page.screenshot(path=str(ARTIFACTS / "approval-form.png"), full_page=True)
        dialog.get_by_role("button", name="Submit").click()
        assert proc.wait(timeout=120) == 0, proc.stdout.read()
        page.context.browser.close()
    reg = registry(home)
    champion = versions.by_alias(reg, "champion")
    assert champion.version == 2 and versions.aliases(reg)["previous"] == 1
    assert champion.tags["greenlight.approval_by"] == "carol"
    assert champion.tags["greenlight.approval_reason"] == "clicked in the UI"
    assert promote.records(reg)[-1]["by"] == "carol"

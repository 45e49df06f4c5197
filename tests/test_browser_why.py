"""The approval form in the real Prefect UI says what the challenger does differently: a
W07 retrain (market west arrives) paused for approval, opened in Chromium; the dialog shows
the "Why" section with market=west; its screenshot (test-artifacts/) is the manual's figure."""

from __future__ import annotations

import shutil

import pytest

from tests.approval_helpers import land, start_cycle, wait_paused
from tests.test_browser_approval import ARTIFACTS, open_resume_form

pytestmark = pytest.mark.e2e
FIGURE = ARTIFACTS / "approval-why.png"  # docs/img/approval-why.png is a copy of it


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed "
                                                               "(.ci/run installs it)")
def test_the_approval_form_shows_why_in_the_prefect_ui(prefect_server, champion_home):
    from playwright.sync_api import sync_playwright

    api, home = prefect_server.api_url, champion_home  # v1 bootstrapped on 2026-W02
    land(home, 5)  # 2026-W07: a new market
    proc = start_cycle(api, home, "manual")
    run_id = wait_paused(api, proc, timeout=300)
    with sync_playwright() as pw:
        page, dialog = open_resume_form(pw, prefect_server.ui_url, run_id,
                                        "Why: what the challenger does differently", 1400)
        text = dialog.inner_text()
        assert "market=west gains most" in text and "features used most differently" in text
        dialog.get_by_text("Why: what the challenger does differently").scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(FIGURE))
        fields = dialog.locator("textarea")
        fields.nth(0).fill("screenshot taken")
        fields.nth(1).fill("dana")
        page.context.browser.close()
    import httpx

    reply = httpx.post(f"{api}/flow_runs/{run_id}/resume", json={"run_input": {
        "decision": "reject", "reason": "screenshot only", "approver": "dana"}}).json()
    assert reply["status"] == "ACCEPT"
    assert proc.wait(timeout=180) == 0, proc.stdout.read()

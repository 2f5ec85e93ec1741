"""The dashboard on a phone (390 × 844) and a desktop, by keyboard, in light and dark: a real
Chromium against a real ``manage.py serve``. Screenshots go to ``test-artifacts/`` at the
repository root (``dashboard-phone.png``, ``dashboard-desktop.png``, ``dashboard-light-phone.png``...)."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.browser import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    http_job,
    login,
    serve_dashboard,
    submit,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OVERFLOW = """() => ({
  page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  tables: [...document.querySelectorAll('.table-wrap')].map(w => [w.querySelector('table').id, w.scrollWidth - w.clientWidth]),
})"""


def visible_headers(page, table: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} thead th", "ths => ths.filter(th => th.offsetParent !== null).map(th => th.textContent.trim())")


def force_open(server, name="default", reason="Provider maintenance (INC-7)") -> None:
    response = server["api"].post(f"{server['base']}/api/breakers/{name}/force-open/", json={"reason": reason, "ttl_seconds": 1800})
    assert response.status_code == 200, response.text


def clean_up(server, jobs: list[dict], breaker="default") -> None:
    """Release the breaker and cancel the jobs: the next test starts from an admitting breaker."""
    server["api"].post(f"{server['base']}/api/breakers/{breaker}/release/", json={"reason": "done"})
    for job in jobs:
        server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/")


SIZES = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])


@pytest.mark.parametrize(("size", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_no_sideways_overflow_and_the_essential_columns(browser, server, size, viewport):
    from playwright.sync_api import expect

    page = login(browser, server, viewport=viewport)
    jobs = [http_job(server, priority=-97) for _ in range(3)] + [submit(server, kind="noop", priority=-96)]
    force_open(server)
    try:
        page.locator(f'#queue tr[data-id="{jobs[0]["id"]}"].held').wait_for()
        expect(page.locator("#totals [data-status]")).to_have_count(5)
        page.wait_for_timeout(300)
        overflow = page.evaluate(OVERFLOW)
        assert overflow["page"] <= 0, overflow
        assert all(extra <= 1 for _, extra in overflow["tables"]), overflow  # every table fits its panel
        headers = visible_headers(page, "queue")
        if size == "phone":
            assert headers == ["", "Job", "Priority", "Why not running", "Actions"]
            assert visible_headers(page, "running") == ["Job", "Dependency", "Attempt", "Started"]
            assert visible_headers(page, "finished") == ["Job", "Status", "Finished", "Last error", "Actions"]
        else:
            assert headers == ["", "#", "Job", "Kind", "Dependency", "Priority", "Why not running", "Submitted", "Actions"]
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"dashboard-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
    finally:
        clean_up(server, jobs)
    assert page.js_errors == []
    page.context.close()


@SIZES
def test_light_and_dark_follow_the_system(browser, server, viewport):
    colours = {}
    for scheme in ("dark", "light"):
        page = login(browser, server, viewport=viewport, color_scheme=scheme)
        colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        ARTIFACTS.mkdir(exist_ok=True)
        size = "phone" if viewport == PHONE else "desktop"
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{scheme}-{size}.png"))
        page.context.close()
    assert colours["dark"] == "rgb(15, 20, 25)" and colours["light"] == "rgb(246, 248, 250)"


@SIZES
def test_one_tab_stop_per_queue_row_and_arrow_keys_within_and_between(browser, server, viewport):
    page = login(browser, server, viewport=viewport)
    a = submit(server, kind="noop", priority=-93)
    b = submit(server, kind="noop", priority=-94)
    row_a, row_b = (page.locator(f'#queue tr[data-id="{j["id"]}"]') for j in (a, b))
    row_b.wait_for()
    stops = page.evaluate("""() => [...document.querySelectorAll('#queue tbody tr')].map(
        tr => [...tr.querySelectorAll('input, button, a, select, textarea')].filter(e => e.tabIndex >= 0).length)""")
    assert stops and set(stops) == {1}, stops  # every row: one tab stop
    label_a = row_a.locator("button.job-id")
    label_a.focus()
    page.keyboard.press("ArrowDown")  # a (-93) is above b (-94): down to b's label
    assert page.evaluate("document.activeElement.dataset.detail") == b["id"]
    page.keyboard.press("ArrowRight")  # within the row: b's priority input
    assert page.evaluate("document.activeElement.classList.contains('priority-input')")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.action") == "cancel"
    page.keyboard.press("ArrowUp")  # the same control one row up: a's Cancel
    assert page.evaluate("[document.activeElement.dataset.action, document.activeElement.dataset.job]") == ["cancel", a["id"]]
    # The row remembers its stop: Tab away and Shift+Tab back lands on a's Cancel again.
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("[document.activeElement.dataset.action, document.activeElement.dataset.job]") == ["cancel", a["id"]]
    # A section link moves the focus straight to its section.
    page.get_by_role("link", name="Submit a job").click()
    assert page.evaluate("document.activeElement.id") == "submit-section"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit-kind"
    for job in (a, b):
        server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/")
    page.context.close()


LIST_STOPS = """() => Object.fromEntries(['#running tbody', '#finished tbody', '#events'].map(s => [s,
  [...document.querySelector(s).querySelectorAll('input, button, a[href]')].filter(e => e.tabIndex >= 0).length]))"""


@SIZES
def test_every_other_list_is_one_tab_stop_with_arrow_keys_inside(browser, server, viewport):
    jobs = [submit(server, kind="noop", priority=-92) for _ in range(3)]
    for job in jobs:
        assert server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/").status_code == 200
    page = login(browser, server, viewport=viewport)
    for job in jobs:
        page.locator(f'#finished tr[data-id="{job["id"]}"] button[data-action="retry"]').wait_for()
    stops = page.evaluate(LIST_STOPS)
    assert stops["#finished tbody"] == 1 and stops["#events"] == 1 and stops["#running tbody"] <= 1, stops

    ids = page.eval_on_selector_all("#finished tbody tr", "rows => rows.map(r => r.dataset.id)")
    page.locator(f'#finished tr[data-id="{ids[0]}"] button.job-id').focus()
    page.keyboard.press("ArrowDown")  # the next row's label
    assert page.evaluate("document.activeElement.dataset.detail") == ids[1]
    page.keyboard.press("ArrowRight")  # within the row: its Retry
    assert page.evaluate("[document.activeElement.dataset.action, document.activeElement.dataset.job]") == ["retry", ids[1]]
    # Tab leaves the whole list at once; Shift+Tab comes back to the same control.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "history-open"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("[document.activeElement.dataset.action, document.activeElement.dataset.job]") == ["retry", ids[1]]
    assert page.evaluate(LIST_STOPS)["#finished tbody"] == 1

    # The events feed: one stop; Down moves from one job's line to the next one's.
    labels = page.locator("#events button.job-id")
    labels.first.focus()
    first = page.evaluate("document.activeElement.closest('li').dataset.key")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.closest('#events') !== null && document.activeElement.classList.contains('job-id')")
    assert page.evaluate("document.activeElement.closest('li').dataset.key") != first
    assert page.evaluate(LIST_STOPS)["#events"] == 1
    assert page.js_errors == []
    page.context.close()


@SIZES
def test_a_forced_hold_is_one_feed_line_and_the_card_says_when_and_who(browser, server, viewport):
    from playwright.sync_api import expect

    page = login(browser, server, viewport=viewport, timezone_id="Europe/Berlin")
    jobs = [http_job(server, priority=-92) for _ in range(60)]
    try:
        page.get_by_role("button", name="Force open breaker default").click()
        page.get_by_label("Reason").fill("deploying the provider")
        page.get_by_role("spinbutton", name="Duration").fill("10")  # minutes
        page.get_by_role("dialog", name="Force open breaker default").get_by_role(
            "button", name="Force open default", exact=True).click()
        group = page.locator("#events li.event-group").first
        expect(group).to_contain_text(re.compile(r"held \d+ jobs by user:operator"))
        count = int(group.get_attribute("data-count"))
        assert count >= 60
        # The override itself is right below its hold, not pushed out by one line per job.
        expect(page.locator("#events li").nth(1)).to_contain_text("breaker default forced open by user:operator")
        card = page.locator('article[data-breaker="default"]')
        expect(card.locator(".breaker-stats")).to_contain_text(re.compile(r"Opened\s*forced \d+s ago by user:operator"))
        # Clock times carry their zone (the browser's: Berlin here).
        held = page.locator(f'#queue tr[data-id="{jobs[0]["id"]}"] td').nth(6)
        expect(held).to_contain_text(re.compile(r"held: breaker default forced open until \d\d:\d\d:\d\d (GMT\+\d|CES?T)"))
    finally:
        clean_up(server, jobs)
    assert page.js_errors == []
    page.context.close()


def test_the_submit_forms_defaults_submit(browser, server):
    from playwright.sync_api import expect

    page = login(browser, server, viewport=PHONE)
    page.get_by_role("button", name="Submit job").click()
    status = page.locator("#submit-status")
    expect(status).to_have_text(re.compile(r"^Submitted job [0-9a-f]{8}$"))
    job = server["api"].get(f"{server['base']}/api/jobs/{status.get_attribute('title')}/").json()
    assert (job["kind"], job["priority"], job["payload"]) == ("noop", 0, {})
    page.context.close()


@SIZES
def test_favicon(browser, server, viewport):
    page = login(browser, server, viewport=viewport)
    href = page.get_attribute('link[rel="icon"]', "href")
    response = page.request.get(server["base"] + href)
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg+xml")
    page.context.close()


EMPTY_SHOWN = """() => Object.fromEntries(['queue', 'running', 'finished', 'events', 'breakers'].map(
  name => [name, !document.getElementById(name + '-empty').hidden]))"""


@SIZES
def test_every_list_shows_its_empty_state_exactly_while_it_is_empty(browser, tmp_path_factory, viewport):
    """A server of its own that starts with no jobs at all (the module's server is never empty)."""
    served = serve_dashboard(tmp_path_factory, occupy=False)
    fresh = next(served)
    try:
        page = login(browser, fresh, viewport=viewport)
        page.locator("#breakers article").first.wait_for()
        shown = {"queue": True, "running": True, "finished": True, "events": True, "breakers": False}
        page.wait_for_function(f"(want) => JSON.stringify(({EMPTY_SHOWN})()) === want",
                               arg=json.dumps(shown, separators=(",", ":")))
        for name in ("queue", "running", "finished", "events"):
            assert page.locator(f"#{name}-empty").is_visible(), name

        # One job runs (the only slot), one waits: the queue, running and events fill up.
        slow = submit(fresh, kind="simulate", priority=5, payload={"complexity": 20, "failure_rate": 0})
        waiting = submit(fresh, kind="noop", priority=-5)
        page.locator(f'#running tr[data-id="{slow["id"]}"]').wait_for()
        page.locator(f'#queue tr[data-id="{waiting["id"]}"]').wait_for()
        assert page.evaluate(EMPTY_SHOWN) == {"queue": False, "running": False, "finished": True, "events": False,
                                              "breakers": False}
        # Cancelled, the waiting job leaves the queue (empty again) for the finished list.
        assert fresh["api"].post(f"{fresh['base']}/api/jobs/{waiting['id']}/cancel/").status_code == 200
        page.locator(f'#finished tr[data-id="{waiting["id"]}"]').wait_for()
        page.wait_for_function("() => !document.getElementById('queue-empty').hidden")
        assert page.evaluate(EMPTY_SHOWN)["finished"] is False
        # The running job finishes: nothing runs any more.
        page.locator(f'#finished tr[data-id="{slow["id"]}"]').wait_for(timeout=15_000)
        page.wait_for_function("() => !document.getElementById('running-empty').hidden")
        assert page.evaluate(EMPTY_SHOWN) == {"queue": True, "running": True, "finished": False, "events": False,
                                              "breakers": False}
        assert page.js_errors == []
        page.context.close()
    finally:
        served.close()

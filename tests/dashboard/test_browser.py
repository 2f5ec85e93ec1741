"""The dashboard in a real Chromium against a real ``manage.py serve`` (Daphne + worker) with its
own SQLite file: live updates, operator actions and the API agreeing with what the page shows.
The server and browser fixtures are in ``tests/dashboard/conftest.py``."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

from tests.support.browser import (
    ARTIFACTS,
    LIVE,
    PASSWORDS,
    api_job,
    http_job,
    login,
    second_worker,
    serve_dashboard,
    submit,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

def queue_ids(page) -> list[str]:
    return page.eval_on_selector_all("#queue tbody tr", "rows => rows.map(r => r.dataset.id)")


def wait_queue_order(page, first: str, second: str) -> None:
    page.wait_for_function(
        """([a, b]) => { const ids = [...document.querySelectorAll('#queue tbody tr')].map(r => r.dataset.id);
             return ids.includes(a) && ids.includes(b) && ids.indexOf(a) < ids.indexOf(b); }""",
        arg=[first, second],
    )


def test_job_submitted_over_the_api_appears_live(browser, server):
    page = login(browser, server)
    assert page.locator("#conn-text").inner_text() == "Live"
    job = submit(server, kind="noop", priority=3)
    row = page.locator(f'#queue tr[data-id="{job["id"]}"]')
    row.wait_for()
    label = row.locator("button.job-id")
    assert label.inner_text() == job["id"][:8]
    assert label.get_attribute("title") == job["id"]
    assert page.js_errors == []
    page.context.close()


def test_priority_change_moves_the_row_and_the_api_agrees(browser, server):
    page = login(browser, server)
    low = submit(server, kind="noop", priority=-20)
    high = submit(server, kind="noop", priority=-10)
    wait_queue_order(page, high["id"], low["id"])
    box = page.get_by_label(f"Priority of job {low['id'][:8]} (Enter applies)")
    box.fill("20")
    box.press("Enter")
    wait_queue_order(page, low["id"], high["id"])
    detail = api_job(server, low["id"])
    assert detail["priority"] == 20
    assert detail["position"] < api_job(server, high["id"])["position"]
    row = page.locator(f'#queue tr[data-id="{low["id"]}"]')
    assert row.get_attribute("data-position") == str(detail["position"])
    # "Why isn't this running?" in the detail view, from the API; Escape closes it.
    row.get_by_role("button", name=f"Job {low['id'][:8]}: show details").click()
    dialog = page.locator("#job-detail")
    dialog.get_by_text(f'{{"reason":"jobs_ahead","jobs_ahead":{detail["position"] - 1}}}').wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.js_errors == []
    page.context.close()


def test_a_scheduled_job_shows_its_time_and_countdown_in_the_queue(browser, server):
    page = login(browser, server)
    job = submit(server, kind="noop", priority=60, delay_seconds=3600)
    row = page.locator(f'#queue tr[data-id="{job["id"]}"]')
    row.wait_for()
    page.wait_for_function(
        "(id) => /scheduled for \\d\\d:\\d\\d:\\d\\d( [A-Z][A-Za-z0-9+:-]*)? \\(in (59m|1h)/.test(document.querySelector(`#queue tr[data-id='${id}']`).cells[6].textContent)",
        arg=job["id"],
    )
    assert page.js_errors == []
    page.context.close()


def submit_from_form(page, **fields: str):
    """Fill the submit form's fields (by label) for a noop job, submit it; its status line."""
    page.get_by_label("Kind", exact=True).select_option("noop")
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Submit job").click()
    return page.locator("#submit-status")


def _instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_a_delayed_job_from_the_submit_form_waits_with_its_countdown(browser, server):
    from playwright.sync_api import expect

    page = login(browser, server)
    status = submit_from_form(page, **{"Priority": "70", "Delay (seconds)": "3600"})
    expect(status).to_have_text(re.compile(r"^Submitted job [0-9a-f]{8}, scheduled for \d\d:\d\d:\d\d"))
    job_id = status.get_attribute("title")
    stored = api_job(server, job_id)
    assert stored["status"] == "pending" and stored["waiting_for"]["reason"] == "scheduled"
    page.wait_for_function(
        "(id) => /scheduled for \\d\\d:\\d\\d:\\d\\d( [A-Z][A-Za-z0-9+:-]*)? \\(in (59m|1h)/.test(document.querySelector(`#queue tr[data-id='${id}']`)?.cells[6].textContent)",
        arg=job_id,
    )
    # A bad schedule: the server's message next to the form, and nothing stored.
    page.get_by_label("Delay (seconds)").fill("-5")
    page.get_by_role("button", name="Submit job").click()
    expect(status).to_have_text("delay_seconds: must be 0 or more")
    page.get_by_label("Delay (seconds)").fill("")
    # Two days ahead in the browser's local time, as the datetime-local field takes it.
    local = page.evaluate("""() => { const d = new Date(Date.now() + 2 * 86400e3); d.setMilliseconds(0);
                                    return new Date(d - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 19); }""")
    page.get_by_label("Or run after (your local time)").fill(local)
    page.get_by_role("button", name="Submit job").click()
    expect(status).to_have_text(re.compile(rf"^Submitted job [0-9a-f]{{8}}, scheduled for {local[11:19]}"))
    later = api_job(server, status.get_attribute("title"))
    asked = page.evaluate("(local) => new Date(local).toISOString()", local)
    assert _instant(later["run_after"]) == _instant(asked)
    assert page.js_errors == []
    page.context.close()


def test_invalid_priority_shows_the_servers_error_next_to_the_input(browser, server):
    page = login(browser, server)
    job = submit(server, kind="noop", priority=-30)
    box = page.get_by_label(f"Priority of job {job['id'][:8]} (Enter applies)")
    box.fill("500")
    box.press("Enter")
    error = page.locator(f'#queue tr[data-id="{job["id"]}"] .row-error')
    error.wait_for(state="visible")
    assert error.inner_text() == "priority: must be between -100 and 100"
    assert api_job(server, job["id"])["priority"] == -30
    page.context.close()


def test_cancel_then_retry(browser, server):
    page = login(browser, server)
    job = submit(server, kind="noop", priority=-40)
    page.get_by_role("button", name=f"Cancel job {job['id'][:8]}").click()
    page.locator(f'#finished tr[data-id="{job["id"]}"][data-status="cancelled"]').wait_for()
    page.locator(f'#queue tr[data-id="{job["id"]}"]').wait_for(state="detached")
    assert api_job(server, job["id"])["status"] == "cancelled"
    page.get_by_role("button", name=f"Retry job {job['id'][:8]}").click()
    page.locator(f'#queue tr[data-id="{job["id"]}"]').wait_for()
    assert api_job(server, job["id"])["status"] == "pending"
    page.context.close()


def test_two_dashboards_see_each_others_actions(browser, server):
    one = login(browser, server)
    two = login(browser, server)
    a = submit(server, kind="noop", priority=-60)
    b = submit(server, kind="noop", priority=-50)
    for page in (one, two):
        wait_queue_order(page, b["id"], a["id"])
    box = one.get_by_label(f"Priority of job {a['id'][:8]} (Enter applies)")
    box.fill("-45")
    box.press("Enter")
    wait_queue_order(two, a["id"], b["id"])
    two.get_by_role("button", name=f"Cancel job {b['id'][:8]}").click()
    one.locator(f'#queue tr[data-id="{b["id"]}"]').wait_for(state="detached")
    one.locator(f'#finished tr[data-id="{b["id"]}"]').wait_for()
    one.context.close()
    two.context.close()


def test_reconnects_and_resyncs_after_the_socket_drops(browser, server):
    page = login(browser, server)
    page.evaluate("window.resilientDashboard.socket.ws.close()")
    page.wait_for_selector('body[data-socket="reconnecting"]')
    assert page.locator("#conn-text").inner_text().startswith("Reconnecting")
    job = submit(server, kind="noop", priority=-90)  # changed while this page was away
    page.wait_for_selector('body[data-socket="open"]')
    page.locator(f'#queue tr[data-id="{job["id"]}"]').wait_for()
    page.context.close()


def test_signing_out_in_one_tab_ends_the_dashboard_in_the_other(browser, server):
    one = login(browser, server)
    two = one.context.new_page()
    two.goto(server["base"] + "/dashboard/")
    two.wait_for_selector(LIVE)
    one.get_by_role("button", name="Sign out").click()
    one.wait_for_load_state()
    # The socket's periodic session check (every 5 s) closes it with 4001; the page reloads and
    # is sent to sign in instead of reconnecting for ever.
    two.wait_for_url(re.compile(r"/accounts/login/\?next=/dashboard/$"), timeout=15_000)
    assert one.js_errors == []
    one.context.close()


def test_submit_form_and_bulk_reprioritise(browser, server):
    from playwright.sync_api import expect

    page = login(browser, server)
    status = submit_from_form(page, **{"Priority": "-70", "Payload (JSON object)": '{"note": "from the form"}'})
    expect(status).to_have_text(re.compile(r"^Submitted job [0-9a-f]{8}$"))
    job_id = status.get_attribute("title")
    assert api_job(server, job_id)["payload"] == {"note": "from the form"}
    other = submit(server, kind="noop", priority=-70)
    page.locator(f'#queue tr[data-id="{other["id"]}"]').wait_for()
    page.locator("#filter-priority").fill("-70")
    page.get_by_label("All pending jobs matching the filter").check()
    page.get_by_label("New priority").fill("-65")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#bulk-count")).to_have_text("2 jobs will change")
    expect(page.locator("#bulk-error")).to_have_text("")
    page.get_by_role("button", name="Apply new priority").click()
    expect(page.locator("#bulk-count")).to_have_text("2 jobs changed")
    assert api_job(server, job_id)["priority"] == -65 and api_job(server, other["id"])["priority"] == -65
    page.context.close()


def test_read_only_operator_sees_but_has_no_controls(browser, server):
    page = login(browser, server, "viewer")
    job = submit(server, kind="noop", priority=-80)
    row = page.locator(f'#queue tr[data-id="{job["id"]}"]')
    row.wait_for()
    assert row.locator("input, button[data-action]").count() == 0
    assert not page.locator("#submit-form").is_visible()
    assert not page.locator("#bulk").is_visible()
    page.context.close()


def test_non_staff_cannot_open_the_dashboard(browser, server):
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(server["base"] + "/dashboard/")
    assert "/accounts/login/" in page.url  # anonymous: sent to sign in
    page.get_by_label("Username").fill("client")
    page.get_by_label("Password").fill(PASSWORDS["client"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    response = page.goto(server["base"] + "/dashboard/")
    assert response.status == 403
    assert page.locator("body[data-socket]").count() == 0
    context.close()


def api_breaker(server, name) -> dict:
    response = server["api"].get(f"{server['base']}/api/breakers/{name}/")
    assert response.status_code == 200, response.text
    return response.json()


def test_force_open_with_a_reason_then_release_seen_live_and_by_the_api(browser, server):
    from playwright.sync_api import expect

    page = login(browser, server)
    other = login(browser, server)
    card = page.locator('article[data-breaker="default"]')
    other_card = other.locator('article[data-breaker="default"]')
    expect(card.locator(".breaker-state")).to_have_text("Closed")
    job = http_job(server, priority=-95)

    page.get_by_role("button", name="Force open breaker default").click()
    dialog = page.get_by_role("dialog", name="Force open breaker default")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Reason")).to_be_focused()
    page.get_by_label("Reason").fill("provider maintenance window")
    # The server's rule for ttl_seconds, shown next to the duration field; nothing changes.
    page.get_by_role("spinbutton", name="Duration").fill("0")
    dialog.get_by_role("button", name="Force open default", exact=True).click()
    expect(page.locator("#breaker-duration-error")).to_have_text("ttl_seconds: must be more than 0 and at most 2592000")
    assert api_breaker(server, "default")["override"] is None
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-override-dialog.png"))
    page.get_by_role("spinbutton", name="Duration").fill("10")  # minutes
    dialog.get_by_role("button", name="Force open default", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Force open breaker default")).to_be_focused()

    for c in (card, other_card):  # the other dashboard sees it live
        expect(c).to_have_attribute("data-state", "open")
        expect(c.locator(".breaker-state")).to_have_text("Forced open")
        expect(c.locator(".override-reason")).to_have_text("provider maintenance window")
        expect(c.locator(".override-meta")).to_contain_text("by user:operator · lifts in 9m")
        expect(c.locator(".shadow")).to_have_text("Automatic state would be closed.")
        expect(c.locator(".held-count")).to_have_text("1")
    breaker = api_breaker(server, "default")
    assert (breaker["state"], breaker["shadow_state"], breaker["held"]) == ("open", "closed", 1)
    assert breaker["override"]["state"] == "open" and breaker["override"]["reason"] == "provider maintenance window"
    assert breaker["override"]["actor"] == "user:operator" and breaker["override"]["expires_at"]
    assert breaker["events"][0]["kind"] == "forced_open" and breaker["events"][0]["actor"] == "user:operator"
    row = page.locator(f'#queue tr[data-id="{job["id"]}"]')
    expect(row).to_have_class(re.compile(r"\bheld\b"))
    expect(row.locator("td").nth(6)).to_contain_text("held: breaker default forced open until ")
    assert api_job(server, job["id"])["waiting_for"]["reason"] == "breaker_open"
    expect(page.locator("#events li.breaker-event").first).to_contain_text("breaker default forced open by user:operator")

    expect(other.get_by_role("button", name="Release breaker default")).to_be_enabled()
    other.get_by_role("button", name="Release breaker default").click()
    release = other.get_by_role("dialog", name="Release breaker default")
    expect(other.get_by_role("spinbutton", name="Duration")).to_be_hidden()
    other.get_by_label("Reason").fill("maintenance over")
    release.get_by_role("button", name="Release default", exact=True).click()
    expect(release).to_be_hidden()
    for c in (card, other_card):
        expect(c).to_have_attribute("data-state", "closed")
        expect(c.locator(".breaker-state")).to_have_text("Closed")
        expect(c.locator(".breaker-override")).to_be_hidden()
        expect(c.get_by_role("button", name="Release breaker default")).to_be_disabled()  # nothing to release
    expect(row).not_to_have_class(re.compile(r"\bheld\b"))
    breaker = api_breaker(server, "default")
    assert breaker["override"] is None and breaker["state"] == "closed"
    assert breaker["events"][0]["kind"] == "released" and breaker["events"][0]["reason"] == "maintenance over"
    assert api_job(server, job["id"])["waiting_for"]["reason"] != "breaker_open"
    server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/")
    assert page.js_errors == [] and other.js_errors == []
    page.context.close()
    other.context.close()


def test_read_only_operator_has_no_breaker_controls(browser, server):
    page = login(browser, server, "viewer")
    card = page.locator('article[data-breaker="default"]')
    card.wait_for()
    assert card.get_by_role("button").count() == 0
    page.context.close()


def test_screenshot(browser, server):
    """The artifact shows an incident: a breaker forced open with its held jobs."""
    from playwright.sync_api import expect

    page = login(browser, server)
    response = server["api"].post(f"{server['base']}/api/breakers/default/force-open/",
                                  json={"reason": "Payments provider maintenance (INC-2041)", "ttl_seconds": 1800})
    assert response.status_code == 200, response.text
    for priority in (10, 5, 5, 0):
        http_job(server, priority=priority)
    submit(server, kind="noop", priority=5)
    expect(page.locator('article[data-breaker="default"] .held-count')).to_have_text("4")
    expect(page.locator("#queue tbody tr.held")).to_have_count(4)
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    page.context.close()


def test_a_limits_change_from_the_card_is_honoured_by_the_running_worker(browser, server):
    from playwright.sync_api import expect

    from tests.support.downstream import Downstream
    from tests.support.processes import wait_until

    server["api"].post(f"{server['base']}/api/breakers/default/release/", json={"reason": "t"})  # earlier tests
    page = login(browser, server)
    card = page.locator('article[data-breaker="default"]')
    card.get_by_role("button", name="Limits of default").click()
    dialog = page.get_by_role("dialog", name="Limits of default")
    expect(dialog).to_be_visible()
    page.get_by_label("Rate limit").fill("1/h")
    dialog.get_by_role("button", name="Apply to default").click()
    expect(page.locator("#limits-reason-error")).to_contain_text("reason")  # required: nothing changed
    assert api_breaker(server, "default")["flow"]["live"] == {}
    page.get_by_label("Why the limits change").fill("downstream struggling")
    dialog.get_by_role("button", name="Apply to default").click()
    expect(dialog).to_be_hidden()
    expect(card.locator(".breaker-stats")).to_contain_text("1/h")
    expect(card.locator(".rate-use")).to_have_text(" · room now")  # no call started yet
    with second_worker(server), Downstream() as stub:
        first = submit(server, kind="http", dependency="default", payload={"url": stub.url("/a")}, priority=90)
        second = submit(server, kind="http", dependency="default", payload={"url": stub.url("/b")}, priority=90)
        wait_until(lambda: api_job(server, first["id"])["status"] == "succeeded", timeout=30,
                   message=lambda: str(api_job(server, first["id"])))
        time.sleep(1.5)  # a few polls of the worker: the second must still wait for the rate limit
        waiting = api_job(server, second["id"])
        assert waiting["status"] == "pending" and waiting["attempts"] == 0
        assert waiting["waiting_for"]["reason"] == "rate_limit" and waiting["waiting_for"]["rate_limit"] == "1/h"
        assert [c.path for c in stub.calls] == ["/a"]
        # The card says the rate is all in use, when the next call may start, and what it holds.
        expect(card.locator(".rate-use")).to_contain_text(re.compile(r"all in use, next start in \d+m \d+s · \d+ held"))
        card.get_by_role("button", name="Limits of default").click()
        page.get_by_label("Back to configured").check()
        page.get_by_label("Why the limits change").fill("recovered")
        dialog.get_by_role("button", name="Apply to default").click()
        expect(dialog).to_be_hidden()
        wait_until(lambda: api_job(server, second["id"])["status"] == "succeeded", timeout=30)
    events = [e for e in api_breaker(server, "default")["events"] if e["kind"] == "limits_changed"]
    assert [e["reason"] for e in events][:2] == ["recovered", "downstream struggling"]
    assert not page.js_errors


def test_the_adaptive_bounds_change_from_the_card_of_an_adaptive_dependency_only(browser, tmp_path_factory):
    from playwright.sync_api import expect

    adaptive = {"elastic": {"concurrency": {"mode": "adaptive", "min": 1, "max": 16}}}
    served = serve_dashboard(tmp_path_factory, occupy=False, RESILIENT_DEPENDENCIES=json.dumps(adaptive))
    fresh = next(served)
    try:
        page = login(browser, fresh)
        # A dependency without adaptive concurrency has no bounds to change.
        page.locator('article[data-breaker="default"]').get_by_role("button", name="Limits of default").click()
        dialog = page.get_by_role("dialog", name="Limits of default")
        expect(dialog).to_be_visible()
        expect(page.get_by_label("Adaptive max")).to_be_hidden()
        dialog.get_by_role("button", name="Cancel").click()

        page.locator('article[data-breaker="elastic"]').get_by_role("button", name="Limits of elastic").click()
        dialog = page.get_by_role("dialog", name="Limits of elastic")
        expect(page.get_by_label("Adaptive min")).to_have_value("1")
        expect(page.get_by_label("Adaptive max")).to_have_value("16")
        page.get_by_label("Adaptive min").fill("3")
        page.get_by_label("Adaptive max").fill("2")
        page.get_by_label("Why the limits change").fill("downstream resized")
        dialog.get_by_role("button", name="Apply to elastic").click()
        # The service's own rule, next to its field; nothing changed.
        expect(page.locator("#limits-adaptive_min-error")).to_contain_text("must not be above adaptive_max")
        assert fresh["api"].get(f"{fresh['base']}/api/breakers/elastic/").json()["flow"]["live"] == {}
        page.get_by_label("Adaptive max").fill("8")
        dialog.get_by_role("button", name="Apply to elastic").click()
        expect(dialog).to_be_hidden()
        flow = fresh["api"].get(f"{fresh['base']}/api/breakers/elastic/").json()["flow"]
        assert flow["adaptive"] == {"min": 3, "max": 8}
        assert flow["live"] == {"adaptive_min": 3, "adaptive_max": 8, "max_concurrency": None, "rate_limit": None}
        assert not page.js_errors
        page.context.close()
    finally:
        served.close()


def page_queue(page) -> list[tuple[str, str]]:
    return page.eval_on_selector_all("#queue tbody tr", "rows => rows.map(r => [r.dataset.id, r.dataset.position])")


def page_totals(page) -> dict[str, int]:
    return page.eval_on_selector_all(
        "#totals [data-status]", "nodes => Object.fromEntries(nodes.map(n => [n.dataset.status, Number(n.querySelector('dd').dataset.count)]))")


def pop_order(server) -> list[str]:
    """Every pending job's id in pop order (the API's, page by page)."""
    ids, url = [], f"{server['base']}/api/jobs/?status=pending&ordering=pop"
    while url:
        body = server["api"].get(url).json()
        ids += [job["id"] for job in body["results"]]
        url = body["next"]
    return ids


def test_after_a_burst_the_page_is_exactly_the_api(browser, server):
    """A snapshot, then only changes: after 300 changes (and one forced gap, repaired by a
    snapshot the page asks for) the page shows exactly what the API says."""
    from concurrent.futures import ThreadPoolExecutor

    page = login(browser, server)
    first_seq = int(page.locator("body").get_attribute("data-seq"))

    def one(i: int) -> dict:
        return submit(server, kind="noop", priority=-99 + i % 9)

    with ThreadPoolExecutor(4) as pool:
        jobs = list(pool.map(one, range(200)))
    for job in jobs[:50]:
        server["api"].patch(f"{server['base']}/api/jobs/{job['id']}/", json={"priority": -1})
    for job in jobs[50:100]:
        server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/")
    # A lost message: the page sees the next change out of sequence and asks for a snapshot.
    page.evaluate("window.resilientDashboard.seq -= 1")
    submit(server, kind="noop", priority=-98)
    page.wait_for_selector("body[data-resyncs]")

    def settled() -> bool:
        truth = server["api"].get(f"{server['base']}/api/queue/").json()
        order = pop_order(server)[:100]
        shown = page_queue(page)
        return (page_totals(page) == truth["by_status"] and [i for i, _ in shown] == order
                and [p for _, p in shown] == [str(n) for n in range(1, len(order) + 1)]
                and [j["id"] for j in truth["next"]] == order[: len(truth["next"])])

    deadline = time.monotonic() + 15
    while not settled():
        assert time.monotonic() < deadline, (page_totals(page), page_queue(page)[:3])
        page.wait_for_timeout(300)
    # Changes, not snapshots: one snapshot at the start and one after the gap.
    assert page.locator("body").get_attribute("data-snapshots") == "2"
    assert int(page.locator("body").get_attribute("data-seq")) > first_seq
    assert page.js_errors == []
    page.context.close()

"""Finding jobs from the dashboard: the search box (id prefix, ``key:value`` on the payload, the
server's 400 next to the box), every finished job page by page, and a job's timeline. A real
Chromium against a real ``manage.py serve``; the search reads the REST API with the session."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.support.browser import PHONE, api_job, login, submit

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def find(page, text: str, *, by_keyboard: bool = False) -> None:
    box = page.get_by_label("Job id or payload")
    box.fill(text)
    if by_keyboard:
        box.press("Enter")
    else:
        page.get_by_role("button", name="Find", exact=True).click()


def result_ids(page) -> list[str]:
    page.locator("#find-results:not([hidden]) #find-count:not(:empty)").wait_for()
    return page.eval_on_selector_all("#find-table tbody tr", "rows => rows.map(r => r.dataset.id)")


def test_search_by_id_prefix_and_by_payload_finds_that_job_only(browser, server):
    marker = uuid.uuid4().hex
    target = submit(server, kind="noop", priority=-90, payload={"order": {"ref": marker, "n": 7}})
    other = submit(server, kind="noop", priority=-90, payload={"order": {"ref": marker + "x", "n": 7}})
    page = login(browser, server, viewport=PHONE)
    find(page, target["id"][:10].upper(), by_keyboard=True)
    assert result_ids(page) == [target["id"]]
    page.get_by_text("1 matching job, 1 shown").wait_for()
    assert page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0

    find(page, f"order.ref:{marker}")
    page.wait_for_function("() => document.querySelector('#find-count').textContent.startsWith('1 ')")
    assert result_ids(page) == [target["id"]]
    find(page, "order.n:7")
    page.wait_for_function("() => document.querySelectorAll('#find-table tbody tr').length >= 2")
    assert {target["id"], other["id"]} <= set(result_ids(page))
    # Opening a result shows the job.
    find(page, f'{{"order": {{"ref": "{marker}x"}}}}')
    # The previous search listed this job too: wait for the new answer, not for its row.
    page.wait_for_function("(id) => { const rows = document.querySelectorAll('#find-table tbody tr');"
                           " return rows.length === 1 && rows[0].dataset.id === id; }", arg=other["id"])
    assert result_ids(page) == [other["id"]]
    page.locator("#find-table").get_by_role("button", name=f"Job {other['id'][:8]}: show details").click()
    page.locator("#job-detail").get_by_text(other["id"]).wait_for()
    page.keyboard.press("Escape")

    # The server's own 400, next to the box; the box is marked invalid.
    find(page, "1b9d6b")
    error = page.locator("#find-error")
    error.wait_for()
    page.wait_for_function("() => document.querySelector('#find-error').textContent !== ''")
    answer = server["api"].get(f"{server['base']}/api/jobs/", params={"id_prefix": "1b9d6b"})
    assert answer.status_code == 400
    assert error.text_content() == f"id_prefix: {' '.join(answer.json()['id_prefix'])}"
    assert page.get_by_label("Job id or payload").get_attribute("aria-invalid") == "true"
    find(page, "{not json")
    page.wait_for_function("() => document.querySelector('#find-error').textContent.startsWith('payload_contains: ')")
    find(page, target["id"][:8])
    page.wait_for_function("() => document.querySelector('#find-error').textContent === ''")
    assert page.get_by_label("Job id or payload").get_attribute("aria-invalid") is None
    assert page.js_errors == []
    page.context.close()


def test_every_finished_job_pages_beyond_the_last_fifty(browser, server):
    jobs = [submit(server, kind="noop", priority=-95) for _ in range(53)]
    for job in jobs:
        assert server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/").status_code == 200
    oldest = jobs[0]["id"]
    page = login(browser, server, viewport=PHONE)
    page.locator(f'#finished tr[data-id="{jobs[-1]["id"]}"]').wait_for()
    assert page.locator(f'#finished tr[data-id="{oldest}"]').count() == 0  # beyond the live 50
    page.get_by_role("button", name="Every finished job…").click()
    rows = page.locator("#history-table tbody tr")
    page.wait_for_function("() => document.querySelectorAll('#history-table tbody tr').length === 50")
    assert page.locator(f'#history-table tr[data-id="{oldest}"]').count() == 0
    count = page.locator("#history-count").text_content()
    total = int(re.match(r"([\d,]+) finished jobs", count).group(1).replace(",", ""))
    assert total >= 53
    more = page.get_by_role("button", name="More")
    more.focus()
    page.keyboard.press("Enter")
    page.locator(f'#history-table tr[data-id="{oldest}"]').wait_for()
    assert rows.count() == min(total, 100)
    ids = page.eval_on_selector_all("#history-table tbody tr", "rows => rows.map(r => r.dataset.id)")
    assert len(set(ids)) == len(ids)  # no job twice across pages
    assert ids.index(jobs[-1]["id"]) < ids.index(oldest)  # newest submitted first
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    assert page.js_errors == []
    page.context.close()


def test_the_job_page_is_a_timeline_with_zone_actor_and_durations(browser, server):
    job = submit(server, kind="noop", priority=-80)
    assert server["api"].patch(f"{server['base']}/api/jobs/{job['id']}/", json={"priority": -70}).status_code == 200
    server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/")
    events = api_job(server, job["id"])["events"]
    assert len(events) >= 3
    page = login(browser, server, timezone_id="Asia/Kolkata")
    find(page, job["id"][:8])
    page.locator("#find-table").get_by_role("button", name=f"Job {job['id'][:8]}: show details").click()
    timeline = page.locator("#job-detail .timeline")
    timeline.wait_for()
    items = timeline.locator("li.tl-event")
    assert items.count() == len(events)
    assert items.evaluate_all("lis => lis.map(li => li.dataset.kind)") == [e["kind"] for e in events]
    for index, event in enumerate(events):
        item = items.nth(index)
        assert item.locator("time").get_attribute("datetime") == event["at"]
        assert "GMT+5:30" in item.locator("time").text_content()  # the browser's zone, named
        assert item.locator(".tl-actor").text_content() == f"by {event['actor']}"
        gap = item.locator(".tl-gap").text_content()
        if index == 0:
            assert gap == "first step"
        else:
            assert re.fullmatch(r"\+[\d.]+ (ms|s) after the step before", gap), gap
    assert re.search(r"times in Asia/(Kolkata|Calcutta)", page.locator("#job-detail .tl-summary").text_content())
    assert page.js_errors == []
    page.context.close()


def test_a_jobs_page_has_its_own_address(browser, server):
    job = submit(server, kind="noop", priority=-81)
    assert server["api"].post(f"{server['base']}/api/jobs/{job['id']}/cancel/").status_code == 200
    page = login(browser, server)
    detail = page.locator("#job-detail")

    # Following an address opens the job's page, on a loaded dashboard and on a fresh load.
    page.goto(f"{server['base']}/dashboard/#job={job['id'].upper()}")
    detail.locator(".timeline").wait_for()
    assert detail.locator("dd").first.text_content() == job["id"]
    page.keyboard.press("Escape")
    page.wait_for_function("() => location.hash === '' && !document.querySelector('#job-detail').open")
    page.goto(f"{server['base']}/dashboard/#job={job['id']}")
    page.reload()
    detail.locator(".timeline").wait_for()
    assert detail.locator("dd").first.text_content() == job["id"]
    assert detail.locator("a.job-address").get_attribute("href") == f"#job={job['id']}"
    page.keyboard.press("Escape")

    # Opening a job from a list puts its address in the location bar.
    page.locator(f'#finished tr[data-id="{job["id"]}"] button.job-id').click()
    detail.locator(".timeline").wait_for()
    page.wait_for_function("(id) => location.hash === '#job=' + id", arg=job["id"])

    # An address naming no job the user may see says so; one that is not a job id opens nothing.
    # Followed at once as the open page closes (both events queued together), it still opens.
    missing = str(uuid.uuid4())
    page.evaluate("(id) => { document.getElementById('job-detail').close(); location.hash = '#job=' + id; }", missing)
    page.wait_for_function("() => document.querySelector('#job-detail').open"
                           " && document.querySelector('#job-detail-body').textContent !== 'Loading…'")
    assert detail.locator(".timeline").count() == 0
    assert server["api"].get(f"{server['base']}/api/jobs/{missing}/").status_code == 404
    page.keyboard.press("Escape")
    page.goto(f"{server['base']}/dashboard/#job=not-a-job")
    page.wait_for_timeout(300)
    assert page.evaluate("() => document.querySelector('#job-detail').open") is False
    assert page.js_errors == []
    page.context.close()

// Operator actions: every control sends one command over the socket and shows the server's
// answer (or its error) next to itself. The server checks permissions and input like the API.

import { BREAKER_ACTIONS, clockTime, el, serverNow, shortId } from './render.js';
import { renderTimeline, totalText } from './timeline.js';

const BREAKER_HELP = {
  breaker_force_open: 'Every call to this dependency is rejected and its jobs wait, until you release it or the duration ends. Outcomes are still recorded.',
  breaker_force_closed: 'Every call goes through and the breaker never trips, until you release it or the duration ends. Failures are still counted (shadow state).',
  breaker_release: 'Back to the automatic state at once.',
};

let nextRef = 1;
const waiting = new Map(); // ref -> callback(reply)

export function handleReply(reply) {
  const callback = waiting.get(reply.ref);
  if (!callback) return;
  waiting.delete(reply.ref);
  callback(reply);
}

function errorText(reply) {
  return reply.field && reply.field !== 'action' ? `${reply.field}: ${reply.message}` : reply.message;
}

// An integer typed in a number input goes as a number; anything else goes as typed so the
// server rejects it with the API's message.
function integerOrRaw(value) {
  return /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
}

function numberOrRaw(value) {
  return /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
}

// A datetime-local value ("2030-01-01T12:00") is the browser's local time without a zone:
// written as ISO 8601 in UTC for the server; an unparsable one goes as typed (the server says why).
function localTimeInUtc(value) {
  const when = new Date(value);
  return Number.isNaN(when.getTime()) ? value : when.toISOString();
}

export function wireActions(ui) {
  function command(message, onReply) {
    const ref = nextRef++;
    waiting.set(ref, onReply);
    if (!ui.socket.send({ ...message, ref })) {
      waiting.delete(ref);
      onReply({ type: 'error', message: 'not connected; try again when the dashboard is live' });
    }
  }

  function rowError(control, reply) {
    const slot = control.closest('tr, article')?.querySelector('.row-error');
    if (slot) slot.textContent = reply.type === 'error' ? errorText(reply) : '';
  }

  // Per-row buttons: cancel, retry, breaker overrides (event delegation: rows come and go).
  document.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (button) {
      const { action, job } = button.dataset;
      const message = { action };
      if (job) message.id = job;
      button.disabled = true;
      command(message, (reply) => { button.disabled = false; rowError(button, reply); });
      return;
    }
    const limitsButton = event.target.closest('button[data-limits]');
    if (limitsButton) { openLimitsDialog(limitsButton); return; }
    const override = event.target.closest('button[data-breaker-action]');
    if (override) { openBreakerDialog(override); return; }
    const detail = event.target.closest('button[data-detail]');
    if (detail) showDetail(detail.dataset.detail);
  });

  // Breaker overrides: a dialog asks for the reason and an optional duration, sends the command
  // and shows the server's field errors next to the field (the API's rules and messages).
  const dialog = document.getElementById('breaker-dialog');
  const form = document.getElementById('breaker-form');
  const reason = document.getElementById('breaker-reason');
  const duration = document.getElementById('breaker-duration');
  const unit = document.getElementById('breaker-duration-unit');
  const confirm = document.getElementById('breaker-confirm');
  const errors = {
    reason: document.getElementById('breaker-reason-error'),
    ttl_seconds: document.getElementById('breaker-duration-error'),
    form: document.getElementById('breaker-form-error'),
  };
  let pending = null; // {action, name, opener}
  function clearErrors() {
    for (const slot of Object.values(errors)) slot.textContent = '';
    reason.removeAttribute('aria-invalid');
    duration.removeAttribute('aria-invalid');
  }
  function openBreakerDialog(button) {
    const { breakerAction: action, breaker: name } = button.dataset;
    const label = BREAKER_ACTIONS.find(([a]) => a === action)[1];
    pending = { action, name, opener: button };
    clearErrors();
    form.reset();
    dialog.dataset.action = action;
    document.getElementById('breaker-dialog-h').textContent = `${label} breaker ${name}`;
    document.getElementById('breaker-dialog-help').textContent = BREAKER_HELP[action];
    document.getElementById('breaker-duration-group').hidden = action === 'breaker_release';
    confirm.textContent = `${label} ${name}`;
    dialog.showModal();
    reason.focus();
  }
  dialog.addEventListener('close', () => {
    if (pending?.opener?.isConnected) pending.opener.focus();
    pending = null;
  });
  document.getElementById('breaker-cancel').addEventListener('click', () => dialog.close());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!pending) return;
    clearErrors();
    const message = { action: pending.action, name: pending.name, reason: reason.value };
    if (pending.action !== 'breaker_release' && duration.value !== '') {
      message.ttl_seconds = Number(duration.value) * Number(unit.value);
    }
    confirm.disabled = true;
    const card = pending.opener.closest('article');
    command(message, (reply) => {
      confirm.disabled = false;
      if (reply.type !== 'error') {
        if (card) rowError(card, {});
        dialog.close();
        return;
      }
      const slot = errors[reply.field] || errors.form;
      slot.textContent = errorText(reply);
      if (reply.field === 'reason') reason.setAttribute('aria-invalid', 'true');
      if (reply.field === 'ttl_seconds') duration.setAttribute('aria-invalid', 'true');
    });
  });

  // Flow-control limits: the same dialog pattern, one breaker_limits command (PATCH's rules).
  const limitsDialog = document.getElementById('limits-dialog');
  const limitsForm = document.getElementById('limits-form');
  const limitsConfirm = document.getElementById('limits-confirm');
  const limitFields = ['max_concurrency', 'rate_limit', 'adaptive_min', 'adaptive_max', 'reason'];
  const adaptiveGroup = document.getElementById('limits-adaptive');
  let limitsFor = null; // {name, opener}
  function openLimitsDialog(button) {
    const flow = JSON.parse(button.dataset.flow || '{}');
    limitsFor = { name: button.dataset.limits, opener: button };
    limitsForm.reset();
    for (const f of [...limitFields, 'form']) document.getElementById(`limits-${f}-error`).textContent = '';
    document.getElementById('limits-max-concurrency').value = flow.max_concurrency ?? '';
    document.getElementById('limits-rate-limit').value = flow.rate_limit ?? '';
    // The adaptive bounds only for a dependency configured with adaptive concurrency.
    adaptiveGroup.hidden = !flow.adaptive;
    document.getElementById('limits-adaptive-min').value = flow.adaptive?.min ?? '';
    document.getElementById('limits-adaptive-max').value = flow.adaptive?.max ?? '';
    document.getElementById('limits-dialog-h').textContent = `Limits of ${limitsFor.name}`;
    limitsConfirm.textContent = `Apply to ${limitsFor.name}`;
    limitsDialog.showModal();
    document.getElementById('limits-max-concurrency').focus();
  }
  limitsDialog.addEventListener('close', () => {
    if (limitsFor?.opener?.isConnected) limitsFor.opener.focus();
    limitsFor = null;
  });
  document.getElementById('limits-cancel').addEventListener('click', () => limitsDialog.close());
  limitsForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!limitsFor) return;
    for (const f of [...limitFields, 'form']) document.getElementById(`limits-${f}-error`).textContent = '';
    const message = { action: 'breaker_limits', name: limitsFor.name, reason: document.getElementById('limits-reason').value };
    if (document.getElementById('limits-reset').checked) message.reset = true;
    else {
      const cap = document.getElementById('limits-max-concurrency').value;
      const rate = document.getElementById('limits-rate-limit').value.trim();
      message.max_concurrency = cap === '' ? null : integerOrRaw(cap);
      message.rate_limit = rate === '' ? null : rate;
      if (!adaptiveGroup.hidden) {
        for (const key of ['adaptive_min', 'adaptive_max']) {
          const value = document.getElementById(`limits-${key.replace('_', '-')}`).value;
          if (value !== '') message[key] = integerOrRaw(value);
        }
      }
    }
    limitsConfirm.disabled = true;
    command(message, (reply) => {
      limitsConfirm.disabled = false;
      if (reply.type !== 'error') { limitsDialog.close(); return; }
      const slot = document.getElementById(`limits-${limitFields.includes(reply.field) ? reply.field : 'form'}-error`);
      slot.textContent = errorText(reply);
    });
  });

  // Priority inputs: Enter applies, Escape restores.
  document.addEventListener('input', (event) => {
    if (event.target.matches('.priority-input')) event.target.dataset.dirty = '1';
  });
  document.addEventListener('keydown', (event) => {
    const input = event.target;
    if (!input.matches?.('.priority-input')) return;
    if (event.key === 'Escape') {
      delete input.dataset.dirty;
      input.value = input.closest('tr').dataset.priority;
      rowError(input, {});
      return;
    }
    if (event.key !== 'Enter') return;
    event.preventDefault();
    command({ action: 'reprioritise', id: input.dataset.job, priority: integerOrRaw(input.value) }, (reply) => {
      if (reply.type !== 'error') delete input.dataset.dirty;
      rowError(input, reply);
    });
  });

  // Selection for bulk reprioritise.
  const selectionText = document.getElementById('bulk-selection');
  const bulkAll = document.getElementById('bulk-all');
  const bulkPriority = document.getElementById('bulk-priority');
  const bulkCount = document.getElementById('bulk-count');
  const bulkError = document.getElementById('bulk-error');
  function updateSelection() {
    selectionText.textContent = bulkAll.checked
      ? 'All pending jobs matching the filter'
      : `${ui.selected.size} job${ui.selected.size === 1 ? '' : 's'} selected`;
    bulkCount.textContent = '';
  }
  document.addEventListener('change', (event) => {
    const box = event.target;
    if (box.matches('.select-job')) {
      if (box.checked) ui.selected.add(box.dataset.job); else ui.selected.delete(box.dataset.job);
      updateSelection();
    } else if (box.id === 'select-shown') {
      for (const row of document.querySelectorAll('#queue tbody tr:not([hidden])')) {
        if (box.checked) ui.selected.add(row.dataset.id); else ui.selected.delete(row.dataset.id);
        const rowBox = row.querySelector('.select-job');
        if (rowBox) rowBox.checked = box.checked;
      }
      updateSelection();
    } else if (box.id === 'bulk-all') updateSelection();
  });

  function bulkMessage(dryRun) {
    const message = { action: 'bulk_reprioritise', priority: integerOrRaw(bulkPriority.value), dry_run: dryRun };
    if (bulkAll.checked) {
      const filter = ui.filter();
      if (Object.keys(filter).length) message.filter = filter; else message.all = true;
    } else message.ids = [...ui.selected];
    return message;
  }
  function bulk(dryRun) {
    bulkError.textContent = '';
    command(bulkMessage(dryRun), (reply) => {
      if (reply.type === 'error') { bulkError.textContent = errorText(reply); bulkCount.textContent = ''; return; }
      if (!dryRun) { ui.selected.clear(); updateSelection(); }
      const jobs = `${reply.count} job${reply.count === 1 ? '' : 's'}`;
      bulkCount.textContent = dryRun ? `${jobs} will change` : `${jobs} changed`;
    });
  }
  document.getElementById('bulk-preview').addEventListener('click', () => bulk(true));
  document.getElementById('bulk').addEventListener('submit', (event) => { event.preventDefault(); bulk(false); });

  // Filter: shown rows follow it at once; "all matching" bulk actions use it too.
  document.getElementById('queue-filter').addEventListener('input', () => { ui.rerender(); updateSelection(); });
  document.getElementById('queue-filter').addEventListener('submit', (event) => event.preventDefault());

  // Submit a job.
  const submitForm = document.getElementById('submit-form');
  const submitStatus = document.getElementById('submit-status');
  submitForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(submitForm);
    const message = { action: 'submit', kind: data.get('kind') };
    if (data.get('dependency')) message.dependency = data.get('dependency');
    if (data.get('priority') !== '') message.priority = integerOrRaw(data.get('priority'));
    // The schedule as the server checks it: seconds from now, or a time with its zone (the
    // browser's local time written in UTC). Both given: the server says which to keep.
    if (data.get('delay_seconds') !== '') message.delay_seconds = numberOrRaw(data.get('delay_seconds'));
    if (data.get('run_after')) message.run_after = localTimeInUtc(data.get('run_after'));
    const payloadText = String(data.get('payload') || '').trim();
    if (payloadText) {
      try { message.payload = JSON.parse(payloadText); } catch {
        submitStatus.className = 'error';
        submitStatus.textContent = 'payload: not valid JSON';
        return;
      }
    }
    command(message, (reply) => {
      if (reply.type === 'error') { submitStatus.className = 'error'; submitStatus.textContent = errorText(reply); return; }
      submitStatus.className = 'ok';
      const later = new Date(reply.job.run_after).getTime() > serverNow() + 1000;
      submitStatus.textContent = `Submitted job ${shortId(reply.job.id)}${later ? `, scheduled for ${clockTime(reply.job.run_after)}` : ''}`;
      submitStatus.title = reply.job.id;
    });
  });
}

// A job's page has its own address, /dashboard/#job=<id>: bookmark it, share it, reload it.
// Opening a job puts its address in the location bar; closing the page takes it away.
const JOB_ADDRESS = /^#job=([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

function jobInAddress() {
  const match = JOB_ADDRESS.exec(window.location.hash);
  return match ? match[1].toLowerCase() : null;
}

let shownJob = null; // the job the page shows (its address is in the location bar)

export function wireJobAddress() {
  const dialog = document.getElementById('job-detail');
  dialog.addEventListener('close', () => {
    if (dialog.open) return; // already showing the next job
    // Only the closed job's own address goes: one followed meanwhile opens its job next.
    if (jobInAddress() === shownJob) window.history.replaceState(null, '', window.location.pathname + window.location.search);
    shownJob = null;
  });
  window.addEventListener('hashchange', () => {
    const id = jobInAddress();
    if (id) showDetail(id);
  });
  const id = jobInAddress();
  if (id) showDetail(id);
}

// "Why isn't this running?" and the history: the job's detail from the REST API.
async function showDetail(id) {
  const dialog = document.getElementById('job-detail');
  const body = document.getElementById('job-detail-body');
  document.getElementById('job-detail-h').textContent = `Job ${shortId(id)}`;
  body.textContent = 'Loading…';
  shownJob = id;
  if (jobInAddress() !== id) window.history.replaceState(null, '', `#job=${id}`);
  if (!dialog.open) dialog.showModal();
  try {
    const response = await fetch(`/api/jobs/${id}/`, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    const job = await response.json();
    if (!response.ok) { body.textContent = job.detail || `HTTP ${response.status}`; return; }
    const waiting = job.waiting_for ? JSON.stringify(job.waiting_for) : '—';
    const dl = document.createElement('dl');
    dl.className = 'detail';
    for (const [key, value] of [['id', job.id], ['status', job.status], ['kind', job.kind], ['dependency', job.dependency],
      ['priority', job.priority], ['position', job.position ?? '—'], ['waiting for', waiting],
      ['attempts', `${job.attempts} of ${job.max_attempts}`], ['last error', job.last_error || '—'],
      ['payload', JSON.stringify(job.payload)]]) {
      dl.append(Object.assign(document.createElement('dt'), { textContent: key }),
        Object.assign(document.createElement('dd'), { textContent: value }));
    }
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const address = el('a', { class: 'job-address', href: `#job=${job.id}`, text: 'Link to this job' });
    body.replaceChildren(address, dl, el('h3', { text: 'Timeline' }),
      el('p', { class: 'muted tl-summary', text: `${totalText(job.events)}${job.events.length > 1 ? ' · ' : ''}times in ${zone}` }),
      renderTimeline(job.events));
  } catch (error) {
    body.textContent = `Could not load the job: ${error}`;
  }
}

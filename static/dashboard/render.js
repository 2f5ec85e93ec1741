// Rendering: turns a snapshot into DOM. Rows are keyed by job id and reused, so focus, typed
// priorities and selections survive the ~10 updates a second.

export const clock = { offset: 0 }; // server time minus browser time, from each snapshot

export function serverNow() {
  return Date.now() + clock.offset;
}

export function shortId(id) {
  return id.slice(0, 8);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children);
  return node;
}

export function relative(iso) {
  if (!iso) return '';
  const seconds = Math.round((new Date(iso).getTime() - serverNow()) / 1000);
  const abs = Math.abs(seconds);
  const text = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.floor(abs / 60)}m ${abs % 60}s` : `${Math.floor(abs / 3600)}h ${Math.floor((abs % 3600) / 60)}m`;
  return seconds > 0 ? `in ${text}` : `${text} ago`;
}

function timeCell(iso) {
  return el('time', { datetime: iso, title: iso ? clockTime(iso) : null, 'data-relative': iso, text: relative(iso) });
}

export function jobLabel(id) {
  return el('button', {
    type: 'button', class: 'job-id link', title: id, 'data-detail': id,
    'aria-label': `Job ${shortId(id)}: show details`, text: shortId(id),
  });
}

function setCell(row, index, ...content) {
  row.cells[index].replaceChildren(...content);
}

function setText(row, index, text) {
  const cell = row.cells[index];
  if (cell.textContent !== String(text)) cell.textContent = text;
}

// Keyed reconciliation: reuse, create, reorder and remove rows with minimal DOM churn.
export function reconcile(container, items, key, create, update) {
  const focused = document.activeElement;
  const existing = new Map([...container.children].map((child) => [child.dataset.key, child]));
  items.forEach((item, index) => {
    const k = key(item);
    let node = existing.get(k);
    if (node) existing.delete(k);
    else {
      node = create(item);
      node.dataset.key = k;
    }
    update(node, item);
    if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
  });
  for (const node of existing.values()) node.remove();
  if (focused && focused !== document.activeElement && container.contains(focused)) focused.focus();
}

function heldText(w) {
  const dep = `breaker ${w.dependency}`;
  const future = w.until && new Date(w.until).getTime() > serverNow();
  if (w.state === 'forced open') return `held: ${dep} forced open${w.until ? ` until ${clockTime(w.until)} (${relative(w.until)})` : ' until released'}`;
  if (w.state === 'half-open') return `held: ${dep} half-open, trial call running`;
  if (future) return `held: ${dep} open until ${clockTime(w.until)} (${relative(w.until)})`;
  return `held: ${dep} open, waiting for a trial call`;
}

export function waitingText(row) {
  const w = row.waiting_for;
  if (!w) return '';
  if (w.reason === 'breaker_open') return heldText(w);
  if (w.reason === 'retry_scheduled') return `retry scheduled ${relative(w.until)}`;
  if (w.reason === 'scheduled') return `scheduled for ${clockTime(w.until)} (${relative(w.until)})`;
  if (w.reason === 'jobs_ahead') {
    const held = row.held_ahead ? ` (${row.held_ahead} of them held)` : '';
    return `${w.jobs_ahead} job${w.jobs_ahead === 1 ? '' : 's'} ahead${held}`;
  }
  if (w.reason === 'next') return 'next to run';
  if (w.reason === 'rate_limit') return `held: ${w.dependency} rate limit ${w.rate_limit}, next start ${relative(w.until)}`;
  if (w.limit !== undefined) return `held: ${w.dependency} ${w.reason.replace('_', ' ')} (${w.in_flight} / ${w.limit} in flight)`;
  return w.reason;
}

export function renderTotals(dl, counts, estimated) {
  const parts = [];
  for (const [status, n] of Object.entries(counts)) {
    const approx = estimated.includes(status);
    parts.push(
      el('div', { class: `total status-${status}`, 'data-status': status },
        el('dt', { text: status }),
        el('dd', { 'data-count': n, title: approx ? 'estimated from table statistics' : null,
          text: `${approx ? '≈ ' : ''}${n.toLocaleString()}` })),
    );
  }
  dl.replaceChildren(...parts);
}

export function renderQueue(tbody, rows, ui) {
  const can = ui.can;
  reconcile(tbody, rows, (r) => r.id, (r) => {
    const tr = el('tr', { 'data-id': r.id });
    for (let i = 0; i < 9; i++) tr.append(el('td'));
    tr.cells[0].className = 'needs-bulk_reprioritise';
    if (can.has('bulk_reprioritise')) {
      tr.cells[0].append(el('input', { type: 'checkbox', class: 'select-job', 'data-job': r.id,
        'aria-label': `Select job ${shortId(r.id)}` }));
    }
    setCell(tr, 2, jobLabel(r.id));
    if (can.has('reprioritise')) {
      tr.cells[5].append(el('input', {
        type: 'number', class: 'priority-input', min: ui.options.priority_min, max: ui.options.priority_max,
        'data-job': r.id, 'aria-label': `Priority of job ${shortId(r.id)} (Enter applies)`,
      }));
    }
    if (can.has('cancel')) {
      tr.cells[8].append(el('button', { type: 'button', class: 'danger', 'data-action': 'cancel', 'data-job': r.id,
        'aria-label': `Cancel job ${shortId(r.id)}`, text: 'Cancel' }));
    }
    tr.cells[8].append(el('span', { class: 'error row-error', role: 'alert' }));
    return tr;
  }, (tr, r) => {
    tr.dataset.priority = r.priority;
    tr.dataset.position = r.position;
    tr.classList.toggle('held', r.held);
    tr.hidden = !ui.matchesFilter(r);
    const box = tr.cells[0].querySelector('input');
    if (box) box.checked = ui.selected.has(r.id);
    setText(tr, 1, r.position);
    setText(tr, 3, r.kind);
    setCell(tr, 4, r.dependency, ...(r.held ? [' ', el('span', { class: 'badge held', text: 'held' })] : []));
    const input = tr.cells[5].querySelector('input');
    if (input) {
      if (document.activeElement !== input && !input.dataset.dirty) input.value = r.priority;
    } else setText(tr, 5, r.priority);
    setText(tr, 6, waitingText(r));
    setCell(tr, 7, timeCell(r.created_at));
  });
}

export function renderRunning(tbody, rows) {
  reconcile(tbody, rows, (r) => r.id, (r) => {
    const tr = el('tr', { 'data-id': r.id });
    for (let i = 0; i < 7; i++) tr.append(el('td'));
    setCell(tr, 0, jobLabel(r.id));
    return tr;
  }, (tr, r) => {
    setText(tr, 1, r.kind);
    setText(tr, 2, r.dependency);
    setText(tr, 3, r.priority);
    setText(tr, 4, `${r.attempts + 1} of ${r.max_attempts}`);
    setCell(tr, 5, timeCell(r.started_at));
    setText(tr, 6, r.lease_owner);
  });
}

export function renderFinished(tbody, rows, ui) {
  reconcile(tbody, rows, (r) => r.id, (r) => {
    const tr = el('tr', { 'data-id': r.id });
    for (let i = 0; i < 7; i++) tr.append(el('td'));
    setCell(tr, 0, jobLabel(r.id));
    tr.cells[6].append(el('span', { class: 'error row-error', role: 'alert' }));
    return tr;
  }, (tr, r) => {
    tr.dataset.status = r.status;
    setText(tr, 1, r.kind);
    setCell(tr, 2, el('span', { class: `badge status-${r.status}`, text: r.status }));
    setCell(tr, 3, timeCell(r.finished_at));
    setText(tr, 4, `${r.attempts} of ${r.max_attempts}`);
    const error = tr.cells[5];
    if (error.textContent !== r.last_error) { error.textContent = r.last_error; error.title = r.last_error; }
    const retryable = ui.can.has('retry') && (r.status === 'failed' || r.status === 'cancelled');
    let button = tr.cells[6].querySelector('button');
    if (retryable && !button) {
      button = el('button', { type: 'button', 'data-action': 'retry', 'data-job': r.id,
        'aria-label': `Retry job ${shortId(r.id)}`, text: 'Retry' });
      tr.cells[6].prepend(button);
    } else if (!retryable && button) button.remove();
  });
}

function eventSummary(e) {
  const d = e.details || {};
  if (e.kind === 'reprioritised') return `priority ${d.before} → ${d.after}`;
  if (e.kind === 'held') return d.why || `breaker ${d.dependency}`;
  if (d.error) return d.error;
  if (d.reason) return d.reason;
  if (d.priority !== undefined) return `priority ${d.priority}`;
  return '';
}

const OVERRIDE_KINDS = new Set(['forced_open', 'forced_closed', 'released', 'override_expired']);

function breakerEventSummary(e) {
  const parts = [];
  // Overrides record what callers got before (admit / reject); transitions record states.
  if (!OVERRIDE_KINDS.has(e.kind) && (e.from_state || e.to_state)) parts.push(`${e.from_state || '—'} → ${e.to_state || '—'}`);
  if (e.reason) parts.push(e.reason);
  if (e.expires_at) parts.push(`until ${clockTime(e.expires_at)}`);
  return parts.join(' · ');
}

export function renderEvents(ol, empty, events) {
  empty.hidden = events.length > 0;
  reconcile(ol, events, (e) => String(e.id), (e) => {
    if (e.source === 'breaker') {
      return el('li', { class: `event breaker-event kind-${e.kind}` },
        timeCell(e.at), ' ', el('span', { class: 'breaker-name', text: `breaker ${e.breaker}` }), ' ',
        el('strong', { text: e.kind.replaceAll('_', ' ') }), ' ',
        el('span', { class: 'muted', text: `by ${e.actor}` }), ' ', el('span', { text: breakerEventSummary(e) }));
    }
    if (e.count > 1) {  // a hold: one held event per job, written at once, as one line
      return el('li', { class: `event kind-${e.kind} event-group`, 'data-count': e.count },
        timeCell(e.at), ' ', el('strong', { text: `${e.kind} ${e.count.toLocaleString()} jobs` }), ' ',
        el('span', { class: 'muted', text: `by ${e.actor}` }), ' ', el('span', { text: eventSummary(e) }));
    }
    return el('li', { class: `event kind-${e.kind}` },
      timeCell(e.at), ' ', jobLabel(e.job), ' ', el('strong', { text: e.kind }), ' ',
      el('span', { class: 'muted', text: `by ${e.actor}` }), ' ', el('span', { text: eventSummary(e) }));
  }, () => {});
}

export const BREAKER_ACTIONS = [
  ['breaker_force_open', 'Force open'],
  ['breaker_force_closed', 'Force closed'],
  ['breaker_release', 'Release'],
];

const STATE_WORDS = { closed: 'Closed', open: 'Open', 'half-open': 'Half-open' };

function countText(n, bound) {
  if (bound === 'estimate') return `≈ ${n.toLocaleString()}`;
  if (bound === 'at_least') return `${(n - 1).toLocaleString()}+`;
  return n.toLocaleString();
}

function countdown(iso) {
  return el('time', { datetime: iso, title: clockTime(iso), 'data-relative': iso, text: relative(iso) });
}

// What the breaker does to calls right now, in words (the state word is on the badge).
function breakerStatus(b) {
  const o = b.override;
  if (o) return o.state === 'open' ? ['Rejecting every call (forced).'] : ['Admitting every call (forced); failures still counted.'];
  if (b.state === 'closed') return ['Admitting calls.'];
  if (b.state === 'half-open') return b.trial ? ['One trial call running.'] : ['Ready for a trial call.'];
  if (b.ready_to_test) return ['Ready for a trial call.'];
  if (b.retry_at) return ['Trial call ', countdown(b.retry_at), ` (at ${clockTime(b.retry_at)}).`];
  return ['Rejecting calls.'];
}

// A clock time always says its zone ("14:02:31 UTC", "15:02:31 GMT+1"): the operator's browser
// zone, named, so two people on a call in different zones can compare.
export function clockTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false, timeZoneName: 'short' });
}

function stat(label, ...value) {
  return el('div', { class: 'stat' }, el('dt', { text: label }), el('dd', {}, ...value));
}

// The rate limit and how much of it is in use: all of it (the next start waits: when, and the
// jobs it holds) or not (a call may start now).
function rateUse(f, bound) {
  if (!f.rate_limit) return ['—'];
  if (!f.rate_next_start) return [f.rate_limit, el('span', { class: 'rate-use muted', text: ' · room now' })];
  return [f.rate_limit, el('span', { class: 'rate-use' }, ' · all in use, next start ', countdown(f.rate_next_start),
    f.held_by_rate ? ` · ${countText(f.held_by_rate, bound)} held` : '')];
}

// Flow control on the card: calls in flight against the allowance (and why, and the jobs the
// limit holds), the cap, the rate and its use.
function flowStats(f, bound) {
  if (!f) return [];
  const allowance = f.allowance === null ? 'no limit' : `${f.allowance}${f.allowance_reason ? ` (${f.allowance_reason.replace('_', ' ')})` : ''}`;
  const heldByLimit = f.held_by_limit ? ` · ${countText(f.held_by_limit, bound)} held` : '';
  const stats = [stat('In flight', el('span', { class: 'in-flight', text: `${f.in_flight} / ${allowance}${heldByLimit}` })),
    stat('Cap', f.max_concurrency ?? '—'), stat('Rate', ...rateUse(f, bound))];
  if (f.adaptive_limit !== null) stats.push(stat('Adaptive', `${f.adaptive_limit} (${f.adaptive.min}–${f.adaptive.max})`));
  const change = f.adaptive_change;
  if (change) {
    // Why the adaptive limit last moved: "8 → 4: 503 from downstream, 12s ago".
    stats.push(stat('Last change', el('span', { class: 'adaptive-change', text: `${change.from} → ${change.to}: ${change.cause}, ` }),
      countdown(change.at)));
  }
  return stats;
}

// When the breaker stopped admitting, and for an override who did it ("forced 3m ago by
// user:alice"), instead of a bare "—" (a forced-open breaker's automatic state never opened).
function openedText(b) {
  const o = b.override;
  if (o?.state === 'open' && o.at) return ['forced ', countdown(o.at), ` by ${o.actor || 'unknown'}`];
  if (b.opened_at) return [countdown(b.opened_at)];
  return ['—'];
}

export function renderBreakers(container, empty, breakers, ui) {
  empty.hidden = breakers.length > 0;
  reconcile(container, breakers, (b) => b.name, (b) => {
    const id = `breaker-${b.name}`;
    const card = el('article', { class: 'card breaker', 'data-breaker': b.name, 'aria-labelledby': id },
      el('header', { class: 'breaker-head' },
        el('h3', { id, text: b.name }),
        el('span', { class: 'breaker-state' })),
      el('p', { class: 'breaker-status' }),
      el('div', { class: 'breaker-override', hidden: true }),
      el('dl', { class: 'breaker-stats' }));
    if (ui.can.has('breaker_force_open')) {
      const controls = el('div', { class: 'breaker-controls', role: 'group', 'aria-label': `Override breaker ${b.name}` });
      for (const [action, label] of BREAKER_ACTIONS) {
        controls.append(el('button', { type: 'button', class: `override-button ${action}`, 'data-breaker-action': action,
          'data-breaker': b.name, 'aria-haspopup': 'dialog', 'aria-label': `${label} breaker ${b.name}`, text: label }));
      }
      if (ui.can.has('breaker_limits')) {
        controls.append(el('button', { type: 'button', class: 'override-button breaker_limits', 'data-limits': b.name,
          'aria-haspopup': 'dialog', 'aria-label': `Limits of ${b.name}`, text: 'Limits…' }));
      }
      card.append(controls, el('p', { class: 'error row-error', role: 'alert' }));
    }
    return card;
  }, (card, b) => {
    const o = b.override;
    card.dataset.state = b.state;
    card.dataset.shadowState = b.shadow_state;
    card.dataset.override = o ? o.state : '';
    card.querySelector('.breaker-state').replaceChildren(
      el('span', { class: `badge state state-${o ? `forced-${o.state}` : b.state}`,
        text: o ? `Forced ${o.state}` : STATE_WORDS[b.state] || b.state }));
    card.querySelector('.breaker-status').replaceChildren(...breakerStatus(b));
    const box = card.querySelector('.breaker-override');
    box.hidden = !o;
    if (o) {
      const shadow = STATE_WORDS[b.shadow_state]?.toLowerCase() || b.shadow_state;
      box.replaceChildren(
        el('p', { class: 'override-line' },
          el('span', { class: 'override-label', text: 'Override' }), ' ',
          el('q', { class: 'override-reason', text: o.reason || 'no reason given' })),
        el('p', { class: 'muted override-meta' }, `by ${o.actor || 'unknown'} · `,
          ...(o.expires_at ? ['lifts ', countdown(o.expires_at), ` (at ${clockTime(o.expires_at)})`] : ['until released'])),
        el('p', { class: 'shadow', text: `Automatic state would be ${shadow}.` }));
    } else box.replaceChildren();
    const release = card.querySelector('button.breaker_release');
    if (release) {  // nothing to release without an override
      release.disabled = !o;
      release.title = o ? '' : 'No override in force';
    }
    const retry = b.state === 'open' && !o && b.retry_at && !b.ready_to_test ? [countdown(b.retry_at)] : ['—'];
    card.querySelector('.breaker-stats').replaceChildren(
      stat('Held jobs', el('span', { class: 'held-count', 'data-held': b.held, text: countText(b.held ?? 0, b.held_bound) })),
      stat('Failures', `${b.failures ?? 0} / ${b.threshold ?? '?'}`),
      stat('Opened', ...openedText(b)),
      stat('Retry', ...retry),
      ...flowStats(b.flow, b.held_bound));
    const limits = card.querySelector('button[data-limits]');
    if (limits) limits.dataset.flow = JSON.stringify(b.flow || {});
  });
}

// Between snapshots, keep "3s ago" / "in 5s" texts and countdowns moving.
export function tickRelativeTimes(root = document) {
  for (const node of root.querySelectorAll('[data-relative]')) node.textContent = relative(node.dataset.relative);
}

// Finding jobs beyond the live state: the search box and every finished job, page by page.
// Both read the REST API (GET /api/jobs/ with the session's cookie) and show its 400 messages.

import { clockTime, el, jobLabel } from './render.js';

const FINAL = ['succeeded', 'failed', 'cancelled'];

// A dotted key nests: "customer.id" -> {customer: {id: value}}.
function nest(key, value) {
  return key.split('.').reduceRight((inner, part) => ({ [part]: inner }), value);
}

function jsonOrText(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// What the box holds, as the API's filters: a JSON object or `key:value` -> payload_contains,
// anything else -> id_prefix (the server says what an id prefix must be).
export function queryFilters(text) {
  const q = text.trim();
  if (q.startsWith('{')) return { payload_contains: q };
  const colon = q.indexOf(':');
  if (colon > 0) {
    const key = q.slice(0, colon).trim();
    return { payload_contains: JSON.stringify(nest(key, jsonOrText(q.slice(colon + 1).trim()))) };
  }
  return { id_prefix: q };
}

// The API's 400: {"field": ["message", ...], ...} -> "field: message".
function errorText(body, status) {
  if (body && typeof body === 'object') {
    if (body.detail) return body.detail;
    const parts = Object.entries(body).filter(([, v]) => Array.isArray(v)).map(([k, v]) => `${k}: ${v.join(' ')}`);
    if (parts.length) return parts.join('; ');
  }
  return `HTTP ${status}`;
}

async function fetchPage(filters, page) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) {
    for (const v of [].concat(value)) params.append(key, v);
  }
  if (page > 1) params.set('page', String(page));
  const response = await fetch(`/api/jobs/?${params}`, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  let body = null;
  try {
    body = await response.json();
  } catch { /* not JSON: the status says enough */ }
  if (!response.ok) throw new Error(errorText(body, response.status));
  return body;
}

function timeText(iso) {
  return iso ? el('time', { datetime: iso, title: iso, text: `${new Date(iso).toLocaleDateString()} ${clockTime(iso)}` }) : '—';
}

function jobRow(job, timeField) {
  return el('tr', { 'data-id': job.id, 'data-status': job.status },
    el('td', {}, jobLabel(job.id)), el('td', { text: job.kind }),
    el('td', {}, el('span', { class: `badge status-${job.status}`, text: job.status })),
    el('td', {}, timeText(job[timeField])));
}

// A list that loads page 1 for a filter and appends the next page on "More".
function pagedList({ results, tbody, count, more, error, timeField, describe }) {
  let filters = null;
  let page = 0;
  let token = 0; // a newer search wins over an older one still loading

  async function load(next) {
    const mine = ++token;
    more.disabled = true;
    error.textContent = '';
    try {
      const body = await fetchPage(filters, next);
      if (mine !== token) return;
      page = next;
      if (page === 1) tbody.replaceChildren();
      tbody.append(...body.results.map((job) => jobRow(job, timeField)));
      results.hidden = false;
      count.textContent = describe(body.count, tbody.rows.length);
      more.hidden = !body.next;
    } catch (exc) {
      if (mine !== token) return;
      error.textContent = exc.message;
      if (page === 0) results.hidden = true;
    } finally {
      if (mine === token) more.disabled = false;
    }
  }

  more.addEventListener('click', () => load(page + 1));
  return {
    show(newFilters) {
      filters = newFilters;
      page = 0;
      return load(1);
    },
  };
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;
}

export function wireFind() {
  const $ = (id) => document.getElementById(id);
  const search = pagedList({
    results: $('find-results'), tbody: $('find-table').tBodies[0], count: $('find-count'),
    more: $('find-more'), error: $('find-error'), timeField: 'created_at',
    describe: (total, shown) => (total ? `${plural(total, 'matching job')}, ${shown.toLocaleString()} shown` : 'No job matches.'),
  });
  const input = $('find-query');
  $('find-form').addEventListener('submit', (event) => {
    event.preventDefault();
    input.removeAttribute('aria-invalid');
    search.show(queryFilters(input.value)).then(() => {
      if ($('find-error').textContent) input.setAttribute('aria-invalid', 'true');
    });
  });

  const history = pagedList({
    results: $('history'), tbody: $('history-table').tBodies[0], count: $('history-count'),
    more: $('history-more'), error: $('history-error'), timeField: 'finished_at',
    describe: (total, shown) => `${plural(total, 'finished job')}, ${shown.toLocaleString()} shown`,
  });
  const open = $('history-open');
  open.addEventListener('click', () => {
    open.hidden = true;
    history.show({ status: FINAL.join(','), ordering: 'newest' }).then(() => {
      if ($('history-error').textContent) open.hidden = false;
      else $('history-h').scrollIntoView({ block: 'nearest' });
    });
  });
}

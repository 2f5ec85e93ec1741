// A job's history as a timeline: every event from GET /api/jobs/{id}/ in order, each with its
// local date, time and zone, who did it, what it says and how long after the step before it.

import { clockTime, el } from './render.js';

export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function detailsText(details) {
  const entries = Object.entries(details || {});
  return entries.map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ');
}

function stamp(iso) {
  const date = new Date(iso);
  return el('time', { class: 'tl-at', datetime: iso, title: iso }, `${date.toLocaleDateString()} ${clockTime(iso)}`);
}

export function renderTimeline(events) {
  const ol = el('ol', { class: 'timeline', 'aria-label': 'History, oldest first' });
  let previous = null;
  for (const e of events) {
    const at = new Date(e.at).getTime();
    const gap = previous === null ? null : at - previous;
    ol.append(el('li', { class: `tl-event kind-${e.kind}`, 'data-kind': e.kind },
      el('p', { class: 'tl-head' }, stamp(e.at), ' ', el('strong', { class: 'tl-kind', text: e.kind.replaceAll('_', ' ') }), ' ',
        el('span', { class: 'tl-actor muted', text: `by ${e.actor || 'unknown'}` })),
      gap === null ? el('p', { class: 'tl-gap muted', text: 'first step' }) : el('p', { class: 'tl-gap muted', text: `+${duration(gap)} after the step before` }),
      ...(e.details && Object.keys(e.details).length ? [el('p', { class: 'tl-details', text: detailsText(e.details) })] : [])));
    previous = at;
  }
  if (!events.length) ol.append(el('li', { class: 'muted', text: 'No events.' }));
  return ol;
}

// The whole history in one line: "4 events over 3.2 s".
export function totalText(events) {
  if (events.length < 2) return '';
  return `${events.length} events over ${duration(new Date(events.at(-1).at) - new Date(events[0].at))}`;
}

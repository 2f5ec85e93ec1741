// The change stream: applies one `changes` message to the state, as dashboard/changes.py's
// apply() (the reference) does. Lists are keyed by `name` (breakers) or `id`; queue rows arrive
// without what their place says (position, held, held_ahead, a "N jobs ahead" waiting_for),
// which is filled in here.

const LISTS = { breakers: 'name', queue: 'id', running: 'id', finished: 'id', events: 'id' };
const WHOLE = ['counts', 'estimated'];
const POSITIONAL = new Set(['next', 'jobs_ahead']);

export function queueExpand(rows) {
  let heldSoFar = 0;
  rows.forEach((row, index) => {
    const position = index + 1;
    let waiting = row.waiting_for;
    if (!waiting || POSITIONAL.has(waiting.reason)) {
      waiting = row.waiting_for = position > 1 ? { reason: 'jobs_ahead', jobs_ahead: position - 1 } : { reason: 'next', jobs_ahead: 0 };
    }
    row.position = position;
    row.held = waiting.reason === 'breaker_open';
    row.held_ahead = heldSoFar;
    heldSoFar += row.held ? 1 : 0;
  });
}

// `upsert` packed as {cols, rows} when its rows share their keys.
function unpack(upsert) {
  if (Array.isArray(upsert)) return upsert;
  return upsert.rows.map((values) => Object.fromEntries(upsert.cols.map((col, i) => [col, values[i]])));
}

// `order`: runs [start, count] of the old list and, for new rows, indexes into `upsert`.
function listApply(rows, change, field) {
  const upsert = unpack(change.upsert || []);
  const byKey = new Map(rows.map((row) => [String(row[field]), row]));
  for (const row of upsert) byKey.set(String(row[field]), row);
  if (!change.order) return rows.map((row) => byKey.get(String(row[field])));
  const out = [];
  for (const part of change.order) {
    if (Array.isArray(part)) {
      const [start, count] = part;
      for (const row of rows.slice(start, start + count)) out.push(byKey.get(String(row[field])));
    } else out.push(upsert[part]);
  }
  return out;
}

function seriesApply(old, change) {
  if ('series' in change) return change.series;
  const shift = change.end - old.end;
  const series = { end: change.end, seconds: old.seconds };
  for (const name of ['succeeded', 'failed']) {
    const values = old[name].slice(shift).concat(new Array(shift).fill(0)).slice(0, change.from);
    series[name] = values.concat(change[name]);
  }
  return series;
}

export function applyChanges(state, changes) {
  for (const key of WHOLE) if (key in changes) state[key] = changes[key];
  for (const [key, field] of Object.entries(LISTS)) {
    if (!(key in changes)) continue;
    state[key] = listApply(state[key], changes[key], field);
    if (key === 'queue') queueExpand(state.queue);
  }
  if ('throughput' in changes) state.throughput = seriesApply(state.throughput, changes.throughput);
  return state;
}

// Entry point: holds the live state (the last snapshot with every change since applied, in
// `seq` order) and wires socket, rendering, chart and actions.

import { DashboardSocket, socketUrl } from './socket.js';
import { applyChanges } from './changes.js';
import { clock, renderBreakers, renderEvents, renderFinished, renderQueue, renderRunning, renderTotals, tickRelativeTimes } from './render.js';
import { renderChart } from './chart.js';
import { handleReply, wireActions, wireJobAddress } from './actions.js';
import { wireRoving } from './roving.js';
import { wireFind } from './find.js';

const $ = (id) => document.getElementById(id);
const options = JSON.parse($('dashboard-options').textContent);

const ui = {
  options,
  can: new Set(),
  selected: new Set(),
  state: null,
  seq: null, // of the state shown; null while waiting for a snapshot
  socket: null,
  filter() {
    const filter = {};
    const dependency = $('filter-dependency').value;
    const kind = $('filter-kind').value;
    const priority = $('filter-priority').value;
    if (dependency) filter.dependency = dependency;
    if (kind) filter.kind = kind;
    if (priority !== '') filter.priority = Number(priority);
    return filter;
  },
  matchesFilter(row) {
    const f = this.filter();
    return (!f.dependency || row.dependency === f.dependency) && (!f.kind || row.kind === f.kind)
      && (f.priority === undefined || row.priority === f.priority);
  },
  rerender() {
    if (this.state) render(this.state);
  },
};

function fillSelect(select, values) {
  for (const value of values) select.append(new Option(value, value));
}
fillSelect($('filter-dependency'), options.dependencies);
fillSelect($('filter-kind'), options.kinds);

function render(state) {
  renderTotals($('totals'), state.counts, state.estimated || []);
  renderChart($('chart'), $('chart-caption'), state.throughput);
  renderBreakers($('breakers'), $('breakers-empty'), state.breakers, ui);
  renderQueue($('queue').tBodies[0], state.queue, ui);
  $('queue-empty').hidden = state.queue.length > 0;
  renderRunning($('running').tBodies[0], state.running);
  $('running-empty').hidden = state.running.length > 0;
  renderFinished($('finished').tBodies[0], state.finished, ui);
  $('finished-empty').hidden = state.finished.length > 0;
  renderEvents($('events'), $('events-empty'), state.events);
  // Drop selections of jobs that left the queue.
  const pending = new Set(state.queue.map((row) => row.id));
  for (const id of ui.selected) if (!pending.has(id)) ui.selected.delete(id);
}

function setStatus(status, wait) {
  document.body.dataset.socket = status;
  $('conn-text').textContent = status === 'open' ? 'Live'
    : status === 'reconnecting' ? `Reconnecting in ${Math.ceil(wait / 1000)}s…` : 'Connecting…';
}

function onMessage(message) {
  if (message.type === 'hello') {
    ui.seq = null; // a new connection: its snapshot comes next
    ui.can = new Set(message.actions);
    document.body.dataset.user = message.user;
    // CSS shows `.needs-<action>` controls only under `body.can-<action>`.
    for (const name of [...document.body.classList]) if (name.startsWith('can-')) document.body.classList.remove(name);
    for (const action of ui.can) document.body.classList.add(`can-${action}`);
    // Controls are built per row from permissions: rebuild the tables.
    for (const id of ['queue', 'finished']) $(id).tBodies[0].replaceChildren();
    $('breakers').replaceChildren();
  } else if (message.type === 'snapshot') {
    clock.offset = new Date(message.at).getTime() - Date.now();
    ui.state = message.state;
    ui.seq = message.seq;
    render(message.state);
    document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots || 0) + 1);
    document.body.dataset.seq = String(ui.seq);
  } else if (message.type === 'changes') {
    if (ui.seq === null) return; // a resync is on its way
    if (message.seq !== ui.seq + 1) {
      // A gap (a message lost or dropped): ask for the whole state; ignore changes until it comes.
      ui.seq = null;
      ui.socket.send({ action: 'resync' });
      document.body.dataset.resyncs = String(Number(document.body.dataset.resyncs || 0) + 1);
      return;
    }
    clock.offset = new Date(message.at).getTime() - Date.now();
    applyChanges(ui.state, message.changes);
    ui.seq = message.seq;
    render(ui.state);
    document.body.dataset.seq = String(ui.seq);
  } else {
    handleReply(message);
  }
}

// For debugging from the console (and the browser tests): the live state and the socket.
window.resilientDashboard = ui;
ui.socket = new DashboardSocket(socketUrl('/ws/dashboard/'), { onMessage, onStatus: setStatus });
wireActions(ui);
wireJobAddress();
wireFind();
// One tab stop per queue row; one per list elsewhere (arrow keys inside).
wireRoving($('queue').tBodies[0], { perRow: true });
for (const list of [$('running').tBodies[0], $('finished').tBodies[0], $('events'), $('find-table').tBodies[0], $('history-table').tBodies[0]]) {
  wireRoving(list);
}
ui.socket.connect();
setInterval(() => tickRelativeTimes(), 1000);

// A hand-written SVG chart: completions and failures per second over the last 10 minutes.

const NS = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 120;

function line(values, max, className) {
  const step = values.length > 1 ? WIDTH / (values.length - 1) : WIDTH;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(HEIGHT - 4 - (v / max) * (HEIGHT - 16)).toFixed(1)}`);
  const path = document.createElementNS(NS, 'polyline');
  path.setAttribute('points', points.join(' '));
  path.setAttribute('class', className);
  path.setAttribute('vector-effect', 'non-scaling-stroke');
  return path;
}

function sum(values, last) {
  return values.slice(-last).reduce((a, b) => a + b, 0);
}

export function renderChart(svg, caption, throughput) {
  if (!throughput) return;
  const { succeeded, failed } = throughput;
  const max = Math.max(1, ...succeeded, ...failed);
  const label = document.createElementNS(NS, 'text');
  label.setAttribute('x', '4');
  label.setAttribute('y', '12');
  label.setAttribute('class', 'chart-label');
  label.textContent = `peak ${max}/s`;
  svg.replaceChildren(line(succeeded, max, 'ok'), line(failed, max, 'bad'), label);
  const okMinute = sum(succeeded, 60);
  const badMinute = sum(failed, 60);
  caption.textContent =
    `Last minute: ${okMinute} completed, ${badMinute} failed (${(okMinute / 60).toFixed(1)}/s and ${(badMinute / 60).toFixed(1)}/s). ` +
    `Last 10 minutes: ${sum(succeeded, 600)} completed, ${sum(failed, 600)} failed.`;
}

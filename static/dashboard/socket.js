// The dashboard socket: connects, reconnects with capped exponential backoff and jitter, and
// reports its status. Every connection starts with a snapshot of the whole state, so a
// reconnect needs no replay.

// Close codes after which reconnecting cannot help (dashboard/consumers.py): 4001 the session
// ended, 4003 the account may no longer use the dashboard. Reloading lets the page decide: sign
// in again, or 403.
const ENDED = new Set([4001, 4003]);

export class DashboardSocket {
  constructor(url, { onMessage, onStatus, onEnded = () => location.reload(), minDelay = 500, maxDelay = 10000 } = {}) {
    this.url = url;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onEnded = onEnded;
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.delay = minDelay;
    this.ws = null;
    this.timer = null;
  }

  connect() {
    clearTimeout(this.timer);
    this.onStatus?.('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.delay = this.minDelay;
      this.onStatus?.('open');
    });
    ws.addEventListener('message', (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      this.onMessage?.(message);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ENDED.has(event.code)) {
        this.onStatus?.('ended');
        this.onEnded?.(event.code);
        return;
      }
      const wait = this.delay * (0.75 + Math.random() * 0.25);
      this.delay = Math.min(this.delay * 2, this.maxDelay);
      this.onStatus?.('reconnecting', wait);
      this.timer = setTimeout(() => this.connect(), wait);
    });
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }
}

export function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

/**
 * The page `converge serve` shows at `/`: counters (from /status, refreshed every second), the
 * episode timeline (one bar per quiescence report, its length the episode's duration) and the live
 * change feed (/feed, server-sent events). One self-contained document: no external resources.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Converge</title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: light dark; --fg: #1d2330; --muted: #6b7280; --line: #d9dde5; --accent: #2563eb; --bg: #fff; --card: #f6f7f9; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e5e7eb; --muted: #9ca3af; --line: #374151; --accent: #60a5fa; --bg: #111827; --card: #1f2937; } }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: var(--fg); background: var(--bg); }
  header { display: flex; gap: 1rem; align-items: baseline; padding: 1rem 1.5rem; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 1.2rem; margin: 0; }
  #state { font-weight: 600; }
  #connection { margin-left: auto; color: var(--muted); }
  main { display: grid; grid-template-columns: minmax(18rem, 1fr) 2fr; gap: 1.5rem; padding: 1.5rem; }
  section { background: var(--card); border-radius: 8px; padding: 1rem; min-width: 0; }
  h2 { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted); margin: 0 0 0.75rem; }
  dl { display: grid; grid-template-columns: 1fr auto; gap: 0.25rem 1rem; margin: 0; }
  dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
  #timeline { display: flex; align-items: flex-end; gap: 2px; height: 80px; border-bottom: 1px solid var(--line); }
  #timeline div { background: var(--accent); width: 8px; min-height: 2px; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 0.2rem 0.5rem; border-bottom: 1px solid var(--line); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 28rem; }
  .muted { color: var(--muted); }
  .wide { grid-column: 1 / -1; }
</style>
</head>
<body>
<header><h1>Converge</h1><span id="state">…</span><span id="episode" class="muted"></span><span id="connection">connecting…</span></header>
<main>
  <section><h2>Counters</h2><dl id="counters"></dl></section>
  <section><h2>Episodes</h2><div id="timeline" title="one bar per episode; height = duration"></div><p id="episodes" class="muted">no episode yet</p></section>
  <section class="wide"><h2>Live feed <span id="feed-count" class="muted"></span></h2>
    <table><thead><tr><th>seq</th><th>kind</th><th>page</th><th>source</th><th>subscription</th><th>skipped</th></tr></thead><tbody id="feed"></tbody></table>
  </section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const fmt = (n) => typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
let changes = 0;
function cell(row, text) { const td = document.createElement('td'); td.textContent = text ?? ''; row.appendChild(td); }
async function refresh() {
  try {
    const res = await fetch('/status', { cache: 'no-store' });
    const { status, episodes } = await res.json();
    $('state').textContent = status.state;
    $('episode').textContent = status.episodeId ?? '';
    const rows = { ...status.counters, subscriptions: status.subscriptions, 'in flight': status.inFlight, deferred: status.deferred, 'handlers running': status.handlersRunning };
    $('counters').replaceChildren(...Object.entries(rows).flatMap(([k, v]) => { const dt = document.createElement('dt'); dt.textContent = k; const dd = document.createElement('dd'); dd.textContent = fmt(v); dd.dataset.counter = k; return [dt, dd]; }));
    const longest = Math.max(1, ...episodes.map((e) => e.durationMs));
    $('timeline').replaceChildren(...episodes.slice(-60).map((e) => { const bar = document.createElement('div'); bar.style.height = Math.max(2, (e.durationMs / longest) * 78) + 'px'; bar.title = e.episodeId + ': ' + e.durationMs.toFixed(1) + ' ms, ' + e.counters.eventsReceived + ' events'; return bar; }));
    if (episodes.length > 0) { const last = episodes[episodes.length - 1]; $('episodes').textContent = episodes.length + (episodes.length === 1 ? ' episode' : ' episodes') + '; last ' + last.episodeId + ' settled in ' + last.durationMs.toFixed(1) + ' ms'; }
  } catch { $('state').textContent = 'unreachable'; }
}
refresh();
setInterval(refresh, 1000);
const feed = new EventSource('/feed');
feed.addEventListener('hello', () => { $('connection').textContent = 'live'; });
feed.addEventListener('error', () => { $('connection').textContent = 'reconnecting…'; });
feed.addEventListener('quiescence', () => refresh());
feed.addEventListener('gap', (message) => {
  const { missed } = JSON.parse(message.data);
  const row = document.createElement('tr');
  const td = document.createElement('td');
  td.colSpan = 6;
  td.className = 'muted';
  td.textContent = '… ' + fmt(missed) + ' changes not shown: they came in faster than the feed is read';
  row.appendChild(td);
  $('feed').prepend(row);
  changes += missed;
});
feed.addEventListener('change', (message) => {
  const entry = JSON.parse(message.data);
  const row = document.createElement('tr');
  for (const text of [String(entry.seq), entry.kind, entry.pageId, entry.sourceId, entry.subscriptionId ?? '', entry.skippedReason ?? '']) cell(row, text);
  $('feed').prepend(row);
  while ($('feed').children.length > 200) $('feed').lastChild.remove();
  $('feed-count').textContent = '(' + fmt(++changes) + ')';
});
</script>
</body>
</html>
`;

// The console's page: markup only (no inline script or style: the CSP allows neither); app.ts
// fills it with textContent.
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>immudb-audit console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script type="module" src="/app.js"></script>
</head>
<body>
<header>
  <h1>Audit trail</h1>
  <p id="state" class="state" aria-live="polite">not searched yet</p>
</header>
<main>
<section id="writers" hidden>
  <h2>Writers</h2>
  <div id="writers-body"></div>
</section>
<form id="filters" autocomplete="off">
  <label>Consumer <input name="consumer" placeholder="id, username or custom id"></label>
  <label>Route <input name="route" placeholder="id or name"></label>
  <label>Service <input name="service" placeholder="id or name"></label>
  <label>Method <input name="method" placeholder="GET"></label>
  <label>Path prefix <input name="path" placeholder="/api/payments"></label>
  <label>Status <input name="status" placeholder="401,403 or 4xx"></label>
  <label>Result <select name="result"><option value="">any</option><option value="success">success</option><option value="failure">failure</option></select></label>
  <label>Client IP <input name="client_ip" placeholder="203.0.113.7"></label>
  <label>Node <input name="node" placeholder="Kong node id"></label>
  <label>Trace <input name="trace" placeholder="32 hex"></label>
  <label>Since <input name="since" placeholder="24h or 2026-12-01T00:00:00Z"></label>
  <label>Until <input name="until" placeholder="(now)"></label>
  <button type="submit" id="search">Search</button>
</form>
<p id="error" class="error" role="alert" hidden></p>
<section>
  <h2>Requests over time</h2>
  <div id="chart" class="chart"></div>
  <p class="legend"><span class="key total"></span> requests <span class="key c4xx"></span> 4xx <span class="key kong"></span> 401/403 from Kong <span class="key c5xx"></span> 5xx</p>
</section>
<section>
  <h2>Entries</h2>
  <p id="count"></p>
  <div class="scroll">
  <table id="results">
    <thead><tr><th>Time</th><th>Tx</th><th>Method</th><th>Path</th><th>Status</th><th>Result</th><th>Consumer</th><th>Client IP</th><th>Route</th><th>Audit id</th></tr></thead>
    <tbody></tbody>
  </table>
  </div>
  <nav class="pager"><button type="button" id="prev" disabled>Previous page</button> <button type="button" id="next" disabled>Next page</button></nav>
</section>
<section id="entry" hidden>
  <h2>Entry <span id="entry-id"></span></h2>
  <div id="verification"></div>
  <p class="actions"><a id="trace-link" hidden rel="noopener noreferrer" target="_blank">Open its trace</a> <a id="download" download title="the entry with its proofs and the signed state: check it offline with immudb-audit verify-bundle">Download its evidence bundle</a></p>
  <table id="fields"><thead><tr><th>Field</th><th>Value</th></tr></thead><tbody></tbody></table>
</section>
</main>
</body>
</html>
`;

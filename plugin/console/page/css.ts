// The console's style sheet (served as /app.css: the CSP allows no inline style).
export const PAGE_CSS = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #59636e; --line: #d1d9e0; --bad: #b3261e; --warn: #9a6700; --ok: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: #f6f8fa; }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--line); padding: 8px 16px; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 8px; }
.state { margin: 4px 0 0; color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; }
.state.failed { color: #fff; background: var(--bad); padding: 2px 6px; font-weight: 700; }
main { padding: 12px 16px; display: grid; grid-template-columns: minmax(0, 1fr); gap: 12px; }
#writers-body { overflow-x: auto; }
section, form { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px; }
form { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 8px; align-items: end; }
label { display: grid; gap: 2px; font-size: 12px; color: var(--muted); }
input, select, button { font: inherit; padding: 4px 6px; border: 1px solid var(--line); border-radius: 4px; }
button { background: #1f6feb; color: #fff; border-color: #1f6feb; cursor: pointer; }
button:disabled { background: #eaeef2; color: var(--muted); border-color: var(--line); cursor: default; }
.error { color: var(--bad); font-weight: 600; margin: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; unicode-bidi: isolate; }
th { font-size: 12px; color: var(--muted); }
td { font-family: ui-monospace, monospace; font-size: 12px; max-width: 420px; overflow-wrap: anywhere; }
#results td { white-space: nowrap; }
#results td:nth-child(4), #results td:nth-child(7) { white-space: normal; overflow-wrap: anywhere; min-width: 16em; }
#fields td:first-child { white-space: nowrap; color: var(--muted); }
.suspicious { background: #fff8c5; }
.pager { margin-top: 8px; }
.chart svg { width: 100%; height: auto; max-height: 240px; }
.bar.total { fill: #9ec5fe; }
.bar.c4xx { fill: #f0a43a; }
.bar.kong { fill: #8250df; }
.bar.c5xx { fill: var(--bad); }
.axis { font: 10px system-ui, sans-serif; fill: var(--muted); }
.legend { font-size: 12px; color: var(--muted); }
.key { display: inline-block; width: 10px; height: 10px; margin-left: 8px; }
.key.total { background: #9ec5fe; } .key.c4xx { background: #f0a43a; } .key.kong { background: #8250df; } .key.c5xx { background: var(--bad); }
.verdict { padding: 8px 10px; border-radius: 4px; margin-bottom: 8px; font-weight: 600; }
.verdict.ok { background: #dafbe1; color: var(--ok); }
.verdict.failed { background: var(--bad); color: #fff; font-size: 16px; }
.verdict.first-contact { background: #fff1c2; color: var(--warn); border: 2px solid var(--warn); }
.checks { margin: 0 0 8px; padding-left: 18px; }
.halted { color: var(--bad); font-weight: 700; }
.actions a { margin-right: 12px; }
`;

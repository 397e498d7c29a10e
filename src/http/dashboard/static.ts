/** The dashboard's only stylesheet and script (served from /ui/static: the CSP allows nothing inline). */
export const APP_CSS = `
:root { --fg: #1b1f24; --muted: #5b6470; --line: #d5dae0; --good: #1a7f37; --bad: #b42318; --neutral: #4b5563; --bg: #f7f8fa; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1rem; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
header .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
nav { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
nav a { color: var(--accent); }
nav .who { color: var(--muted); margin-left: 1rem; }
main { padding: 1rem 1.5rem; max-width: 1400px; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
table.compact { width: auto; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .6rem; font-size: .85rem; border: 1px solid currentColor; }
.badge.good { color: var(--good); } .badge.bad { color: var(--bad); font-weight: 600; } .badge.neutral { color: var(--neutral); }
.muted { color: var(--muted); }
.flash { padding: .5rem .8rem; border-radius: .3rem; background: #fff; border: 1px solid var(--line); }
.flash.ok { border-color: var(--good); } .flash.error { border-color: var(--bad); color: var(--bad); }
.card { background: #fff; border: 1px solid var(--line); padding: 1rem; max-width: 44rem; display: grid; gap: .5rem; }
.filters { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; margin: 1rem 0; }
.filters .field { display: grid; gap: .2rem; }
form.inline { display: inline-flex; gap: .3rem; align-items: center; margin: .15rem .4rem .15rem 0; flex-wrap: wrap; }
.decide { display: flex; flex-wrap: wrap; }
button { font: inherit; padding: .25rem .7rem; border: 1px solid var(--accent); background: #fff; color: var(--accent); border-radius: .3rem; cursor: pointer; }
button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid #f59e0b; outline-offset: 1px; }
input, select { font: inherit; padding: .2rem .35rem; }
.grid { display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start; }
.counts { display: flex; gap: .8rem; flex-wrap: wrap; } .count { text-decoration: none; color: var(--fg); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.svc.down { color: var(--bad); font-weight: 600; } .svc.up { color: var(--good); }
ol.timeline { padding-left: 1.3rem; } pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow: auto; max-height: 30rem; }
svg.bars .b0 { fill: #9aa4b2; } svg.bars .b1 { fill: var(--accent); } svg.bars .lim { stroke: var(--bad); stroke-width: 2; }
svg.machine { background: #fff; border: 1px solid var(--line); max-width: 100%; height: auto; }
svg.machine .st rect { fill: #fff; stroke: #9aa4b2; } svg.machine .st.visited rect { stroke: var(--accent); stroke-width: 2; }
svg.machine .st.current rect { fill: #fff4d6; stroke: #b45309; stroke-width: 4; } svg.machine text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg.machine .st.visited text { font-weight: 700; } svg.machine .edge { stroke: #c3cad3; fill: none; } svg.machine .edge.taken { stroke: var(--accent); stroke-width: 2; }
`;

/** Live updates without reload: elements with data-live are refreshed from that URL every 5 s. */
export const APP_JS = `
'use strict';
(function () {
  var live = document.querySelectorAll('[data-live]');
  if (live.length === 0) return;
  setInterval(function () {
    live.forEach(function (el) {
      fetch(el.getAttribute('data-live'), { credentials: 'same-origin', headers: { accept: 'text/html' } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (t) { if (t !== null && t !== el.innerHTML) el.innerHTML = t; })
        .catch(function () { /* next round */ });
    });
  }, 5000);
})();
`;

/**
 * The patch machine drawn on the server as SVG (no script, no internet): the top-level states on a
 * grid in the diagram's order, the transitions between them, the current state outlined and
 * labelled "(now)", the states already visited in bold and the transitions taken highlighted.
 */
import { escape } from './html.ts';

interface Graph {
  nodes: { id: string; parent: string | null; final: boolean }[];
  edges: { source: string; target: string; event: string }[];
}

const COLS = 5;
const W = 170;
const H = 40;
const GX = 60;
const GY = 46;

export function machineSvg(g: Graph, current: string, path: string[]): string {
  const tops = g.nodes.filter((n) => n.parent === null);
  const pos = new Map(
    tops.map((n, i) => [n.id, { x: 20 + (i % COLS) * (W + GX), y: 20 + Math.floor(i / COLS) * (H + GY) }]),
  );
  const top = (id: string) => id.split('.')[0]!;
  const visited = new Set(path.map(top));
  const taken = new Set<string>();
  for (let i = 1; i < path.length; i++) taken.add(`${top(path[i - 1]!)}>${top(path[i]!)}`);
  const pairs = new Map<string, string[]>();
  for (const e of g.edges) {
    const a = top(e.source);
    const b = top(e.target);
    if (a === b || !pos.has(a) || !pos.has(b)) continue;
    pairs.set(`${a}>${b}`, [...(pairs.get(`${a}>${b}`) ?? []), e.event]);
  }
  const rows = Math.ceil(tops.length / COLS);
  const width = 40 + COLS * W + (COLS - 1) * GX;
  const height = 40 + rows * H + (rows - 1) * GY;
  const parts: string[] = [
    `<svg class="machine" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="patch state machine, current state ${escape(current)}">`,
  ];
  parts.push(
    '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a3"/></marker></defs>',
  );
  for (const [k, events] of pairs) {
    const [a, b] = k.split('>') as [string, string];
    const p = pos.get(a)!;
    const q = pos.get(b)!;
    const x1 = p.x + W / 2;
    const y1 = p.y + H / 2;
    const x2 = q.x + W / 2;
    const y2 = q.y + H / 2;
    // Stop the line at the target box's edge.
    const dx = x2 - x1;
    const dy = y2 - y1;
    const t = Math.min(
      Math.abs(dx) > 0 ? W / 2 / Math.abs(dx) : Infinity,
      Math.abs(dy) > 0 ? H / 2 / Math.abs(dy) : Infinity,
    );
    parts.push(
      `<line class="edge${taken.has(k) ? ' taken' : ''}" x1="${x1}" y1="${y1}" x2="${(x2 - dx * t).toFixed(1)}" y2="${(y2 - dy * t).toFixed(1)}" marker-end="url(#arr)"><title>${escape(`${a} → ${b}: ${[...new Set(events)].join(', ')}`)}</title></line>`,
    );
  }
  for (const n of tops) {
    const p = pos.get(n.id)!;
    const cls = ['st', visited.has(n.id) ? 'visited' : '', n.id === current ? 'current' : ''].filter(Boolean).join(' ');
    const label = `${n.id}${n.final ? ' ◉' : ''}${n.id === current ? ' (now)' : ''}`;
    parts.push(
      `<g class="${cls}" data-state="${escape(n.id)}"><rect x="${p.x}" y="${p.y}" width="${W}" height="${H}" rx="8"/><text x="${p.x + W / 2}" y="${p.y + H / 2 + 4}" text-anchor="middle">${escape(label)}</text></g>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

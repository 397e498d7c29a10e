/**
 * The patch machine as a directed graph (from `xstate/graph`), for `GET /queue/{id}/inspect` and
 * for `docs/patch-machine.md` (a Mermaid diagram generated from the machine, checked in CI).
 */
import { toDirectedGraph } from 'xstate/graph';
import type { AnyStateMachine } from 'xstate';

export interface GraphNode {
  id: string;
  parent: string | null;
  initial: string | null;
  final: boolean;
  /** The state's `description`, where its name alone would mislead. */
  description: string | null;
}
export interface GraphEdge {
  source: string;
  target: string;
  event: string;
  guard: string | null;
}

interface DNode {
  id: string;
  stateNode: { type: string; description?: string; initial?: { target?: { id: string }[] } };
  children: DNode[];
  edges: {
    source: { id: string };
    target: { id: string };
    label: { text: string };
    transition: { guard?: { type?: string; params?: unknown } | ((...a: unknown[]) => unknown) };
  }[];
}

/** Human names for internal xstate event types in diagrams. */
export function eventLabel(type: string): string {
  const done = /^xstate\.done\.actor\.(\w+)/.exec(type);
  if (done) return `${done[1]} done`;
  const err = /^xstate\.error\.actor\.(\w+)/.exec(type);
  if (err) return `${err[1]} error`;
  return type;
}

export function machineGraph(machine: AnyStateMachine): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const root = toDirectedGraph(machine) as unknown as DNode;
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const strip = (id: string) => id.replace(/^patch\.?/, '') || '(root)';
  const walk = (n: DNode, parent: string | null) => {
    const id = strip(n.id);
    if (n.id !== 'patch') {
      const initial = n.stateNode.initial?.target?.[0] ? strip(n.stateNode.initial.target[0].id) : null;
      nodes.push({
        id,
        parent,
        initial,
        final: n.stateNode.type === 'final',
        description: n.stateNode.description ?? null,
      });
    }
    for (const e of n.edges) {
      if (e.label.text === 'RESUME') continue; // accepted everywhere, changes nothing
      const g = e.transition.guard;
      const params =
        typeof g === 'object' && g.params && typeof g.params === 'object'
          ? Object.values(g.params as Record<string, unknown>)
              .flat()
              .join('|')
          : '';
      const guard =
        g === undefined
          ? null
          : typeof g === 'function'
            ? 'guarded'
            : `${g.type ?? 'guarded'}${params ? `(${params})` : ''}`;
      edges.push({ source: strip(e.source.id), target: strip(e.target.id), event: eventLabel(e.label.text), guard });
    }
    for (const c of n.children) walk(c, parent === null && n.id === 'patch' ? null : id);
  };
  walk(root, null);
  return { nodes: nodes.filter((x) => x.id !== '(root)'), edges };
}

/** Mermaid `stateDiagram-v2` source of the machine (deterministic: same machine, same text). */
export function toMermaid(machine: AnyStateMachine): string {
  const { nodes, edges } = machineGraph(machine);
  const name = (id: string) => id.replace(/\./g, '__');
  const lines = ['stateDiagram-v2', '  [*] --> queued'];
  const byParent = new Map<string | null, GraphNode[]>();
  for (const n of nodes) byParent.set(n.parent, [...(byParent.get(n.parent) ?? []), n]);
  for (const top of byParent.get(null) ?? []) {
    const kids = byParent.get(top.id) ?? [];
    if (kids.length > 0) {
      lines.push(`  state ${name(top.id)} {`);
      if (top.initial) lines.push(`    [*] --> ${name(top.initial)}`);
      for (const k of kids) lines.push(`    ${name(k.id)} : ${k.id.split('.').pop()}`);
      lines.push('  }');
    }
    if (top.final) lines.push(`  ${name(top.id)} --> [*]`);
  }
  for (const n of nodes) if (n.description) lines.push(`  note right of ${name(n.id)} : ${n.description}`);
  const seen = new Set<string>();
  for (const e of edges) {
    const line = `  ${name(e.source)} --> ${name(e.target)} : ${e.event}${e.guard && e.guard !== 'guarded' ? ` [${e.guard}]` : ''}`;
    if (!seen.has(line)) {
      seen.add(line);
      lines.push(line);
    }
  }
  return `${lines.join('\n')}\n`;
}

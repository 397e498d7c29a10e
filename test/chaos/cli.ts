/** What the chaos harnesses' command lines share: weights of fault kinds, and which code the daemon runs. */
import { execFileSync } from 'node:child_process';

/** `reset=3,stall=2` → { reset: 3, stall: 2 }; an unknown kind or a bad number is an error naming both. */
export function parseWeights<K extends string>(
  text: string | undefined,
  kinds: readonly K[],
): Partial<Record<K, number>> | undefined {
  if (!text) return undefined;
  return Object.fromEntries(
    text.split(',').map((kv) => {
      const [k, v] = kv.split('=');
      if (!kinds.includes(k as K) || !(Number(v) >= 0))
        throw new Error(`--weights: ${kv}: give kind=number, kinds ${kinds.join(' ')}`);
      return [k, Number(v)];
    }),
  ) as Partial<Record<K, number>>;
}

/** "daemon from <commit> [+ N uncommitted file(s) in src/]": a run says which code it measured. */
export function daemonSource(): string {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '?';
    }
  };
  const dirty = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length;
  return `daemon from ${git(['rev-parse', '--short', 'HEAD'])}${dirty > 0 ? ` + ${dirty} uncommitted file(s) in src/` : ''}`;
}

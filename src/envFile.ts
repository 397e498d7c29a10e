/**
 * Environment files that systemd and Node read the same way.
 *
 * The unit reads `/etc/spm-orchestrator/env` with systemd's `EnvironmentFile=`; `doctor` and `.env`
 * go through Node's `util.parseEnv`. The two disagree on inline comments (`A=1  # note` is `1  # note`
 * for systemd, `1` for Node), on backslashes, `export`, backticks and more; a file that only one of
 * them reads as meant makes the service exit 78 while `doctor` says all is well. This module:
 *
 * - parses a file as systemd does ({@link parseSystemdEnvFile}): the state machine of systemd's
 *   `src/basic/env-file.c` (`parse_env_file_internal`, v252-v256) behind the rules systemd.exec(5)
 *   documents for `EnvironmentFile=`, then what `load_env_file` and the executor keep (invalid UTF-8
 *   fails the file, names that are not valid environment names are dropped, the last duplicate wins);
 * - compares that with Node's reading ({@link compareEnvParsers});
 * - writes a file from `.env.example` that both read identically ({@link generateEnvFile}).
 *
 * `scripts/env-file.ts` is its command line (used by scripts/install.sh).
 */
import { isUtf8 } from 'node:buffer';
import { parseEnv } from 'node:util';

const WHITESPACE = ' \t\n\r';
const NEWLINE = '\n\r';
const COMMENTS = '#;';
const SHELL_NEED_ESCAPE = '"\\`$';

export interface SystemdEnv {
  vars: Record<string, string>;
  /** Assignments systemd ignores or reads differently across versions, one line each. */
  warnings: string[];
}

/** systemd's `env_name_is_valid`: letters, digits and '_', not starting with a digit. */
function validName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

/**
 * Parse an environment file as systemd's `EnvironmentFile=` does.
 * @throws Error when systemd would refuse the whole file (invalid UTF-8)
 * @example parseSystemdEnvFile('A=1 # x\nB="2"\n').vars // { A: '1 # x', B: '2' }
 */
export function parseSystemdEnvFile(content: string | Buffer): SystemdEnv {
  if (Buffer.isBuffer(content) && !isUtf8(content)) throw new Error('invalid UTF-8: systemd refuses the file');
  const text = Buffer.isBuffer(content) ? content.toString('utf8') : content;
  const vars: Record<string, string> = {};
  const warnings: string[] = [];
  type State =
    | 'PRE_KEY'
    | 'KEY'
    | 'PRE_VALUE'
    | 'VALUE'
    | 'VALUE_ESCAPE'
    | 'SINGLE_QUOTE_VALUE'
    | 'DOUBLE_QUOTE_VALUE'
    | 'DOUBLE_QUOTE_VALUE_ESCAPE'
    | 'COMMENT'
    | 'COMMENT_ESCAPE';
  let state: State = 'PRE_KEY';
  let key = '';
  let value = '';
  let lastKeyWs = -1;
  let lastValueWs = -1;
  let line = 1;
  let keyLine = 1;

  const push = (stripValue: boolean) => {
    const k = lastKeyWs >= 0 ? key.slice(0, lastKeyWs) : key;
    const v = stripValue && lastValueWs >= 0 ? value.slice(0, lastValueWs) : value;
    if (!validName(k))
      warnings.push(`line ${keyLine}: ${JSON.stringify(k)} is not a valid variable name: systemd ignores it`);
    else vars[k] = v;
    key = '';
    value = '';
  };

  for (const c of text) {
    switch (state) {
      case 'PRE_KEY':
        if (COMMENTS.includes(c)) state = 'COMMENT';
        else if (!WHITESPACE.includes(c)) {
          state = 'KEY';
          lastKeyWs = -1;
          keyLine = line;
          key = c;
        } else if (c === '\n') line++;
        break;
      case 'KEY':
        if (NEWLINE.includes(c)) {
          state = 'PRE_KEY';
          if (c === '\n') line++;
          key = '';
        } else if (c === '=') {
          state = 'PRE_VALUE';
          lastValueWs = -1;
        } else {
          if (!WHITESPACE.includes(c)) lastKeyWs = -1;
          else if (lastKeyWs < 0) lastKeyWs = key.length;
          key += c;
        }
        break;
      case 'PRE_VALUE':
        if (NEWLINE.includes(c)) {
          state = 'PRE_KEY';
          push(false);
          if (c === '\n') line++;
        } else if (c === "'") state = 'SINGLE_QUOTE_VALUE';
        else if (c === '"') state = 'DOUBLE_QUOTE_VALUE';
        else if (c === '\\') state = 'VALUE_ESCAPE';
        else if (!WHITESPACE.includes(c)) {
          state = 'VALUE';
          value += c;
        }
        break;
      case 'VALUE':
        if (NEWLINE.includes(c)) {
          state = 'PRE_KEY';
          push(true);
          if (c === '\n') line++;
        } else if (c === '\\') {
          state = 'VALUE_ESCAPE';
          lastValueWs = -1;
        } else {
          if (!WHITESPACE.includes(c)) lastValueWs = -1;
          else if (lastValueWs < 0) lastValueWs = value.length;
          value += c;
        }
        break;
      case 'VALUE_ESCAPE':
        state = 'VALUE';
        // An escaped newline is a line continuation: eaten.
        if (!NEWLINE.includes(c)) value += c;
        else if (c === '\n') line++;
        break;
      case 'SINGLE_QUOTE_VALUE':
        if (c === "'") state = 'PRE_VALUE';
        else {
          value += c;
          if (c === '\n') line++;
        }
        break;
      case 'DOUBLE_QUOTE_VALUE':
        if (c === '"') state = 'PRE_VALUE';
        else if (c === '\\') state = 'DOUBLE_QUOTE_VALUE_ESCAPE';
        else {
          value += c;
          if (c === '\n') line++;
        }
        break;
      case 'DOUBLE_QUOTE_VALUE_ESCAPE':
        state = 'DOUBLE_QUOTE_VALUE';
        if (SHELL_NEED_ESCAPE.includes(c)) value += c;
        else if (c !== '\n') value += `\\${c}`;
        else line++;
        break;
      case 'COMMENT':
        if (c === '\\') state = 'COMMENT_ESCAPE';
        else if (NEWLINE.includes(c)) {
          state = 'PRE_KEY';
          if (c === '\n') line++;
        }
        break;
      case 'COMMENT_ESCAPE':
        // Before v254 a comment ending in a backslash swallowed the next line too; since v254 the next
        // line is read as an assignment. Either way, the meaning depends on the systemd version.
        if (NEWLINE.includes(c)) {
          warnings.push(
            `line ${line}: a comment ending in a backslash: systemd < 254 also skips the next line, newer versions do not`,
          );
          state = 'PRE_KEY';
          if (c === '\n') line++;
        } else state = 'COMMENT';
        break;
    }
  }
  if (
    [
      'PRE_VALUE',
      'VALUE',
      'VALUE_ESCAPE',
      'SINGLE_QUOTE_VALUE',
      'DOUBLE_QUOTE_VALUE',
      'DOUBLE_QUOTE_VALUE_ESCAPE',
    ].includes(state)
  )
    push(state === 'VALUE');
  return { vars, warnings };
}

export interface EnvDifference {
  name: string;
  systemd: string | undefined;
  node: string | undefined;
}

/** Where systemd's and Node's readings of one file differ (empty: they agree), systemd's warnings and values. */
export function compareEnvParsers(content: string | Buffer): {
  differences: EnvDifference[];
  warnings: string[];
  vars: Record<string, string>;
} {
  const sd = parseSystemdEnvFile(content);
  const node = parseEnv(Buffer.isBuffer(content) ? content.toString('utf8') : content) as Record<string, string>;
  const names = [...new Set([...Object.keys(sd.vars), ...Object.keys(node)])].sort();
  const differences = names
    .filter((n) => sd.vars[n] !== node[n])
    .map((n) => ({ name: n, systemd: sd.vars[n], node: node[n] }));
  return { differences, warnings: sd.warnings, vars: sd.vars };
}

/** A value written so that systemd and Node read it back unchanged. @throws when there is no such form */
export function encodeEnvValue(name: string, value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./~^-]*$/.test(value)) return value;
  if (!value.includes("'") && !/[\n\r]/.test(value)) return `'${value}'`;
  throw new Error(
    `${name}: a value with both a single quote and other special characters cannot be written for both systemd and Node`,
  );
}

/**
 * An environment file from `.env.example`-style text: every comment kept on its own line, each
 * `KEY=value  # note` split into `# note` and `KEY=value` (the value as Node reads it, written in a
 * form systemd reads the same way), `overrides` replacing values (with a note that says so), and
 * variables matching `drop` left out together with the comment lines just above them.
 */
export function generateEnvFile(
  example: string,
  overrides: Record<string, string> = {},
  drop: RegExp | null = null,
  note = 'set by the installer',
): string {
  const out: string[] = [];
  let pendingComments: string[] = [];
  const used = new Set<string>();
  const flush = () => {
    out.push(...pendingComments);
    pendingComments = [];
  };
  for (const raw of example.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(line);
    if (!m) {
      if (line.trim() === '') {
        flush();
        out.push('');
      } else if (/^\s*#/.test(line)) pendingComments.push(line.trim().replace(/\\+$/, ''));
      else throw new Error(`not an assignment or a comment: ${line}`);
      continue;
    }
    const name = m[1]!;
    if (drop?.test(name)) {
      pendingComments = [];
      continue;
    }
    flush();
    const nodeValue = (parseEnv(line) as Record<string, string>)[name] ?? '';
    // The inline note: what follows the value's '#' when the value is not quoted.
    const rest = m[2]!.trimStart();
    const inline = /^['"`]/.test(rest)
      ? null
      : (/\s#\s?(.*)$/.exec(rest)?.[1] ?? (rest.startsWith('#') ? rest.slice(1).trim() : null));
    if (inline) out.push(`# ${inline.trim().replace(/\\+$/, '')}`);
    if (name in overrides) {
      out.push(`# ${note} (default: ${nodeValue === '' ? 'empty' : nodeValue})`);
      out.push(`${name}=${encodeEnvValue(name, overrides[name]!)}`);
      used.add(name);
    } else out.push(`${name}=${encodeEnvValue(name, nodeValue)}`);
  }
  flush();
  for (const [name, value] of Object.entries(overrides))
    if (!used.has(name)) out.push(`# ${note}`, `${name}=${encodeEnvValue(name, value)}`);
  while (out.length > 0 && out.at(-1) === '') out.pop();
  return `${out.join('\n')}\n`;
}

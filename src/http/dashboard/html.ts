/**
 * Server-rendered HTML without a template engine: `html` escapes every interpolated value unless it
 * is itself `html` (or `raw`, for trusted constants only). Arrays are joined.
 */
const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export class Html {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

export function escape(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (ch) => ESC[ch]!);
}

function render(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === null || v === undefined || v === false) return '';
  return escape(v);
}

/** @example html`<p>${userText}</p>` — userText is escaped. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Trusted markup (constants, already-escaped SVG built here). */
export function raw(s: string): Html {
  return new Html(s);
}

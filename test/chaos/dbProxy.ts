/**
 * A TCP proxy between the daemon and PostgreSQL that breaks connections on purpose (the database
 * half of the chaos harness, `npm run chaos:db`). It listens on 127.0.0.1 only and forwards to
 * one upstream server. On command, or at random from a seeded PRNG (`randomCut`), it:
 *
 * - **resets** a connection or all of them (both sockets destroyed; half of the time with a TCP
 *   RST so the client sees ECONNRESET, else a FIN: "Connection terminated unexpectedly");
 * - **stalls** one or all connections: nothing is forwarded for N ms, then everything is delivered;
 * - **blackholes** a connection: nothing is forwarded ever again, until one side closes it. The
 *   client has to notice on its own (a query timeout); `hangingBlackholes()` lists the ones it
 *   has not noticed;
 * - **drops a COMMIT acknowledgement**: the client's COMMIT (simple `Query` or extended `Parse`) is
 *   forwarded, the server's `CommandComplete 'COMMIT'` is held back with its `ReadyForQuery`, and
 *   the connection is cut: the transaction committed, the client never learns it. The same for a
 *   single write outside a transaction (`autocommit_ack`: an INSERT/UPDATE/DELETE whose
 *   `ReadyForQuery` says idle — PostgreSQL committed it at Sync);
 * - takes the database **down** for N ms (`outage`): every connection is reset and new ones are
 *   accepted and dropped at once.
 *
 * Every cut is counted by kind (`counts`). To see message boundaries the proxy parses the wire
 * protocol just enough: the untyped startup packets (SSLRequest, GSSENCRequest, CancelRequest,
 * StartupMessage), then `type byte + int32 length` frames. Server messages of a query cycle (from
 * the client's Sync/Query to the server's ReadyForQuery) are delivered together when the cycle
 * ends, which is when the driver acts on them anyway; messages outside a cycle (notices,
 * notifications) pass at once.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { prng } from '../../src/random.ts';

export type CutKind =
  | 'reset'
  | 'reset_all'
  | 'stall'
  | 'stall_all'
  | 'blackhole'
  | 'commit_ack'
  | 'autocommit_ack'
  | 'outage';
export const CUT_KINDS: readonly CutKind[] = [
  'reset',
  'reset_all',
  'stall',
  'stall_all',
  'blackhole',
  'commit_ack',
  'autocommit_ack',
  'outage',
];

export const DEFAULT_WEIGHTS: Partial<Record<CutKind, number>> = {
  reset: 3,
  reset_all: 1,
  stall: 2,
  stall_all: 1,
  blackhole: 1,
  commit_ack: 2,
  autocommit_ack: 2,
  outage: 1,
};

export interface DbProxyOptions {
  upstreamHost: string;
  upstreamPort: number;
  /** Port to listen on (127.0.0.1); 0 = any free port. */
  port?: number;
  seed?: number;
  /** Relative weights of the random cuts (kinds left out are never chosen). */
  weights?: Partial<Record<CutKind, number>>;
  /** Stall length range (ms) of random stalls. */
  stallMs?: [number, number];
  /** Outage length range (ms) of random outages. */
  outageMs?: [number, number];
  log?: (line: string) => void;
}

export interface LinkInfo {
  id: number;
  appName: string;
  openedAt: number;
  mode: 'flow' | 'stall' | 'blackhole';
  blackholedAt: number | null;
  /** Blackholed while the client waited for an answer, or it asked something since: it hangs. */
  waiting: boolean;
  /** Query cycles the client started that the server has not finished (ReadyForQuery). */
  pending: number;
  /** Chunks held by a stall; server messages held for the current cycle. */
  held: number;
  cycleOut: number;
  lastClientAt: number;
  lastServerAt: number;
  /** The start of the last statement the client sent (evidence: what a hung connection was doing). */
  lastQuery: string;
}

/** What the client asked for in one query cycle (messages up to its Sync, or one simple Query). */
interface CycleRequest {
  commit: boolean;
  writes: boolean;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const COMMIT_SQL = /^\s*(COMMIT|END)(\s+(WORK|TRANSACTION))?\s*;?\s*$/i;
const WRITE_SQL = /\b(INSERT|UPDATE|DELETE|MERGE)\b/i;

function cstring(buf: Buffer, at: number): { s: string; next: number } {
  const end = buf.indexOf(0, at);
  if (end < 0) return { s: buf.toString('utf8', at), next: buf.length };
  return { s: buf.toString('utf8', at, end), next: end + 1 };
}

class Link {
  readonly openedAt = Date.now();
  appName = '';
  mode: 'flow' | 'stall' | 'blackhole' = 'flow';
  blackholedAt: number | null = null;
  waiting = false;
  closed = false;
  lastClientAt = 0;
  lastServerAt = 0;
  lastQuery = '';
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly held: { from: 'client' | 'server'; chunk: Buffer }[] = [];
  // client → server parsing
  private cbuf: Buffer = Buffer.alloc(0);
  private startupDone = false;
  private cycleReq: CycleRequest = { commit: false, writes: false };
  private readonly requests: CycleRequest[] = [];
  // server → client parsing
  private sbuf: Buffer = Buffer.alloc(0);
  private expectSslByte = false;
  private passthrough = false;
  private cycleOut: Buffer[] = [];
  private cycleTags: string[] = [];
  private cycleError = false;
  private lastStatus = 'I';

  readonly id: number;
  readonly client: Socket;
  readonly server: Socket;
  private readonly proxy: DbProxy;

  constructor(id: number, client: Socket, server: Socket, proxy: DbProxy) {
    this.id = id;
    this.client = client;
    this.server = server;
    this.proxy = proxy;
    client.on('data', (c: Buffer) => this.onData('client', c));
    server.on('data', (c: Buffer) => this.onData('server', c));
    const close = () => this.close(false);
    client.on('close', close);
    server.on('close', close);
    client.on('error', () => undefined);
    server.on('error', () => undefined);
  }

  info(): LinkInfo {
    return {
      id: this.id,
      appName: this.appName,
      openedAt: this.openedAt,
      mode: this.mode,
      blackholedAt: this.blackholedAt,
      waiting: this.waiting,
      pending: this.requests.length,
      held: this.held.length,
      cycleOut: this.cycleOut.length,
      lastClientAt: this.lastClientAt,
      lastServerAt: this.lastServerAt,
      lastQuery: this.lastQuery,
    };
  }

  close(rst: boolean): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stallTimer);
    for (const s of [this.client, this.server]) {
      if (rst && typeof s.resetAndDestroy === 'function' && !s.destroyed) {
        try {
          s.resetAndDestroy();
          continue;
        } catch {
          // not connected yet: plain destroy
        }
      }
      s.destroy();
    }
    this.proxy.forget(this);
  }

  stall(ms: number): void {
    if (this.closed || this.mode === 'blackhole') return;
    this.mode = 'stall';
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      if (this.closed || this.mode !== 'stall') return;
      this.mode = 'flow';
      for (const h of this.held.splice(0)) this.process(h.from, h.chunk);
    }, ms);
  }

  blackhole(): void {
    if (this.closed) return;
    clearTimeout(this.stallTimer);
    this.mode = 'blackhole';
    this.blackholedAt = Date.now();
    this.waiting = this.requests.length > 0 || this.held.some((h) => h.from === 'client') || this.cycleHasRequest();
    this.held.length = 0;
  }

  private cycleHasRequest(): boolean {
    return this.cbuf.length > 0 || this.cycleReq.commit || this.cycleReq.writes;
  }

  private onData(from: 'client' | 'server', chunk: Buffer): void {
    if (this.closed) return;
    if (from === 'client') this.lastClientAt = Date.now();
    else this.lastServerAt = Date.now();
    if (this.mode === 'blackhole') {
      if (from === 'client') this.waiting = true;
      return; // read and dropped: a closing peer is still seen
    }
    if (this.mode === 'stall') {
      this.held.push({ from, chunk });
      return;
    }
    this.process(from, chunk);
  }

  private process(from: 'client' | 'server', chunk: Buffer): void {
    if (this.closed) return;
    if (from === 'client') {
      this.observeClient(chunk);
      this.server.write(chunk);
    } else {
      this.fromServer(chunk);
    }
  }

  /** Parse the client's messages (forwarded as they came): startup, cycle boundaries, COMMITs, writes. */
  private observeClient(chunk: Buffer): void {
    if (this.passthrough) return;
    this.cbuf = this.cbuf.length === 0 ? chunk : Buffer.concat([this.cbuf, chunk]);
    for (;;) {
      if (!this.startupDone) {
        if (this.cbuf.length < 8) return;
        const len = this.cbuf.readInt32BE(0);
        if (this.cbuf.length < len) return;
        const code = this.cbuf.readInt32BE(4);
        const body = this.cbuf.subarray(8, len);
        this.cbuf = this.cbuf.subarray(len);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          this.expectSslByte = true;
          continue;
        }
        if (code === CANCEL_REQUEST) {
          this.passthrough = true;
          return;
        }
        for (let at = 0; at < body.length; ) {
          const k = cstring(body, at);
          if (k.s === '') break;
          const v = cstring(body, k.next);
          if (k.s === 'application_name') this.appName = v.s;
          at = v.next;
        }
        this.startupDone = true;
        continue;
      }
      if (this.cbuf.length < 5) return;
      const len = this.cbuf.readInt32BE(1);
      if (this.cbuf.length < 1 + len) return;
      const type = String.fromCharCode(this.cbuf[0]!);
      const body = this.cbuf.subarray(5, 1 + len);
      this.cbuf = this.cbuf.subarray(1 + len);
      if (type === 'Q' || type === 'P') {
        const text = type === 'Q' ? cstring(body, 0).s : cstring(body, cstring(body, 0).next).s;
        this.lastQuery = text.replace(/\s+/g, ' ').trim().slice(0, 100);
        if (COMMIT_SQL.test(text)) this.cycleReq.commit = true;
        if (WRITE_SQL.test(text)) this.cycleReq.writes = true;
      }
      if (type === 'Q' || type === 'S') {
        this.requests.push(this.cycleReq);
        this.cycleReq = { commit: false, writes: false };
      }
    }
  }

  /** Parse the server's messages; hold a cycle's answer until its ReadyForQuery, then deliver or cut. */
  private fromServer(chunk: Buffer): void {
    if (this.passthrough) {
      this.client.write(chunk);
      return;
    }
    this.sbuf = this.sbuf.length === 0 ? chunk : Buffer.concat([this.sbuf, chunk]);
    let direct: Buffer[] = [];
    const flushDirect = () => {
      if (direct.length > 0) this.client.write(direct.length === 1 ? direct[0]! : Buffer.concat(direct));
      direct = [];
    };
    for (;;) {
      if (this.expectSslByte) {
        if (this.sbuf.length < 1) break;
        const b = this.sbuf.subarray(0, 1);
        this.sbuf = this.sbuf.subarray(1);
        this.expectSslByte = false;
        direct.push(b);
        if (b[0] !== 0x4e /* 'N' */) {
          // TLS or GSS encryption: nothing more can be parsed; forward blindly.
          this.passthrough = true;
          direct.push(this.sbuf);
          this.sbuf = Buffer.alloc(0);
          break;
        }
        continue;
      }
      if (this.sbuf.length < 5) break;
      const len = this.sbuf.readInt32BE(1);
      if (this.sbuf.length < 1 + len) break;
      const type = String.fromCharCode(this.sbuf[0]!);
      const msg = this.sbuf.subarray(0, 1 + len);
      this.sbuf = this.sbuf.subarray(1 + len);
      if (this.requests.length === 0) {
        direct.push(msg); // startup, notices, notifications: not part of a cycle
        continue;
      }
      flushDirect();
      if (type === 'C') this.cycleTags.push(cstring(msg, 5).s.split(' ')[0]!.toUpperCase());
      if (type === 'E') this.cycleError = true;
      if (type !== 'Z') {
        this.cycleOut.push(msg);
        continue;
      }
      const status = String.fromCharCode(msg[5] ?? 0x49);
      const req = this.requests.shift()!;
      const was = this.lastStatus;
      this.lastStatus = status;
      const committed = req.commit && this.cycleTags.includes('COMMIT');
      const autocommitted =
        !committed &&
        req.writes &&
        !this.cycleError &&
        was === 'I' &&
        status === 'I' &&
        this.cycleTags.some((t) => t !== 'ROLLBACK');
      const kind: CutKind | null = committed ? 'commit_ack' : autocommitted ? 'autocommit_ack' : null;
      const out = this.cycleOut;
      this.cycleOut = [];
      this.cycleTags = [];
      this.cycleError = false;
      if (kind !== null && this.proxy.takeArmed(kind, this)) {
        // The server has committed; the client never sees it.
        this.close(Math.random() < 0.5);
        return;
      }
      out.push(msg);
      this.client.write(Buffer.concat(out));
    }
    flushDirect();
  }
}

export class DbProxy {
  readonly counts: Record<CutKind, number> = Object.fromEntries(CUT_KINDS.map((k) => [k, 0])) as Record<
    CutKind,
    number
  >;
  /** Connections accepted (and how many were dropped at once during an outage). */
  accepted = 0;
  refused = 0;
  private readonly links = new Set<Link>();
  private readonly armed: Record<'commit_ack' | 'autocommit_ack', number> = { commit_ack: 0, autocommit_ack: 0 };
  private readonly waiters: { kind: 'commit_ack' | 'autocommit_ack'; resolve: () => void }[] = [];
  private downUntil = 0;
  private nextId = 1;
  private server!: Server;
  readonly random: () => number;
  port = 0;

  private readonly o: DbProxyOptions;

  private constructor(o: DbProxyOptions) {
    this.o = o;
    this.random = prng(o.seed ?? 1);
  }

  static async start(o: DbProxyOptions): Promise<DbProxy> {
    const p = new DbProxy(o);
    p.server = createServer({ noDelay: true }, (client) => p.accept(client));
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
    });
    p.port = (p.server.address() as { port: number }).port;
    return p;
  }

  /** `dbUrl` with its host and port pointed at the proxy. */
  url(dbUrl: string): string {
    const u = new URL(dbUrl);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  get cuts(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }

  connections(): LinkInfo[] {
    return [...this.links].map((l) => l.info());
  }

  /** Blackholed connections the client has still not closed after `olderThanMs` (`waiting`: it hangs on them). */
  hangingBlackholes(olderThanMs: number): LinkInfo[] {
    const now = Date.now();
    return this.connections().filter((l) => l.blackholedAt !== null && now - l.blackholedAt > olderThanMs);
  }

  // ------------------------------------------------------------------ commands

  /** Reset one random connection (or the one given). Returns whether one was cut. */
  reset(target?: number): boolean {
    const l = this.pick(target);
    if (!l) return false;
    l.close(this.random() < 0.5);
    this.count('reset', `link ${l.id} (${l.appName || 'pool'})`);
    return true;
  }

  resetAll(): number {
    const all = this.live();
    if (all.length === 0) return 0;
    for (const l of all) l.close(this.random() < 0.5);
    this.count('reset_all', `${all.length} links`);
    return all.length;
  }

  stall(ms: number, target?: number): boolean {
    const l = this.pick(target);
    if (!l) return false;
    l.stall(ms);
    this.count('stall', `link ${l.id} for ${ms} ms`);
    return true;
  }

  stallAll(ms: number): number {
    const all = this.live();
    if (all.length === 0) return 0;
    for (const l of all) l.stall(ms);
    this.count('stall_all', `${all.length} links for ${ms} ms`);
    return all.length;
  }

  blackhole(target?: number): boolean {
    const l = this.pick(target);
    if (!l) return false;
    l.blackhole();
    this.count('blackhole', `link ${l.id} (${l.appName || 'pool'})`);
    return true;
  }

  /**
   * Cut the next connection whose COMMIT (or, `autocommit_ack`, single write) the server
   * acknowledges, after the server committed it. Resolves when that happened.
   */
  dropNextAck(kind: 'commit_ack' | 'autocommit_ack' = 'commit_ack'): Promise<void> {
    this.armed[kind]++;
    return new Promise((resolve) => this.waiters.push({ kind, resolve }));
  }

  /** Disarm pending ack drops (end of a run). */
  disarm(): void {
    this.armed.commit_ack = 0;
    this.armed.autocommit_ack = 0;
  }

  get armedAcks(): number {
    return this.armed.commit_ack + this.armed.autocommit_ack;
  }

  /** The database is unreachable for `ms`: every connection reset, new ones dropped. */
  outage(ms: number): void {
    this.downUntil = Math.max(this.downUntil, Date.now() + ms);
    for (const l of this.live()) l.close(this.random() < 0.5);
    this.count('outage', `${ms} ms`);
  }

  /**
   * One cut chosen by the seeded PRNG among the weighted kinds. Ack drops are armed (counted when
   * they fire); the others take effect at once. Returns the kind, or null when nothing was cut
   * (no connection open).
   */
  randomCut(exclude: readonly CutKind[] = []): CutKind | null {
    const w = this.o.weights ?? DEFAULT_WEIGHTS;
    const kinds = CUT_KINDS.filter((k) => (w[k] ?? 0) > 0 && !exclude.includes(k));
    if (kinds.length === 0) return null;
    const total = kinds.reduce((s, k) => s + (w[k] ?? 0), 0);
    let r = this.random() * total;
    let kind = kinds[kinds.length - 1]!;
    for (const k of kinds) {
      r -= w[k] ?? 0;
      if (r < 0) {
        kind = k;
        break;
      }
    }
    const [s0, s1] = this.o.stallMs ?? [200, 4000];
    const [o0, o1] = this.o.outageMs ?? [500, 12_000];
    const ms = (a: number, b: number) => Math.round(a + (b - a) * this.random() ** 2); // mostly short, sometimes long
    switch (kind) {
      case 'reset':
        return this.reset() ? kind : null;
      case 'reset_all':
        return this.resetAll() > 0 ? kind : null;
      case 'stall':
        return this.stall(ms(s0, s1)) ? kind : null;
      case 'stall_all':
        return this.stallAll(ms(s0, s1)) > 0 ? kind : null;
      case 'blackhole':
        return this.blackhole() ? kind : null;
      case 'commit_ack':
      case 'autocommit_ack':
        void this.dropNextAck(kind);
        return kind;
      case 'outage':
        this.outage(ms(o0, o1));
        return kind;
    }
  }

  /** End every stall now and close every blackholed connection (a FIN both ways): the network is healthy again. */
  heal(): void {
    this.downUntil = 0;
    for (const l of [...this.links]) {
      if (l.mode === 'blackhole') l.close(false);
      else if (l.mode === 'stall') l.stall(0);
    }
  }

  /** Close one connection quietly (a FIN both ways; not counted as a cut). */
  closeLink(id: number): void {
    for (const l of this.links) if (l.id === id) l.close(false);
  }

  async close(): Promise<void> {
    this.disarm();
    for (const l of this.live()) l.close(false);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ------------------------------------------------------------------ internals

  /** @internal */
  forget(l: Link): void {
    this.links.delete(l);
  }

  /** @internal An ack of `kind` is about to be delivered on `l`: cut it instead if armed. */
  takeArmed(kind: 'commit_ack' | 'autocommit_ack', l: Link): boolean {
    if (this.armed[kind] <= 0) return false;
    this.armed[kind]--;
    this.count(kind, `link ${l.id}`);
    const i = this.waiters.findIndex((w) => w.kind === kind);
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve();
    return true;
  }

  private count(kind: CutKind, what: string): void {
    this.counts[kind]++;
    this.o.log?.(`db-proxy: ${kind} ${what}`);
  }

  private live(): Link[] {
    return [...this.links].filter((l) => !l.closed && l.mode !== 'blackhole');
  }

  private pick(target?: number): Link | undefined {
    const live = this.live();
    if (target !== undefined) return live.find((l) => l.id === target);
    if (live.length === 0) return undefined;
    return live[Math.floor(this.random() * live.length)];
  }

  private accept(client: Socket): void {
    this.accepted++;
    if (Date.now() < this.downUntil) {
      this.refused++;
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    const server = createConnection({ host: this.o.upstreamHost, port: this.o.upstreamPort, noDelay: true });
    const link = new Link(this.nextId++, client, server, this);
    this.links.add(link);
  }
}

/**
 * A lab NVD CVE API 2.0 server (the real one is on the internet): `GET /?cveId=…` answers the
 * documented envelope; unknown CVEs answer 200 with `totalResults: 0`; throttling answers 403 (or
 * 429) for the first `throttleFirst` requests. Counts requests and remembers whether `apiKey` was sent.
 * Never imported by production code (src/lab).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LabCve {
  id: string;
  /** metrics as NVD sends them, e.g. { cvssMetricV31: [{ source, type, cvssData: { version, baseScore, vectorString } }] } */
  metrics: Record<string, unknown[]>;
}

export function cvssMetric(
  version: '4.0' | '3.1' | '3.0' | '2.0',
  baseScore: number,
  opts: { source?: string; type?: 'Primary' | 'Secondary' } = {},
) {
  const key = { '4.0': 'cvssMetricV40', '3.1': 'cvssMetricV31', '3.0': 'cvssMetricV30', '2.0': 'cvssMetricV2' }[
    version
  ];
  return {
    key,
    entry: {
      source: opts.source ?? 'nvd@nist.gov',
      type: opts.type ?? 'Primary',
      cvssData: { version, baseScore, vectorString: `CVSS:${version}/AV:N` },
    },
  };
}

export class LabNvd {
  readonly cves = new Map<string, LabCve>();
  requests = 0;
  withApiKey = 0;
  throttleFirst = 0;
  throttleStatus: 403 | 429 = 403;
  malformed = new Set<string>();

  add(id: string, ...metrics: ReturnType<typeof cvssMetric>[]): void {
    const m: Record<string, unknown[]> = {};
    for (const x of metrics) (m[x.key] ??= []).push(x.entry);
    this.cves.set(id, { id, metrics: m });
  }

  serve(): Promise<{ url: string; server: Server }> {
    const server = createServer((req, res) => {
      this.requests++;
      if (req.headers.apikey) this.withApiKey++;
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      };
      if (this.throttleFirst > 0) {
        this.throttleFirst--;
        return send(this.throttleStatus, '');
      }
      const cveId = new URL(req.url ?? '/', 'http://x').searchParams.get('cveId') ?? '';
      if (this.malformed.has(cveId)) return send(200, { totalResults: 'one', vulnerabilities: 'nope' });
      const cve = this.cves.get(cveId);
      const now = '2026-11-22T00:00:00.000';
      send(200, {
        resultsPerPage: cve ? 1 : 0,
        startIndex: 0,
        totalResults: cve ? 1 : 0,
        format: 'NVD_CVE',
        version: '2.0',
        timestamp: now,
        vulnerabilities: cve
          ? [
              {
                cve: {
                  id: cve.id,
                  sourceIdentifier: 'cve@mitre.org',
                  published: now,
                  lastModified: now,
                  vulnStatus: 'Analyzed',
                  descriptions: [],
                  metrics: cve.metrics,
                  weaknesses: [],
                  configurations: [],
                  references: [],
                },
              },
            ]
          : [],
      });
    });
    return new Promise((resolve) =>
      server.listen(0, '127.0.0.1', () =>
        resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
      ),
    );
  }
}

/**
 * Run the lab UYUNI as its own process (as a real UYUNI is another machine): prints its URL on
 * stdout as `lab-uyuni: <url>` and serves until SIGTERM.
 *   node src/lab/uyuniServe.ts --fleet seed|large [--latency-ms 20] [--port 0]
 */
import { parseArgs } from 'node:util';
import { generateFleet, LARGE_SCALE, SEED_SCALE } from './fleet.ts';
import { LabUyuni } from './uyuni.ts';

const { values } = parseArgs({
  options: {
    fleet: { type: 'string', default: 'seed' },
    'latency-ms': { type: 'string', default: '0' },
    port: { type: 'string', default: '0' },
  },
});
const spec = values.fleet === 'large' ? LARGE_SCALE : SEED_SCALE;
const lab = new LabUyuni(generateFleet(spec), { latencyMs: Number(values['latency-ms']) });
const url = await lab.serve(Number(values.port));
process.stdout.write(`lab-uyuni: ${url}\n`);
process.on('SIGTERM', () => void lab.close().then(() => process.exit(0)));

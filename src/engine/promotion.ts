/**
 * The CLM promotion TEST → PROD before production (design §3 phase 6), when
 * `orchestrator_config.clm` names a project: promote once (a re-run finds PROD at TEST's version),
 * then wait until PROD is built.
 */
import type { EffectOut, Effects } from '../machines/patch.machine.ts';
import { loadClm, loadThresholds } from '../services/settings.ts';
import { uyuniCall, type EngineDeps } from './deps.ts';
import { sleep, timing } from './timing.ts';

/** The promote effect. @example const ports = { ...promotionPorts(e) }; */
export function promotionPorts(e: EngineDeps) {
  return {
    async promote(input: Effects['promote']['in'], signal: AbortSignal): Promise<EffectOut<'promote'>> {
      const clm = await loadClm(e.db);
      if (clm.project_label === null) return { skipped: true };
      const project = clm.project_label;
      const { pollMs } = timing(await loadThresholds(e.db));
      const envs = await uyuniCall(e, (s) => s.listProjectEnvironments(project));
      const test = envs.find((x) => x.label === clm.test_environment);
      const prod = envs.find((x) => x.label === clm.prod_environment);
      if (!test || !prod) {
        const missing = !test ? clm.test_environment : clm.prod_environment;
        throw new Error(`CLM project ${project} has no environment ${missing}`);
      }
      if (test.nextEnvironmentLabel !== prod.label) {
        throw new Error(`CLM project ${project}: ${prod.label} does not follow ${test.label}`);
      }
      // Already promoted (a re-run): PROD has TEST's version and is built.
      if (!(prod.version >= test.version && prod.status !== 'building')) {
        try {
          await uyuniCall(e, (s) => s.promoteProject(project, test.label));
        } catch (raw) {
          if (!/already in progress/i.test((raw as Error).message)) throw raw;
        }
      }
      for (;;) {
        const env = await uyuniCall(e, (s) => s.lookupEnvironment(project, prod.label));
        if (env.status === 'failed') throw new Error(`CLM promotion of ${project} to ${prod.label} failed`);
        const built = env.status !== 'building' && env.status !== 'generating_repodata';
        if (built && env.version >= test.version) return { skipped: false };
        await sleep(pollMs, signal);
      }
    },
  };
}

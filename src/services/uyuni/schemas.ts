/** UYUNI XML-RPC reply schemas: replies are validated at the boundary (see client.ts). */
import { z } from 'zod';
import { uyuniDateInstant, uyuniDateText } from './dates.ts';

export class UyuniReplyError extends Error {
  constructor(method: string, issues: z.core.$ZodIssue[]) {
    super(
      `UYUNI ${method}: unexpected reply: ${issues
        .slice(0, 3)
        .map((i) => `${i.path.length ? `reply.${i.path.join('.')}` : 'reply'}: ${i.message}`)
        .join('; ')}`,
    );
    this.name = 'UyuniReplyError';
  }
}

// --------------------------------------------------------------------------- reply schemas
// Timestamps (check-in, action times) as a Date; errata dates as the server's wall-clock text.
const dateish = uyuniDateInstant;
const dateText = uyuniDateText;
export const groupSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  description: z.string().optional(),
  system_count: z.number().int().optional(),
  org_id: z.number().int().optional(),
});
export const systemOverviewSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  last_checkin: dateish.optional(),
});
export const errataOverviewSchema = z.object({
  id: z.number().int(),
  advisory_name: z.string().min(1),
  advisory_type: z.enum(['Security Advisory', 'Bug Fix Advisory', 'Product Enhancement Advisory']),
  advisory_synopsis: z.string().optional(),
  // Spacewalk-lineage servers send none of advisory_status, issue_date, update_date (only `date`, a dateTime).
  advisory_status: z.string().optional(),
  issue_date: dateText.optional(),
  update_date: dateText.optional(),
  date: dateText.optional(),
  last_modified_date: dateText.optional(),
  reboot: z.boolean().optional(),
  reload: z.boolean().optional(),
});
export type ErrataOverview = z.infer<typeof errataOverviewSchema>;
export const packageSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  version: z.string().optional(),
  release: z.string().optional(),
  epoch: z.string().optional(),
  arch_label: z.string().optional(),
  size: z.union([z.number(), z.string()]).optional(),
});
export const errataDetailsSchema = z.object({
  id: z.number().int(),
  synopsis: z.string().optional(),
  description: z.string().optional(),
  type: z.string().optional(),
  issue_date: dateText.optional(),
  update_date: dateText.optional(),
  last_modified_date: dateText.optional(),
  reboot_suggested: z.boolean().optional(),
});

export const actionedSystemSchema = z.object({
  server_id: z.number().int(),
  server_name: z.string().optional(),
  timestamp: dateish.optional(),
  message: z.string().optional(),
});
export type ActionedSystem = z.infer<typeof actionedSystemSchema>;
export const scheduledActionSchema = z.object({
  id: z.number().int(),
  name: z.string().optional(),
  type: z.string().optional(),
  earliest: dateish.optional(),
});
export const installedPackageSchema = z.object({
  name: z.string(),
  version: z.string(),
  release: z.string(),
  epoch: z.string(),
  arch: z.string().optional(),
});
export const clmEnvironmentSchema = z.object({
  id: z.number().int(),
  label: z.string(),
  name: z.string(),
  version: z.number().int(),
  status: z.string(),
  previousEnvironmentLabel: z.string().optional(),
  nextEnvironmentLabel: z.string().optional(),
});
export const systemEventSchema = z.object({
  id: z.number().int(),
  action_type: z.string().optional(),
  name: z.string().optional(),
  completed_date: dateish.optional(),
  pickup_date: dateish.optional(),
  result_msg: z.string().optional(),
});

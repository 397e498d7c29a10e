/**
 * Notifications as a non-admin may see them: a webhook's URL is a credential (whoever has a Slack
 * or Teams webhook URL can post to the channel), so its path and query are hidden, in the recipient
 * and wherever a delivery error quotes it. Email addresses stay.
 */
import { redactUrlSecret, scrubSecrets } from '../../redact.ts';

/**
 * A notification row with its webhook URL redacted (other rows unchanged).
 * @example
 * rows.map(redactNotification) // recipient 'https://hooks.slack.com/[redacted]'
 */
export function redactNotification<T extends Record<string, unknown>>(row: T): T {
  if (row.channel !== 'webhook' || typeof row.recipient !== 'string') return row;
  const error = typeof row.error_message === 'string' ? row.error_message : null;
  return {
    ...row,
    recipient: redactUrlSecret(row.recipient),
    ...(error
      ? { error_message: scrubSecrets(error, [row.recipient]).replace(/https?:\/\/\S+/g, (u) => redactUrlSecret(u)) }
      : {}),
  };
}

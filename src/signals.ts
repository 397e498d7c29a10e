/** Signals that start a graceful shutdown; a second one forces exit. */
export const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

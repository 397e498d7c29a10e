import { describe, expect, it } from 'vitest';
import { backoffDelay, isTransient, TransientError } from './transient.ts';

const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code, severity: 'ERROR' });

describe('isTransient', () => {
  it.each(['08006', '08001', '08P01', '53300', '53100', '57P01', '57P02', '57P03', '40001', '40P01'])(
    'PostgreSQL %s is transient',
    (code) => {
      expect(isTransient(pgError(code))).toBe(true);
    },
  );
  it.each(['23505', '23503', '22P02', '42P01', '42703', '25P02', '57014'])('PostgreSQL %s is permanent', (code) => {
    expect(isTransient(pgError(code))).toBe(false);
  });
  it.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE'])('socket %s is transient, also as a cause', (code) => {
    const sock = Object.assign(new Error(`connect ${code}`), { code });
    expect(isTransient(sock)).toBe(true);
    expect(isTransient(new Error('query failed', { cause: sock }))).toBe(true);
  });
  it('reads the error’s own word first', () => {
    expect(isTransient(new TransientError('UYUNI unreachable'))).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { transient: false, code: 'ECONNRESET' }))).toBe(false);
    expect(isTransient({ message: 'plain object', transient: true })).toBe(true);
  });
  it('knows the drivers’ lost-connection errors', () => {
    expect(isTransient(new Error('Query read timeout'))).toBe(true);
    expect(isTransient(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { name: 'ConnectionError' }))).toBe(true);
  });
  it('anything else is permanent', () => {
    expect(isTransient(new Error('invalid input syntax'))).toBe(false);
    expect(isTransient('a string')).toBe(false);
    expect(isTransient(null)).toBe(false);
    expect(isTransient(undefined)).toBe(false);
  });
});

describe('backoffDelay', () => {
  it('doubles from the base, capped, within the jitter band', () => {
    const p = { baseMs: 100, maxMs: 1000, jitter: 0.5 };
    expect(backoffDelay(1, p, () => 0.5)).toBe(100);
    expect(backoffDelay(3, p, () => 0.5)).toBe(400);
    expect(backoffDelay(10, p, () => 0.5)).toBe(1000);
    expect(backoffDelay(2, p, () => 0)).toBe(100);
    expect(backoffDelay(2, p, () => 0.999999)).toBe(300);
    expect(backoffDelay(1, { baseMs: 100, maxMs: 1000, jitter: 0 }, Math.random)).toBe(100);
  });
});

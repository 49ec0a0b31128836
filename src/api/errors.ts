// Stable API errors and parameter parsing shared by every route module.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply } from 'fastify';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } });
}

export function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

const INT = /^\d{1,15}$/;

export function intParam(value: unknown, name: string): number {
  if (typeof value !== 'string' || !INT.test(value))
    throw new ApiError(400, 'invalid_parameter', `${name} must be a non-negative integer`);
  return Number(value);
}

export function timeParam(value: unknown, name: string): number {
  if (typeof value !== 'string') throw new ApiError(400, 'invalid_parameter', `${name} must be a time`);
  const t = INT.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(t))
    throw new ApiError(400, 'invalid_parameter', `${name} must be an ISO 8601 time or epoch milliseconds`);
  return t;
}

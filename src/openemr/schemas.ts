import { z } from 'zod';

export const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  token_type: z.string().refine((t) => t.toLowerCase() === 'bearer', 'token_type must be Bearer'),
  expires_in: z.coerce.number().positive(),
  scope: z.string().optional(),
});

export const oauthErrorSchema = z.object({
  error: z.string(),
  error_description: z.string().optional(),
  hint: z.string().optional(),
  message: z.string().optional(),
});

const resourceSchema = z.looseObject({ resourceType: z.string(), id: z.string().optional() });

/** OpenEMR search answers: collection bundles, total = entries in this answer, no next link. */
export const searchBundleSchema = z.looseObject({
  resourceType: z.literal('Bundle'),
  type: z.string(),
  total: z.number().optional(),
  entry: z.array(z.looseObject({ resource: resourceSchema.optional() })).optional(),
});

export const singleResourceSchema = resourceSchema;

/** `/metadata`: software.version tells the release; `date` is date-only on OpenEMR (the clock is the Date header). */
export const capabilityStatementSchema = z.looseObject({
  resourceType: z.literal('CapabilityStatement'),
  date: z.string().optional(),
  software: z.looseObject({ name: z.string().optional(), version: z.string().optional() }).optional(),
});

/**
 * transactionTime as OpenEMR writes it: a serialised PHP DateTime object
 * ({"date":"2026-12-01 10:00:00.000000","timezone_type":1,"timezone":"-05:00"}), or a string elsewhere.
 */
const phpDateTimeSchema = z.looseObject({ date: z.string(), timezone_type: z.number().optional(), timezone: z.string().optional() });

/** An export status body (Bulk Data IG) as OpenEMR and other servers write it. */
export const bulkStatusSchema = z.looseObject({
  transactionTime: z.union([z.string(), phpDateTimeSchema]).optional(),
  requiresAccessToken: z.boolean().optional(),
  output: z.array(z.looseObject({ type: z.string(), url: z.string() })).default([]),
  error: z.array(z.looseObject({ type: z.string().optional(), url: z.string().optional() })).default([]),
  deleted: z.array(z.looseObject({ type: z.string().optional(), url: z.string() })).optional(),
});
export type BulkStatus = z.infer<typeof bulkStatusSchema>;

/** A PHP DateTime object as an ISO instant (its timezone is an offset like "-05:00" or a zone name). */
export function phpDateTimeToIso(value: string | { date: string; timezone?: string } | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return Number.isNaN(Date.parse(value)) ? undefined : new Date(Date.parse(value)).toISOString();
  const local = value.date.replace(' ', 'T').replace(/\.\d+$/, '');
  const tz = value.timezone ?? 'Z';
  const offset = /^[+-]\d{2}:\d{2}$/.test(tz) ? tz : tz === 'UTC' || tz === 'Z' ? 'Z' : undefined;
  const ms = offset ? Date.parse(`${local}${offset}`) : NaN;
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

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

/** A line of a deleted[] file: a Bundle of DELETE requests (Bulk Data IG). */
export const deletedBundleSchema = z.looseObject({
  resourceType: z.literal('Bundle'),
  entry: z.array(z.looseObject({ request: z.looseObject({ method: z.string(), url: z.string() }).optional() })).default([]),
});

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

/**
 * A PHP DateTime object as an ISO instant. Its timezone is an offset ("-05:00", timezone_type 1), an
 * abbreviation, or a zone name ("America/New_York", timezone_type 3), whose offset at that wall-clock
 * time is looked up with Intl. Undefined when it cannot be read.
 */
export function phpDateTimeToIso(value: string | { date: string; timezone?: string } | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return Number.isNaN(Date.parse(value)) ? undefined : new Date(Date.parse(value)).toISOString();
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(value.date);
  if (!m) return undefined;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const tz = (value.timezone ?? 'UTC').trim();
  const offset = /^([+-])(\d{2}):?(\d{2})$/.exec(tz);
  if (offset) return new Date(wall - (offset[1] === '-' ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3])) * 60_000).toISOString();
  if (tz === 'UTC' || tz === 'Z' || tz === 'GMT') return new Date(wall).toISOString();
  try {
    // The zone's offset at (about) that instant: format the wall time read as UTC in the zone, compare.
    const shifted = (at: number) => {
      const parts = Object.fromEntries(
        new Intl.DateTimeFormat('en-US', {
          timeZone: tz,
          hourCycle: 'h23',
          year: 'numeric',
          month: '2-digit',
          day: '2-digit',
          hour: '2-digit',
          minute: '2-digit',
          second: '2-digit',
        })
          .formatToParts(at)
          .map((p) => [p.type, p.value]),
      );
      return (
        Date.UTC(
          Number(parts.year),
          Number(parts.month) - 1,
          Number(parts.day),
          Number(parts.hour),
          Number(parts.minute),
          Number(parts.second),
        ) - at
      );
    };
    const guess = wall - shifted(wall);
    return new Date(wall - shifted(guess)).toISOString();
  } catch {
    return undefined;
  }
}

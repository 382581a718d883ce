import { z } from 'zod';

const entryResponse = z.looseObject({
  status: z.string(),
  location: z.string().optional(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  outcome: z.unknown().optional(),
});

export const batchResponseSchema = z.looseObject({
  resourceType: z.literal('Bundle'),
  type: z.enum(['batch-response', 'transaction-response']),
  entry: z.array(z.looseObject({ response: entryResponse, resource: z.unknown().optional() })).default([]),
});

export const storedResourceSchema = z.looseObject({
  resourceType: z.string(),
  id: z.string(),
  meta: z.looseObject({ versionId: z.string().optional(), lastUpdated: z.string().optional() }).optional(),
});

export const searchsetSchema = z.looseObject({
  resourceType: z.literal('Bundle'),
  total: z.number().optional(),
  link: z.array(z.object({ relation: z.string(), url: z.string() })).optional(),
  entry: z
    .array(z.looseObject({ resource: storedResourceSchema.optional(), search: z.looseObject({ mode: z.string().optional() }).optional() }))
    .optional(),
});

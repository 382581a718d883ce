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

export const bulkStatusSchema = z.looseObject({
  transactionTime: z.string(),
  output: z.array(z.object({ type: z.string(), url: z.string() })),
  error: z.array(z.unknown()).optional(),
});

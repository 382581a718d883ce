/**
 * The set-up of the tests that follow a list of resource types (resource-types*.test.ts end to end,
 * openemr-standin-*.test.ts at the source): the stack or stand-ins, the SMART scopes those types
 * need (src/openemr/scopes.ts, as a deployment's default OPENEMR_SCOPES would list them), the
 * connector settings that carry them, and the watch on the connector's writes.
 */
import { syncRunHandler } from '../../functions/sync-run';
import { startStack, type Stack, type StackOptions } from '../../stack';
import { startOpenEmrStandIn, type OpenEmrStandIn, type OpenEmrStandInOptions, type SupportedType } from '../../stack/openemr';
import { defaultScopesFor, readScopesOf } from '../../src/openemr/scopes';
import { invoke, useStack, type Answer } from './functions';
import { mapperFor, targetDiff } from './incremental-stack';
import { fhirGet, getAccessToken, type HttpAnswer } from './openemr-standin-client';
import { unresolvedReferences, watchWrites, type WriteWatch } from './reference-watch';

export interface CarryingStack {
  stack: Stack;
  /** The connector settings of the test (also in process.env, through useStack). */
  settings: Record<string, string>;
  /** Every write sent before what it points at was in the target, and the types' first-write order. */
  watch: WriteWatch;
  /** POST /api/sync/run, with a query. */
  run(query?: Record<string, string>): Promise<Answer>;
  /** Target against the mapped source, over the carried types: all three lists empty when equal. */
  diff(): ReturnType<typeof targetDiff>;
  /** References in the target between carried types that point at nothing it holds. */
  unresolved(): Promise<string[]>;
}

export interface CarryingOptions {
  /** SYNC_TABLE_PREFIX: each test file its own tables. */
  prefix: string;
  /** Types read beside the carried ones (a Patient's "everything" reads its Observations whatever is carried). */
  alsoRead?: readonly SupportedType[];
  /** Settings added to (or overriding) the defaults below. */
  settings?: Record<string, string>;
  stack?: StackOptions;
}

/**
 * Starts a stack (with Azurite) whose connector carries `types`, points the function runtime at it
 * and watches its writes. SYNC_RESOURCE_TYPES lists the types backwards, so the reference order the
 * tests check is the connector's own; OPENEMR_SCOPES is the default a deployment carrying them gets.
 */
export async function startCarryingStack(types: readonly SupportedType[], options: CarryingOptions): Promise<CarryingStack> {
  const stack = await startStack({ azurite: true, ...options.stack });
  const settings = {
    SYNC_TABLE_PREFIX: options.prefix,
    OPENEMR_SCOPES: defaultScopesFor([...types, ...(options.alsoRead ?? [])]),
    SYNC_RESOURCE_TYPES: [...types].reverse().join(','),
    SYNC_LAG_SECONDS: '5',
    AHDS_BATCH_SIZE: '50',
    ...options.settings,
  };
  useStack(stack, settings);
  const watch = await watchWrites(stack, types);
  return {
    stack,
    settings,
    watch,
    run: (query = {}) => invoke(syncRunHandler, { url: 'sync/run', query }),
    diff: () => targetDiff(stack, mapperFor({ ...stack.env, ...settings }), types),
    unresolved: () => unresolvedReferences(stack, types),
  };
}

export interface TypeStandIns {
  /** The stand-in as the newest release, with the default data. */
  openemr: OpenEmrStandIn;
  /** A second stand-in to compare with (another release, or without the directory). */
  beside: OpenEmrStandIn;
  /** The read scopes of the types. */
  scopes: string;
  /** A token of `openemr` holding `scopes`. */
  token: string;
  /** GET on `openemr`'s FHIR API with `token`. */
  get(path: string): Promise<HttpAnswer>;
  /** GET on `beside`'s FHIR API, with a token of its own holding `scopes`. */
  getBeside(path: string): Promise<HttpAnswer>;
  close(): Promise<void>;
}

/** Starts the stand-in and a second one (`beside` options) for a test of how the source serves `types`. */
export async function startTypeStandIns(types: readonly SupportedType[], beside: OpenEmrStandInOptions): Promise<TypeStandIns> {
  const scopes = readScopesOf(types).join(' ');
  const openemr = await startOpenEmrStandIn();
  const other = await startOpenEmrStandIn(beside).catch(async (error: unknown) => {
    await openemr.close();
    throw error;
  });
  const token = await getAccessToken(openemr, scopes);
  let besideToken: string | undefined;
  return {
    openemr,
    beside: other,
    scopes,
    token,
    get: (path) => fhirGet(openemr, path, token),
    getBeside: async (path) => fhirGet(other, path, (besideToken ??= await getAccessToken(other, scopes))),
    close: async () => {
      await openemr.close();
      await other.close();
    },
  };
}

/**
 * OpenEMR's refusals that mean "a setting is wrong", turned into one sentence naming the setting.
 * The bodies are OpenEMR's own (kernel errors `{error, message, code}` and league/oauth2-server
 * errors `{error, error_description, hint}`); the sentences quote only fixed OpenEMR phrases, the
 * configured URL or site, and a scope name the connector itself asked for.
 */
import { z } from 'zod';

const answerBody = z.looseObject({
  error: z.string().optional(),
  message: z.string().optional(),
  hint: z.string().optional(),
  error_description: z.string().optional(),
});

export interface OpenEmrAnswer {
  status: number;
  body: unknown;
}

export interface DiagnosisContext {
  /** The URL that answered (configured, so safe to name). */
  url: string;
  site: string;
  /** The setting that lists scopes: OPENEMR_SCOPES for the connector, --scopes for the helper. */
  scopesSetting: string;
}

const SYSTEM_SCOPES_GLOBAL = "'Enable OpenEMR FHIR System Scopes' (Administration > Globals > Connectors)";

/** A sentence for an answer that points at configuration, or undefined for anything else. */
export function diagnoseOpenEmrAnswer(answer: OpenEmrAnswer, ctx: DiagnosisContext): string | undefined {
  const parsed = answerBody.safeParse(answer.body);
  const body = parsed.success ? parsed.data : {};
  const message = body.message ?? '';
  // SiteSetupListener.php:110
  if (answer.status === 400 && message.includes('api site error')) {
    return `OpenEMR has no site named '${ctx.site}' (it answered 'api site error' at ${ctx.url}): set OPENEMR_SITE to the name of the OpenEMR site directory, usually 'default'.`;
  }
  // OAuth2AuthorizationListener.php:108
  if (answer.status === 404 && message.includes('API is disabled')) {
    return `OpenEMR's APIs are switched off (it answered 'API is disabled' at ${ctx.url}): an administrator must turn on 'Enable OpenEMR Standard FHIR REST API' in Administration > Globals > Connectors.`;
  }
  // The dispatcher answered but has no such route: the FHIR API is off, or the path is not OpenEMR's.
  if (answer.status === 404 && message.includes('Route not found')) {
    return `OpenEMR answered 404 'Route not found' at ${ctx.url}: check OPENEMR_BASE_URL and OPENEMR_SITE, and that an administrator has turned on 'Enable OpenEMR Standard FHIR REST API' (Administration > Globals > Connectors).`;
  }
  // Not OpenEMR at all: the web server's own 404, typically a missing web root.
  if (answer.status === 404) {
    return `OpenEMR answered 404 at ${ctx.url}: set OPENEMR_BASE_URL to OpenEMR's root including its web root (e.g. https://emr.example.org/openemr), so that {root}/apis/${ctx.site}/fhir is its FHIR API.`;
  }
  // league/oauth2-server validateScopes: a scope the server does not know (never silently dropped).
  if (answer.status === 400 && body.error === 'invalid_scope') {
    const scope = /`([^`\s]+)`/.exec(body.hint ?? '')?.[1];
    const named = scope && /^[A-Za-z0-9/*.$_-]+$/.test(scope) ? ` '${scope}'` : '';
    return `OpenEMR does not know the scope${named} that ${ctx.scopesSetting} asks for (400 invalid_scope): releases before 7.0.4 know only SMART v1 scopes (system/Patient.read, not system/Patient.rs), and no system/* scope exists until an administrator turns on ${SYSTEM_SCOPES_GLOBAL}.`;
  }
  return undefined;
}

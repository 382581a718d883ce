import { javaToolchain } from './index';

/** The one line `npm test` prints about the HAPI FHIR tier it does not run. */
export function hapiTierLine(): string {
  const java = javaToolchain();
  return java.ok
    ? `HAPI FHIR tier skipped here: it runs with \`npm run test:hapi\` (${java.summary} found).`
    : `HAPI FHIR tier skipped: it needs Java 17+ and Maven (${java.summary}); \`npm run test:hapi\` runs it where they are.`;
}

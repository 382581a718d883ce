/**
 * The HAPI FHIR tier (`npm run test:hapi`): the connector against a real HAPI FHIR JPA server built
 * from Maven Central (stack/hapi). Needs Java 17 and Maven; one file at a time, since each starts a
 * JVM, and generous timeouts for a loaded 2-core machine.
 * @type {import('jest').Config}
 */
const base = require('./jest.config.js');
module.exports = {
  ...base,
  roots: ['<rootDir>/test/hapi'],
  testPathIgnorePatterns: [],
  globalSetup: '<rootDir>/test/hapi/global-setup.ts',
  setupFilesAfterEnv: ['<rootDir>/test/hapi/timeouts.ts'],
  testTimeout: 600000,
  maxWorkers: 1,
};

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // test/hapi is its own tier (`npm run test:hapi`, jest.hapi.config.js): it needs Java and Maven.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/hapi/'],
  // Type checking runs once in `npm run typecheck`; transpiling alone keeps jest fast.
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  setupFiles: ['<rootDir>/test/helpers/jest-setup.ts'],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 2,
};

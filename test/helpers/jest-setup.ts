// Jest setup shared by every test file: nothing global yet beyond a generous default timeout.
jest.setTimeout(60_000);

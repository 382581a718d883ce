// The HAPI tier runs a JVM that validates every write on a shared 2-core machine: each test gets
// ten minutes (the default tier's jest-setup gives one). Tests assert counts, never times.
jest.setTimeout(600_000);

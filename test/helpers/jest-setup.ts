import { format } from 'node:util';
import { captureLogLine } from './log-capture';

// Everything a test run logs is kept, so global teardown can prove no secret or patient data was.
for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    const line = format(...args);
    captureLogLine(`${level}: ${line}`);
    // Outside the Functions host, @azure/functions says so once per registration; expected here.
    if (level === 'warn' && /"@azure\/functions" package (to|is in) test mode/.test(line)) return;
    original(...args);
  };
}
jest.setTimeout(60_000);

// Outside the Functions host, @azure/functions says so once per registration; that is expected here.
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && /"@azure\/functions" package (to|is in) test mode/.test(args[0])) return;
  warn(...args);
};
jest.setTimeout(60_000);

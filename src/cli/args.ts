import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = ReturnType<
  typeof parseArgs<{ options: O & { help: { type: 'boolean'; short: 'h' } }; strict: true; allowPositionals: false }>
>['values'];

export interface ScriptIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** The first sentence of node's parseArgs error (it goes on about positionals). */
export function optionError(error: unknown): string {
  const message = String((error as Error)?.message ?? error);
  const first = message.split(/\.\s/)[0]!.replace(/\.$/, '');
  return `${first}.`;
}

/**
 * Every script's command line: `--help` (or `-h`) prints the usage and answers 0; an unknown or
 * malformed option prints one line (never a stack trace) and answers 64, the usage exit code; else
 * the values. A number is an exit code for the caller to exit with.
 */
export function commandLine<O extends Options>(argv: string[], options: O, usage: string, io: ScriptIo = process): Values<O> | number {
  let values: Values<O>;
  try {
    values = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values as Values<O>;
  } catch (error) {
    io.stderr.write(`${optionError(error)} Run with --help for the options.\n`);
    return 64;
  }
  if ((values as { help?: boolean }).help) {
    io.stdout.write(`${usage}\n`);
    return 0;
  }
  return values;
}

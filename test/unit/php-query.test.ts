/** The stand-in's reading of a query string, checked against what PHP 8.2's parse_str gives (see php-query.ts). */
import { alternativesOf, parsePhpQuery, phpIntval } from '../../stack/openemr/php-query';

test('a repeated key keeps its last value; key[] collects an array; a later plain value replaces an array', () => {
  const q = parsePhpQuery('_lastUpdated=ge2026-01-01T00:00:00Z&_lastUpdated=lt2026-01-02T00:00:00Z&_count=200');
  expect(Object.fromEntries(q)).toEqual({ _lastUpdated: 'lt2026-01-02T00:00:00Z', _count: '200' });
  expect(Object.fromEntries(parsePhpQuery('a[]=1&a%5B%5D=2'))).toEqual({ a: ['1', '2'] });
  expect(Object.fromEntries(parsePhpQuery('a=1&a[]=2'))).toEqual({ a: ['2'] });
  expect(Object.fromEntries(parsePhpQuery('a[]=1&a=2'))).toEqual({ a: '2' });
});

test('+ is a space, dots and spaces in names become underscores, a bad escape stays as it is', () => {
  expect(Object.fromEntries(parsePhpQuery('x.y=1+2&a%20b=%2B05:00&c=%zz'))).toEqual({ x_y: '1 2', a_b: '+05:00', c: '%zz' });
});

test('intval reads leading digits, else 0; alternatives split arrays and commas', () => {
  expect(['200', '5abc', 'abc', '-3', ''].map(phpIntval)).toEqual([200, 5, 0, -3, 0]);
  expect(alternativesOf(['ge1,lt2', 'eq3'])).toEqual(['ge1', 'lt2', 'eq3']);
});

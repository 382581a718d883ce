/**
 * The query string as OpenEMR sees it: PHP builds `$_GET` with `parse_str` rules before any OpenEMR
 * code runs (apis/.htaccess rewrites to dispatch.php with QSA; master HttpRestRequest::createFromGlobals,
 * 7.0.3 HttpRestRequest.php:155 `$_GET`). So:
 * - a repeated plain key keeps only its LAST value (`_lastUpdated=ge…&_lastUpdated=lt…` is `lt…`);
 * - `key[]=a&key[]=b` (or `key[0]=`) makes an array, which OpenEMR's search fields OR together
 *   (BasicSearchField.php:42 `$isAnd = … false`, SearchFieldStatementResolver.php:140), as it does
 *   with a comma list inside one value;
 * - `+` is a space, `%XX` is decoded, and `.` or a space in a key becomes `_`.
 * The result has one entry per key: a string, or the array's values.
 */
export type PhpQueryValue = string | string[];

function decode(part: string): string {
  const spaced = part.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // PHP's urldecode leaves a malformed escape as it is instead of failing.
    return spaced.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
}

export function parsePhpQuery(search: string): Map<string, PhpQueryValue> {
  const out = new Map<string, PhpQueryValue>();
  const query = search.startsWith('?') ? search.slice(1) : search;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawKey = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1));
    const bracket = rawKey.indexOf('[');
    const closes = bracket > 0 && rawKey.indexOf(']', bracket) > bracket;
    // PHP mangles '.' and ' ' in the base name to '_' (and leading spaces are dropped).
    const base = (closes ? rawKey.slice(0, bracket) : rawKey).replace(/^ +/, '').replace(/[. ]/g, '_');
    if (base === '') continue;
    if (closes) {
      const previous = out.get(base);
      // `key[]=` appends to an array; a plain value met earlier is replaced by the array.
      out.set(base, Array.isArray(previous) ? [...previous, value] : [value]);
    } else {
      out.set(base, value);
    }
  }
  return out;
}

/** PHP's intval on a query value: leading digits (with a sign), else 0; an array counts as 1. */
export function phpIntval(value: PhpQueryValue | undefined): number {
  if (value === undefined) return 0;
  if (Array.isArray(value)) return value.length > 0 ? 1 : 0;
  const m = /^\s*([+-]?\d+)/.exec(value);
  return m ? Number(m[1]) : 0;
}

/**
 * The alternatives one parameter carries: every array element, each split at commas. OpenEMR ORs
 * all of them (SearchRequestNormalizer.php:20, "we treat the parameter as a union search").
 */
export function alternativesOf(value: PhpQueryValue): string[] {
  return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(','));
}

/**
 * The independent de-identification audit (test/helpers/deid-audit.ts) finds a person 90 or older
 * whose birth date was only shifted, two different values for the "90 or older" category, and a
 * young person put into it: without this, its clean verdict on a real target would prove nothing.
 */
import { Deidentifier } from '../../src/mapping/deid';
import { auditDeidentified } from '../helpers/deid-audit';

const KEY = 'deid-audit-ages-key-0123456789abcdef-0123';
const AT = Date.parse('2026-06-15T00:00:00Z');
const deid = new Deidentifier(KEY);
const source = [
  { resourceType: 'Patient', id: 'p-old', birthDate: '1929-12-04' },
  { resourceType: 'Patient', id: 'p-older', birthDate: '1921-03-01' },
  { resourceType: 'Patient', id: 'p-young', birthDate: '1963-11-12' },
];
const written = (birthDates: Record<string, string>) =>
  source.map((p) => ({ resourceType: 'Patient', id: deid.pseudonymId('Patient', p.id), birthDate: birthDates[p.id] }));
const shifted = (birthDate: string, id: string) => {
  const d = new Date(`${birthDate}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + deid.shiftDays(id));
  return d.toISOString().slice(0, 10);
};
const audit = (birthDates: Record<string, string>) => auditDeidentified({ source, written: written(birthDates), key: KEY, at: AT });

test('clean: both over 89 share one year-only birth date, the young one is shifted', () => {
  const a = audit({ 'p-old': '1900', 'p-older': '1900', 'p-young': shifted('1963-11-12', 'p-young') });
  expect(a.ages).toEqual([]);
  expect(a.badDates).toEqual([]);
  expect(a.counts.ninetyOrOlder).toBe(2);
});

test('a person over 89 whose birth date was only shifted, two category values, a young person grouped: each reported', () => {
  expect(audit({ 'p-old': shifted('1929-12-04', 'p-old'), 'p-older': '1900', 'p-young': shifted('1963-11-12', 'p-young') }).ages).toEqual([
    expect.stringMatching(/90 or older at the source, the birth date written says less|written to the day/),
    expect.stringMatching(/different birth dates/),
  ]);
  expect(audit({ 'p-old': '1900', 'p-older': '1901', 'p-young': shifted('1963-11-12', 'p-young') }).ages).toEqual([
    expect.stringMatching(/2 different birth dates for the 90 or older/),
  ]);
  expect(audit({ 'p-old': '1900', 'p-older': '1900', 'p-young': '1900' }).ages).toEqual([
    expect.stringMatching(/under 89.5 at the source, put among the 90 or older/),
  ]);
});

// Pure helpers of the benchmarks: statistics, tables, and the CPU profile summary.
import test from 'ava';
import { checkTarget, fmt, formatTable, median, percentile, ratio, roundDeep, slope, summarize } from '../../bench/lib/stats.js';
import { categoryOfUrl, selfTimes, summarizeProfile, type CpuProfile } from '../../bench/lib/cpuprofile.js';

test('percentiles interpolate between ranks', (t) => {
  t.is(percentile([1, 2, 3, 4], 50), 2.5);
  t.is(percentile([5], 99), 5);
  t.true(Number.isNaN(percentile([], 50)));
  t.is(median([3, 1, 2]), 2);
  t.is(percentile([10, 20, 30, 40, 50], 100), 50);
  const s = summarize([4, 1, 3, 2]);
  t.deepEqual([s.n, s.min, s.max, s.mean], [4, 1, 4, 2.5]);
});

test('ratio, slope and targets', (t) => {
  t.is(ratio(1, 4), 0.25);
  t.true(Number.isNaN(ratio(1, 0)));
  t.is(slope([0, 1, 2], [1, 3, 5]), 2);
  t.true(Number.isNaN(slope([1, 1], [1, 2])));
  t.true(checkTarget('x', 0.95, '>=', 0.9).met);
  t.false(checkTarget('x', NaN, '>=', 0.9).met);
  t.true(checkTarget('x', 3, '<=', 4).met);
});

test('tables align numbers right and text left', (t) => {
  const out = formatTable([{ name: 'a', v: 1234.5 }, { name: 'bbb', v: 2 }]);
  t.is(out, ['name      v', '----  -----', 'a     1,235', 'bbb       2'].join('\n'));
  t.is(fmt(0.12345), '0.12');
  t.is(fmt(NaN), 'n/a');
  t.is(fmt(true), 'yes');
  t.deepEqual(roundDeep({ a: 1.23456789, b: [0.000123456], c: 'x', d: 7 }), { a: 1.235, b: [0.0001235], c: 'x', d: 7 });
});

test('cpu profile: self time, categories by code location, builtins charged to their caller', (t) => {
  const u = (p: string) => `file:///work/main/${p}`;
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 10_000,
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 3, 6] },
      { id: 2, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      { id: 3, callFrame: { functionName: 'encodeEntry', url: u('dist/plugin/capture/encode.js'), lineNumber: 5 }, children: [4] },
      { id: 4, callFrame: { functionName: 'canonicalize', url: u('node_modules/canonicalize/lib/canonicalize.js'), lineNumber: 83 }, children: [5] },
      { id: 5, callFrame: { functionName: 'stringify', url: '', lineNumber: -1 } },
      { id: 6, callFrame: { functionName: 'verifyVerifiableSet', url: u('dist/plugin/store/proofs/verifiable.js'), lineNumber: 60 }, children: [7] },
      { id: 7, callFrame: { functionName: 'digest', url: 'node:internal/crypto/hash', lineNumber: 100 } },
    ],
    // samples at 0, 1, 2, ... ms: each charged the interval to the next sample
    samples: [2, 2, 2, 2, 5, 5, 4, 7, 7, 6],
    timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  };
  const self = selfTimes(profile);
  t.is(self.get(2), 4);
  t.is(self.get(5), 2);
  const s = summarizeProfile(profile, { inclusive: ['encodeEntry', 'verifyVerifiableSet'] });
  t.is(s.totalMs, 10);
  t.is(s.busyMs, 6);
  t.deepEqual(s.categories.map((c) => [c.category, c.ms]), [['canonical JSON', 3], ['proofs+hashing', 3]]);
  t.deepEqual(s.inclusive.map((f) => [f.function, f.ms]), [['encodeEntry', 3], ['verifyVerifiableSet', 3]]);
  t.is(s.topSelf[0]!.frame, 'stringify');
  t.is(s.topSelf[0]!.category, 'canonical JSON');
  t.is(categoryOfUrl(u('node_modules/@grpc/grpc-js/build/src/call.js')), 'gRPC');
  t.is(categoryOfUrl('node:net'), null);
});

// Shared bench harness. Each tinybench sample runs a batch of operations, so that timer
// resolution does not swamp a 100 ns operation; figures are reported per operation.
// Throughput is operations per second over the whole timed run, garbage collection included.
import { Bench } from 'tinybench';

export const quick = process.argv.includes('--quick');

/**
 * Measures `cases` ({ name: () => void, each running `batch` operations}) in one run,
 * interleaved by tinybench. Returns rows { case, opsPerSec, medianNs, p99Ns, samples }.
 */
export async function measure(cases, { batch = 1000, time = quick ? 300 : 2000 } = {}) {
  const bench = new Bench({ time, warmupTime: quick ? 100 : 500, iterations: 10 });
  for (const [name, fn] of Object.entries(cases)) bench.add(name, fn);
  await bench.run();
  return bench.tasks.map((t) => {
    const r = t.result;
    if (r.state !== 'completed')
      throw new Error(
        `bench case ${t.name} did not complete: ${r.state} ${'error' in r ? r.error : ''}`,
      );
    return {
      case: t.name,
      opsPerSec: (batch * 1000) / r.period,
      medianNs: (r.latency.p50 * 1e6) / batch,
      p99Ns: (r.latency.p99 * 1e6) / batch,
      samples: r.latency.samplesCount ?? r.latency.samples?.length ?? 0,
    };
  });
}

/** Ratio of throughputs a/b from rows of one run. */
export function ratio(rows, a, b) {
  const x = rows.find((r) => r.case === a);
  const y = rows.find((r) => r.case === b);
  return x.opsPerSec / y.opsPerSec;
}

/**
 * Prints a table of rows and targets: each target is { label, value, min?, max? } and shows
 * PASS or MISS.
 */
export function report(suite, rows, targets = []) {
  console.log(`\n## ${suite}`);
  console.table(
    rows.map((r) => ({
      case: r.case,
      'ops/s': Math.round(r.opsPerSec).toLocaleString('en'),
      'median ns/op': r.medianNs.toFixed(0),
      'p99 ns/op': r.p99Ns.toFixed(0),
      samples: r.samples,
    })),
  );
  const checked = targets.map((t) => {
    const pass =
      (t.min === undefined || t.value >= t.min) && (t.max === undefined || t.value <= t.max);
    const want =
      t.max === Infinity
        ? 'reference'
        : t.min !== undefined && t.max !== undefined && t.min === t.max
          ? `= ${t.min}`
          : t.min !== undefined
            ? `>= ${t.min}`
            : `<= ${t.max}`;
    return {
      target: t.label,
      measured: Number(t.value.toFixed(3)),
      want,
      result: t.max === Infinity ? '-' : pass ? 'PASS' : 'MISS',
    };
  });
  if (checked.length) console.table(checked);
  return { suite, rows, targets: checked };
}

/**
 * Paired measurement of two cases that differ by a few nanoseconds: `rounds` rounds, each
 * timing `a` then `b` (order alternating), `batch` operations each; returns the median over
 * rounds of time(b) / time(a), which slow drifts of a shared machine cancel out of.
 */
export function paired(a, b, { rounds = quick ? 15 : 61, warmup = 5 } = {}) {
  const ratios = [];
  const time = (fn) => {
    const t0 = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - t0);
  };
  for (let i = 0; i < warmup; i++) {
    a();
    b();
  }
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      const ta = time(a);
      ratios.push(time(b) / ta);
    } else {
      const tb = time(b);
      ratios.push(tb / time(a));
    }
  }
  ratios.sort((x, y) => x - y);
  return ratios[Math.floor(ratios.length / 2)];
}

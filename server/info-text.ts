/** `pinpool info` for a person: what this host gives pinpool, in a few lines. */
import type { Info } from './pinpool.js';

/** 1536 -> '1.5 KiB'. */
export function formatBytes(bytes: number): string {
  if (bytes === Infinity) return 'unlimited';
  if (!Number.isFinite(bytes)) return 'unknown';
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'] as const;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${Number(value.toFixed(1))} ${units[unit] ?? 'TiB'}`;
}

/** CUDA numbers driver versions major * 1000 + minor * 10: 12080 is 12.8. */
function driverText(version: number): string {
  return `${Math.floor(version / 1000)}.${Math.floor((version % 1000) / 10)}`;
}

/**
 * The lines `pinpool info` prints.
 *
 * @example
 * console.log(formatInfo(info()));
 */
export function formatInfo(i: Info): string {
  const lines = [
    `pinpool ${i.version} (Node-API ${i.napiVersion}, handler ABI ${i.abiVersion}, Node ${process.versions.node})`,
  ];
  if (i.cuda.available) {
    const driver =
      i.cuda.driverVersion === undefined ? '' : `, driver ${driverText(i.cuda.driverVersion)}`;
    lines.push(`CUDA: available${driver}, ${i.cuda.devices.length} device(s)`);
    for (const d of i.cuda.devices)
      lines.push(`  device ${d.index}: ${d.name}, ${formatBytes(d.totalBytes)}`);
  } else {
    lines.push(`CUDA: not available (${i.cuda.reason ?? 'no reason given'})`);
    lines.push(
      '  pinned() and managed() fail with ERR_PINPOOL_UNAVAILABLE; the default chain serves from locked or pageable memory',
    );
  }
  lines.push(
    i.memlockPrivileged
      ? `memlock limit: ${formatBytes(i.memlockLimitBytes)} (ulimit -l), but this process has CAP_IPC_LOCK (root has it): the locked handler may page-lock past it`
      : `memlock limit: ${formatBytes(i.memlockLimitBytes)} (the most the locked handler can page-lock; ulimit -l)`,
  );
  const r = i.registry;
  if (r.thisCopy.publisher)
    lines.push(
      `registry: published by this copy (${r.thisCopy.entry}); later copies of pinpool in this process use it`,
    );
  else
    lines.push(
      `registry: pinpool ${r.publisher.version} (${r.publisher.entry}) loaded first; this copy (${r.thisCopy.version}, ${r.thisCopy.entry}) runs its code`,
    );
  if (r.joinError !== undefined) lines.push(`  this copy runs alone: ${r.joinError}`);
  if (r.promoteError !== undefined)
    lines.push(`  other copies cannot find this one: ${r.promoteError}`);
  return lines.join('\n');
}

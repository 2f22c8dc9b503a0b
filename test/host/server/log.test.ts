// The one log of `pinpool serve` (server/log.ts): pino's JSON lines, or one readable line each,
// for the CLI's own lines and for fastify's, which it writes through log.stream.
import { describe, expect, it } from 'vitest';

import { testServer, request } from '../../support/server.js';
// Not public API: the built file, as the CLI loads it.
import { createLog, errorFields, prettyLine } from '../../../dist/server/log.js';

/** A log that keeps what it writes, by output. */
function captured(format: 'json' | 'pretty') {
  const out: string[] = [];
  const err: string[] = [];
  const log = createLog(format, {
    out: { write: (text: string) => out.push(text) },
    err: { write: (text: string) => err.push(text) },
  });
  return { log, out, err };
}

describe('createLog json', () => {
  it("writes pino's shape, one object a line: warnings and errors to stderr", () => {
    const { log, out, err } = captured('json');
    const before = Date.now();
    log.info('pinpool: serving', { url: 'http://127.0.0.1:9464', handlers: ['default'] });
    log.warn('pinpool: SIGINT again');
    log.error(
      'pinpool: listen failed',
      errorFields(Object.assign(new Error('in use'), { code: 'EADDRINUSE' })),
    );
    expect(out).toHaveLength(1);
    expect(err).toHaveLength(2);
    for (const text of [...out, ...err])
      expect(text.endsWith('\n') && !text.slice(0, -1).includes('\n')).toBe(true);
    const info = JSON.parse(out[0]!) as Record<string, unknown>;
    expect(Object.keys(info)).toEqual([
      'level',
      'time',
      'pid',
      'hostname',
      'url',
      'handlers',
      'msg',
    ]);
    expect(info).toMatchObject({
      level: 30,
      pid: process.pid,
      url: 'http://127.0.0.1:9464',
      msg: 'pinpool: serving',
    });
    expect(info.time).toBeGreaterThanOrEqual(before);
    expect(JSON.parse(err[0]!)).toMatchObject({ level: 40, msg: 'pinpool: SIGINT again' });
    expect(JSON.parse(err[1]!)).toMatchObject({
      level: 50,
      err: { type: 'Error', message: 'in use', code: 'EADDRINUSE' },
    });
  });

  it("passes fastify's lines through as they are, by level", () => {
    const { log, out, err } = captured('json');
    const line = '{"level":30,"time":1,"pid":2,"hostname":"h","reqId":"req-1","msg":"hello"}';
    const failure = '{"level":50,"time":1,"pid":2,"hostname":"h","msg":"request failed"}';
    log.stream.write(`${line}\n`);
    log.stream.write(`${failure}\n`);
    expect(out).toEqual([`${line}\n`]);
    expect(err).toEqual([`${failure}\n`]);
  });
});

describe('createLog pretty', () => {
  it('writes time, level, message and key=value fields, one line each', () => {
    const { log, out, err } = captured('pretty');
    log.info('pinpool: serving\nwith a break', {
      url: 'http://127.0.0.1:9464',
      demo: true,
      scopes: { ingest: 'locked' },
      note: 'two words',
    });
    log.stream.write(
      '{"level":50,"time":0,"pid":2,"hostname":"h","reqId":"req-1","msg":"request failed"}\n',
    );
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}pinpool: serving\\nwith a break url=http:\/\/127\.0\.0\.1:9464 demo=true scopes=\{"ingest":"locked"\} note="two words"\n$/,
    );
    expect(err).toEqual(['1970-01-01T00:00:00.000Z ERROR request failed reqId=req-1\n']);
  });

  it('formats a record without pid and hostname, whatever its fields', () => {
    expect(prettyLine({ level: 40, time: 0, pid: 1, hostname: 'h', msg: 'm', n: 3, v: null })).toBe(
      '1970-01-01T00:00:00.000Z WARN  m n=3 v=null',
    );
  });

  it("carries fastify's own lines: a scope switch logged with its request id", async () => {
    const { log, out } = captured('pretty');
    const c = testServer({ adminToken: 'pretty-token-0123456789', logger: { stream: log.stream } });
    c.controller.scope('ingest', 'plain');
    const res = await request(c, {
      method: 'PUT',
      url: '/v1/scopes/ingest',
      headers: { authorization: 'Bearer pretty-token-0123456789' },
      payload: { handler: 'cache' },
    });
    expect(res.statusCode).toBe(200);
    await c.close();
    const line = out.find((l) => l.includes('scope switched'));
    expect(line).toMatch(
      /^\S+Z INFO {2}pinpool: scope switched .*reqId=\S+ .*scope=ingest from=plain to=cache/,
    );
    expect(out.every((l) => !l.startsWith('{'))).toBe(true);
  });
});

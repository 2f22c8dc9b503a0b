/**
 * Refuses requests whose Host header names anything but this service (403), before any route
 * runs. A web page on another origin can make a browser talk to 127.0.0.1 through a host name
 * it controls (DNS rebinding); the Host header is the one thing such a request cannot fake.
 */
import type { AddressInfo } from 'node:net';

import type { FastifyPluginAsync } from 'fastify';
import { HttpError } from '../errors.js';
import { unencapsulated } from '../unencapsulated.js';

export interface HostAllowlistOptions {
  /** Host names accepted, without a port: IPv6 addresses may be given with or without brackets. */
  hostnames: readonly string[];
  /** The configured port; the bound one (port 0 picks one) is accepted too once listening. */
  port: number;
}

/** `[::1]` for an IPv6 address, lower case for names: the form a Host header uses. */
export function hostnameForm(host: string): string {
  const h = host.toLowerCase();
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/** Splits a Host header into name and port; undefined when it is not a well-formed one. */
function parseHost(header: string): { hostname: string; port: number | undefined } | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(header);
  const [, hostname, port] = m ?? [];
  if (hostname === undefined) return undefined;
  return { hostname: hostname.toLowerCase(), port: port === undefined ? undefined : Number(port) };
}

const hostAllowlist: FastifyPluginAsync<HostAllowlistOptions> = async (fastify, options) => {
  const hostnames = new Set(options.hostnames.map(hostnameForm));
  const acceptedPort = (port: number): boolean =>
    port === options.port || port === (fastify.server.address() as AddressInfo | null)?.port;

  fastify.addHook('onRequest', async (request) => {
    const header = request.headers.host;
    const host = header === undefined ? undefined : parseHost(header);
    if (
      host === undefined ||
      !hostnames.has(host.hostname) ||
      (host.port !== undefined && !acceptedPort(host.port))
    ) {
      throw new HttpError(
        403,
        'ERR_HOST_NOT_ALLOWED',
        'this service answers only to its own address and localhost, and to the names it was' +
          ' given: `pinpool serve --allow-host NAME`, or `allowedHosts` in createServer()',
      );
    }
  });
};

/** Shares the root scope, so the check covers every route and the not-found handler. */
export default unencapsulated(hostAllowlist, 'pinpool-host-allowlist');

/**
 * The service's own dependencies (fastify, prom-client) are optional peers of pinpool: the
 * allocator library and `pinpool info` install and run without a web framework. This module
 * loads neither; it says which are missing and the one command that installs them, for the
 * CLI (before `serve` loads the service) and for pinpool/server (server/requires.ts).
 */
import { createRequire } from 'node:module';

/** What the service imports, besides pinpool itself. */
export const SERVICE_PACKAGES = ['fastify', 'prom-client'] as const;

/** The command a user pastes into the project that installed pinpool. */
export const SERVICE_INSTALL_COMMAND = `npm install ${SERVICE_PACKAGES.join(' ')}`;

/** The service packages this copy of pinpool cannot resolve, in SERVICE_PACKAGES order. */
export function missingServicePackages(): string[] {
  const resolve = createRequire(__filename).resolve;
  return SERVICE_PACKAGES.filter((name) => {
    try {
      resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * One line for a person: who needs what, what is missing, and the command, last, to paste.
 *
 * @example
 * servicePackagesMessage('pinpool serve', ['fastify']);
 * // 'pinpool serve needs fastify and prom-client (not installed: fastify); install them with: npm install fastify prom-client'
 */
export function servicePackagesMessage(who: string, missing: readonly string[]): string {
  return `${who} needs ${SERVICE_PACKAGES.join(' and ')} (not installed: ${missing.join(', ')}); install them with: ${SERVICE_INSTALL_COMMAND}`;
}

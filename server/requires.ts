/**
 * Imported first by pinpool/server: says what to install when a service package is missing,
 * instead of a bare "Cannot find module" from deep inside the service. (The CLI checks the same
 * list itself, before `serve` loads anything: server/cli.ts.)
 */
import { ErrorCode, PinpoolError } from '../src/boundary/errors.js';
import { missingServicePackages, servicePackagesMessage } from './service-packages.js';

const missing = missingServicePackages();
if (missing.length > 0) {
  throw new PinpoolError(
    ErrorCode.UNAVAILABLE,
    `pinpool: ${servicePackagesMessage('the service (pinpool/server, pinpool serve)', missing)}`,
  );
}

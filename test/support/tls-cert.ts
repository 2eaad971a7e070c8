/**
 * A throwaway self-signed certificate for 127.0.0.1 and localhost, made with the `openssl` CLI, so
 * that a loopback server (the GitHub fake's `tls` option) can stand behind `HTTPS_PROXY` the way
 * api.github.com does. Give `certPath` to a child process as `NODE_EXTRA_CA_CERTS`, or `cert` to a
 * client as its `ca`.
 *
 * @example
 * const tls = await selfSignedCert();
 * const github = await startGitHubFake({ tls });
 * // child env: { NODE_EXTRA_CA_CERTS: tls.certPath, GITHUB_API_URL: github.url }
 * await tls.remove();
 */

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface SelfSignedCert {
  key: string;
  cert: string;
  /** PEM file of the certificate, which is its own CA. */
  certPath: string;
  /** Deletes the temporary directory holding the files. */
  remove(): Promise<void>;
}

export class TlsCertError extends Error {
  readonly code = 'ERR_TLS_CERT_OPENSSL';

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TlsCertError';
  }
}

const run = promisify(execFile);

/**
 * Generates a one-day P-256 certificate; throws `ERR_TLS_CERT_OPENSSL` if openssl is missing or
 * fails.
 */
export async function selfSignedCert(): Promise<SelfSignedCert> {
  const dir = await mkdtemp(join(tmpdir(), 'tls-cert-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  const args = [
    ['req', '-x509', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1'],
    ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
    ['-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    ['-keyout', keyPath, '-out', certPath],
  ].flat();
  try {
    await run('openssl', args);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new TlsCertError('openssl could not create a test certificate', { cause: error });
  }
  const [key, cert] = await Promise.all([readFile(keyPath, 'utf8'), readFile(certPath, 'utf8')]);
  return { key, cert, certPath, remove: () => rm(dir, { recursive: true, force: true }) };
}

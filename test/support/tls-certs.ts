import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './test-server.js';

/** A certificate made in the test with openssl: its files, PEM text and SHA-256 fingerprint of the DER. */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** Lower-case hex SHA-256 of the DER, as Sluice identifies an X.509 device. */
  fingerprint: string;
}

/** A self-signed certificate for `commonName` (with 127.0.0.1 and localhost as names), in a temp dir. */
export function makeCertificate(commonName = 'localhost', dir = tempDir('sluice-tls-')): TestCertificate {
  const base = path.join(dir, commonName.replace(/[^a-z0-9-]/gi, '_'));
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${commonName}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'pipe' });
  const cert = fs.readFileSync(certFile, 'utf8');
  return { certFile, keyFile, cert, key: fs.readFileSync(keyFile, 'utf8'), fingerprint: fingerprintOf(cert) };
}

export function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();
}

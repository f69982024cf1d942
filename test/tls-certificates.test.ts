import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { TlsCertificates } from '../server/src/tls-certificates.js';
import { makeCertificate } from './support/tls-certs.js';
import { capturingLogger, tempDir, waitFor } from './support/test-server.js';

/** --tls-cert/--tls-key: checked at start, reloaded on SIGHUP and on a file change, a bad new pair never taken. */
describe('TLS certificates', () => {
  const opened: TlsCertificates[] = [];
  afterEach(() => { for (const c of opened.splice(0)) c.close(); });
  const open = (certFile: string, keyFile: string) => {
    const { logger, lines } = capturingLogger();
    const certs = new TlsCertificates({ certFile, keyFile, mqttPort: 0, https: false }, logger);
    opened.push(certs);
    return { certs, lines };
  };

  it('refuses to start with a missing file, a file that is not PEM, or a key of another certificate', () => {
    const dir = tempDir();
    const a = makeCertificate('a', dir);
    const b = makeCertificate('b', dir);
    expect(() => open(`${dir}/missing.crt`, a.keyFile)).toThrow(/--tls-cert .*missing\.crt: ENOENT/);
    fs.writeFileSync(`${dir}/junk.crt`, 'not a certificate');
    expect(() => open(`${dir}/junk.crt`, a.keyFile)).toThrow(/--tls-cert .*junk\.crt: not a PEM certificate/);
    expect(() => open(a.certFile, a.certFile)).toThrow(/--tls-key .*: not a PEM private key/);
    expect(() => open(a.certFile, b.keyFile)).toThrow(/is not the key of --tls-cert/);
    expect(open(a.certFile, a.keyFile).certs.pair.cert.toString()).toBe(a.cert);
  });

  it('takes a new pair on SIGHUP, and keeps the old one when the new files do not load', () => {
    const dir = tempDir();
    const a = makeCertificate('a', dir);
    const b = makeCertificate('b', dir);
    const { certs, lines } = open(a.certFile, a.keyFile);
    const seen: string[] = [];
    certs.onChange((pair) => seen.push(pair.cert.toString()));
    certs.watch();
    // Half replaced: b's certificate with a's key. Not taken.
    fs.copyFileSync(b.certFile, a.certFile);
    process.emit('SIGHUP', 'SIGHUP');
    expect(certs.pair.cert.toString()).toBe(a.cert);
    expect(lines.find((l) => l.msg === 'TLS certificate not reloaded: keeping the one in use')).toMatchObject({ why: 'SIGHUP', err: expect.stringMatching(/not the key/) });
    fs.copyFileSync(b.keyFile, a.keyFile);
    process.emit('SIGHUP', 'SIGHUP');
    expect(certs.pair.cert.toString()).toBe(b.cert);
    expect(seen).toEqual([b.cert]);
    // The same files again: nothing to tell the servers.
    expect(certs.reload('test')).toBe(false);
    expect(seen).toHaveLength(1);
  });

  it('reloads by itself when the files change', async () => {
    const dir = tempDir();
    const a = makeCertificate('a', dir);
    const b = makeCertificate('b', dir);
    const { certs } = open(a.certFile, a.keyFile);
    certs.watch();
    fs.writeFileSync(a.keyFile, fs.readFileSync(b.keyFile));
    fs.writeFileSync(a.certFile, fs.readFileSync(b.certFile));
    await waitFor('the new certificate in use', () => (certs.pair.cert.toString() === b.cert ? true : undefined), 5000);
  });

  it('stops listening for SIGHUP when closed', () => {
    const dir = tempDir();
    const a = makeCertificate('a', dir);
    const before = process.listenerCount('SIGHUP');
    const { certs } = open(a.certFile, a.keyFile);
    certs.watch();
    expect(process.listenerCount('SIGHUP')).toBe(before + 1);
    certs.close();
    expect(process.listenerCount('SIGHUP')).toBe(before);
  });
});

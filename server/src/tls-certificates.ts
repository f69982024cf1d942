import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import type { TlsConfig } from './config.js';
import type { Logger } from './logger.js';

/** The certificate and key as the TLS servers take them. */
export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/**
 * The TLS certificate of --tls-cert/--tls-key: read at start (a bad pair fails the start), and
 * read again on SIGHUP or when either file changes. A new pair that does not load (half written,
 * a key of another certificate) is logged and the servers keep the one they have.
 */
export class TlsCertificates {
  private current: TlsPair;
  private readonly listeners: ((pair: TlsPair) => void)[] = [];
  private readonly watchers: fs.FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private readonly onSighup = () => this.reload('SIGHUP');

  constructor(private readonly config: TlsConfig, private readonly logger: Logger) {
    this.current = readPair(config);
  }

  get pair(): TlsPair {
    return this.current;
  }

  /** Called with each pair that loaded after the first. */
  onChange(listener: (pair: TlsPair) => void): void {
    this.listeners.push(listener);
  }

  /** Starts watching the files and SIGHUP. */
  watch(): void {
    process.on('SIGHUP', this.onSighup);
    for (const file of new Set([this.config.certFile, this.config.keyFile])) {
      try {
        // An editor or certbot replaces the file: a burst of events, one reload after it.
        const watcher = fs.watch(file, () => {
          clearTimeout(this.debounce);
          this.debounce = setTimeout(() => this.reload('file change'), 200);
        });
        watcher.on('error', () => watcher.close());
        this.watchers.push(watcher);
      } catch (err) {
        this.logger.warn({ file, err: (err as Error).message }, 'cannot watch a TLS file: it is reloaded on SIGHUP only');
      }
    }
  }

  /** Reads the files again; true when the servers got the new pair. */
  reload(why: string): boolean {
    let pair: TlsPair;
    try {
      pair = readPair(this.config);
    } catch (err) {
      this.logger.error({ why, err: (err as Error).message }, 'TLS certificate not reloaded: keeping the one in use');
      return false;
    }
    if (pair.cert.equals(this.current.cert) && pair.key.equals(this.current.key)) return false;
    this.current = pair;
    for (const listener of this.listeners) listener(pair);
    this.logger.info({ why, ...describeCertificate(pair.cert) }, 'TLS certificate reloaded');
    return true;
  }

  close(): void {
    process.off('SIGHUP', this.onSighup);
    clearTimeout(this.debounce);
    for (const watcher of this.watchers.splice(0)) watcher.close();
  }
}

function readPair(config: TlsConfig): TlsPair {
  const cert = readFile(config.certFile, '--tls-cert');
  const key = readFile(config.keyFile, '--tls-key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`--tls-cert ${config.certFile}: not a PEM certificate (${(err as Error).message})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`--tls-key ${config.keyFile}: not a PEM private key (${(err as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`--tls-key ${config.keyFile} is not the key of --tls-cert ${config.certFile}`);
  return { cert, key };
}

function readFile(file: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function describeCertificate(cert: Buffer): { subject: string; validTo: string } {
  const x509 = new X509Certificate(cert);
  return { subject: x509.subject.replaceAll('\n', ', '), validTo: x509.validTo };
}

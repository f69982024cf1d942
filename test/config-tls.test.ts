import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../server/src/config.js';

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(argv, env).config;

describe('TLS options', () => {
  it('has no TLS without a certificate', () => {
    expect(load([]).tls).toBeUndefined();
  });

  it('listens for MQTT over TLS on 8883 once a certificate and key are given, HTTPS only when asked', () => {
    expect(load(['--tls-cert', 'c.pem', '--tls-key', 'k.pem']).tls).toEqual({ certFile: path.resolve('c.pem'), keyFile: path.resolve('k.pem'), mqttPort: 8883, https: false });
    expect(load([], { TLS_CERT: 'c.pem', TLS_KEY: 'k.pem', MQTT_TLS_PORT: '0', HTTP_TLS: 'on' }).tls).toEqual({
      certFile: path.resolve('c.pem'), keyFile: path.resolve('k.pem'), mqttPort: 0, https: true,
    });
    expect(load(['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--mqtt-tls-port', '18883'], { MQTT_TLS_PORT: '1' }).tls?.mqttPort).toBe(18883);
  });

  const bad: [string[], RegExp][] = [
    [['--tls-cert', 'c.pem'], /^--tls-key \/ TLS_KEY: needed with --tls-cert$/],
    [['--tls-key', 'k.pem'], /^--tls-cert \/ TLS_CERT: needed with --tls-key$/],
    [['--mqtt-tls-port', '8883'], /^--mqtt-tls-port \/ MQTT_TLS_PORT: needs --tls-cert and --tls-key$/],
    [['--http-tls', 'on'], /^--http-tls \/ HTTP_TLS: needs --tls-cert and --tls-key$/],
    [['--http-tls', 'yes'], /^--http-tls \/ HTTP_TLS: http-tls must be on or off$/],
    [['--tls-cert', 'c', '--tls-key', 'k', '--mqtt-tls-port', '65536'], /^--mqtt-tls-port \/ MQTT_TLS_PORT: mqtt-tls-port must be 0\.\.65535$/],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(' ')}`, () => {
      expect(() => load(argv)).toThrow(ConfigError);
      expect(() => load(argv)).toThrow(message);
    });
  }
});

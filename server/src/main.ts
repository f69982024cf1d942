import { ConfigError, helpText, loadConfig } from './config.js';
import { StartupError } from './errors.js';
import { createLogger } from './logger.js';
import { startDemoFleet, type DemoFleet } from './demo-fleet.js';
import { startSluice } from './sluice.js';

/** `npm start`: read config, start Sluice, stop cleanly on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  // Everything Sluice writes (log, database with device tokens, offsets, the admin token) is for
  // its owner only.
  process.umask(0o077);
  let parsed;
  try {
    parsed = loadConfig(process.argv.slice(2), process.env, process.stdout.isTTY === true);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`sluice: ${err.message}\n\n${helpText()}\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  const { config } = parsed;
  const logger = createLogger(config.logLevel, config.prettyLogs);
  const sluice = await startSluice(config, logger);
  logger.info({ mqtt: sluice.ports.mqtt, http: sluice.ports.http, dataDir: config.dataDir }, 'Sluice is up');
  logger.info(`dashboard: http://localhost:${sluice.ports.http}/`);
  // A generated token is printed once, when it is made; after that the log never carries it.
  if (sluice.adminTokenGenerated) logger.info(`admin token (generated, stored in the data dir): ${sluice.adminToken}`);
  else logger.info(config.adminToken ? 'admin token: as configured (--admin-token / ADMIN_TOKEN)' : `admin token: in ${config.dataDir}/admin-token`);
  const demo: DemoFleet | undefined = config.demo ? startDemoFleet(sluice.ports, sluice.adminToken, logger.child({ component: 'demo' })) : undefined;

  let signals = 0;
  const shutdown = (signal: string) => {
    if (++signals > 1) {
      logger.warn('second signal: exiting without a clean stop');
      process.exit(1);
    }
    logger.info({ signal }, 'stopping');
    (demo ? demo.stop() : Promise.resolve(undefined)).then(() => sluice.stop()).then(() => {
      logger.info('stopped cleanly');
      process.exit(0);
    }, (err: unknown) => {
      logger.fatal({ err }, 'error while stopping');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  // A reason the operator can fix is said alone; anything else with its stack, for a bug report.
  const text = err instanceof StartupError ? err.message : ((err as Error).stack ?? String(err));
  process.stderr.write(`sluice: failed to start: ${text}\n`);
  process.exit(1);
});

# Sluice in one container: MQTT on 1883, HTTP (REST, dashboard, socket.io) on 8080, state in /app/data.
# Two stages: the first compiles the native SQLite module and builds the dashboard with every
# dependency installed; the second is Node with the production dependencies, the source and the
# built dashboard — no compiler, no dev dependencies — and runs as the unprivileged `node` user.

FROM node:24-bookworm-slim AS build
# better-sqlite3 is a native module: npm ci uses its prebuilt binary when one can be downloaded
# and compiles it from source otherwise, which needs python3, make and a C++ compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, so editing the source does not re-run npm ci.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard ./dashboard
RUN node dashboard/build.mjs \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    DATA_DIR=/app/data \
    MQTT_PORT=1883 \
    HTTP_PORT=8080
WORKDIR /app
# Everything but the data dir belongs to root: the process can read its code, not change it.
COPY --from=build /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY server ./server
COPY devices-sim ./devices-sim
COPY rules ./rules
COPY --from=build /app/dashboard/index.html /app/dashboard/favicon.svg ./dashboard/
COPY --from=build /app/dashboard/dist ./dashboard/dist
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 1883 8080
VOLUME /app/data
# Asks /healthz on the port this Sluice listens on (ports.json in the data dir, else HTTP_PORT).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 CMD ["node", "server/src/healthcheck.mjs"]
# What `npm start` runs, without npm: node itself gets the signals `docker stop` sends, and stops
# cleanly (flush the log, close the database, exit 0).
CMD ["node", "--max-semi-space-size=64", "--import", "tsx", "server/src/main.ts"]

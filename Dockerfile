# Sluice in one container: MQTT on 1883, HTTP (REST, dashboard, socket.io) on 8080, state in /app/data.
FROM node:20-bookworm-slim

# better-sqlite3 is a native module: npm ci uses its prebuilt binary when one can be downloaded
# and compiles it from source otherwise, which needs python3, make and a C++ compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so editing the source does not re-run npm ci. `npm start` runs the
# TypeScript source through tsx; dev dependencies stay because the simulator service runs from
# this image too and needs the mqtt client.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY . .

ENV DATA_DIR=/app/data \
    MQTT_PORT=1883 \
    HTTP_PORT=8080 \
    npm_config_script_shell=/bin/bash
# Why bash: npm runs a script through `sh -c`, and Debian's sh (dash) dies on the SIGTERM that
# `docker stop` sends instead of passing it on, so Sluice would be killed without flushing its
# log. bash runs the single command in place of itself, so the signal reaches Sluice, which
# stops cleanly (flush the log, close the database, exit 0).
EXPOSE 1883 8080
VOLUME /app/data

CMD ["npm", "start"]

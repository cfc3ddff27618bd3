# `trustsync run` in a container: one flow file, mounted at /config/flow.yaml; secrets come in as
# environment variables the flow file names (${PG_PASSWORD}, …). Several replicas of one flow share
# its consumer group. The metrics port must listen beyond loopback here: set metrics.host 0.0.0.0.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY . .
RUN sh deploy/runner-files.sh /runner

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /runner /app
# Not root: the image's own unprivileged user.
USER node
ENV NODE_ENV=production
EXPOSE 9464
# Ready once the flow has joined its consumer group and reaches its destination.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.TRUSTSYNC_METRICS_PORT||9464)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "/app/bin/trustsync.js"]
CMD ["run", "--config", "/config/flow.yaml"]

# Builds the `switchboard` binary and a small runtime image (used by docker-compose.yml).
#
# The image is built with the package trait `MongoDB`: the MongoDB store (MONGODB_URL) links the MongoDB C
# driver, so the build stage needs its headers (libmongoc-dev, which pulls libbson-dev) and the runtime stage its
# shared libraries. The Kibana saved objects (deploy/kibana) ride along for `switchboard kibana import`.
ARG SWIFT_VERSION=6.3
FROM swift:${SWIFT_VERSION}-noble AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-dev libmongoc-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest names the test targets too, so the whole tree is needed (see .dockerignore).
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --traits MongoDB --product switchboard --static-swift-stdlib \
 && cp "$(swift build -c release --traits MongoDB --show-bin-path)/switchboard" /usr/local/bin/switchboard

FROM ubuntu:24.04
# Ubuntu 24.04 ships the C driver's libraries under their 64-bit time_t names (libmongoc-1.0-0t64,
# libbson-1.0-0t64), which provide libmongoc-1.0-0 and libbson-1.0-0; the fallback covers a base without them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-0 ca-certificates tzdata curl \
 && (apt-get install -y --no-install-recommends libmongoc-1.0-0t64 libbson-1.0-0t64 \
     || apt-get install -y --no-install-recommends libmongoc-1.0-0 libbson-1.0-0) \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 1001 --home-dir /data switchboard \
 && mkdir -p /data && chown switchboard /data
COPY --from=build /usr/local/bin/switchboard /usr/local/bin/switchboard
# Dashboards and data views: `switchboard kibana import --dir /usr/share/switchboard/kibana`.
COPY deploy/kibana /usr/share/switchboard/kibana
USER switchboard
WORKDIR /data
ENV SWITCHBOARD_HOST=0.0.0.0 SWITCHBOARD_DATABASE=/data/switchboard.sqlite
EXPOSE 3001
ENTRYPOINT ["switchboard"]
CMD ["serve"]

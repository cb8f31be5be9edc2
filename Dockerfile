# Builds the `switchboard` binary and a small runtime image (used by docker-compose.yml).
ARG SWIFT_VERSION=6.3
FROM swift:${SWIFT_VERSION}-noble AS build
RUN apt-get update && apt-get install -y --no-install-recommends libsqlite3-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest names the test targets too, so the whole tree is needed (see .dockerignore).
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product switchboard --static-swift-stdlib \
 && cp "$(swift build -c release --show-bin-path)/switchboard" /usr/local/bin/switchboard

FROM ubuntu:24.04
RUN apt-get update && apt-get install -y --no-install-recommends libsqlite3-0 ca-certificates tzdata curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 1001 --home-dir /data switchboard \
 && mkdir -p /data && chown switchboard /data
COPY --from=build /usr/local/bin/switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /data
ENV SWITCHBOARD_HOST=0.0.0.0 SWITCHBOARD_DATABASE=/data/switchboard.sqlite
EXPOSE 3001
ENTRYPOINT ["switchboard"]
CMD ["serve"]

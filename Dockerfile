# Scalpel on Debian 12 with Swift, OpenBLAS and HDF5 (docs/cluster.md).
#   docker build -t scalpel .
#   docker run --rm -v /shared:/shared scalpel scalpel inspect
# The Swift toolchain is downloaded from swift.org. To use a toolchain already on the build machine
# instead (this repository's machines have one at /opt/swift), copy it into the build context
# (`cp -a /opt/swift ./swift-toolchain`) and build with --build-arg SWIFT_LOCAL=1.
FROM debian:12-slim AS build
ARG SWIFT_VERSION=6.3
ARG SWIFT_LOCAL=0
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates curl binutils git gnupg2 libc6-dev libcurl4-openssl-dev libedit2 libgcc-12-dev \
        libpython3-dev libsqlite3-0 libstdc++-12-dev libxml2-dev libz3-dev pkg-config tzdata zlib1g-dev \
        libopenblas-dev libhdf5-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN if [ "$SWIFT_LOCAL" = 1 ]; then mv /src/swift-toolchain /opt/swift; else \
        mkdir -p /opt/swift && \
        curl -fsSL "https://download.swift.org/swift-${SWIFT_VERSION}-release/debian12/swift-${SWIFT_VERSION}-RELEASE/swift-${SWIFT_VERSION}-RELEASE-debian12.tar.gz" \
        | tar -xz -C /opt/swift --strip-components=1; fi
ENV PATH=/opt/swift/usr/bin:$PATH
WORKDIR /src
RUN swift build -c release --product scalpel \
    && install -D "$(swift build -c release --show-bin-path)/scalpel" /usr/local/bin/scalpel \
    && cp -a "$(swift build -c release --show-bin-path)/Scalpel_Scalpel.resources" /usr/local/bin/

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libopenblas0 libhdf5-103-1 libhdf5-hl-100 libcurl4 libxml2 libedit2 libsqlite3-0 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/swift/usr/lib/swift/linux/*.so /usr/lib/swift/linux/
COPY --from=build /usr/local/bin/ /usr/local/bin/
ENV LD_LIBRARY_PATH=/usr/lib/swift/linux
CMD ["scalpel", "--help"]

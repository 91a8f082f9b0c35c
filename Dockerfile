# The worker image for WorkerSource=image: nightcopy preinstalled, so a build downloads no
# source and no packages (VPC endpoints suffice, no NAT gateway). Built and pushed by
# scripts/build-image; CodeBuild runs `nightcopy copy` in it (inline buildspec in template.yaml).
#
# Supply chain (docs/security.md): the base is pinned by digest (the Docker Official Image
# python:3.11-slim-bookworm, Python 3.11.16, as recorded in docker-library/repo-info; a tag alone
# can be moved to other content), every dependency comes from the hashed lock
# requirements/worker.lock (`--require-hashes`, wheels only), and the worker runs as an
# unprivileged user. To move to a newer base, replace tag and digest together with the index
# digest `docker buildx imagetools inspect python:3.11-slim-bookworm` prints.
FROM docker.io/library/python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The worker's user: no password, no login shell; it owns none of the installed code.
RUN groupadd --system --gid 10001 nightcopy \
 && useradd --system --uid 10001 --gid nightcopy --create-home --shell /usr/sbin/nologin nightcopy

# A virtualenv keeps nightcopy's pinned dependencies apart from the image's own Python packages.
# The lock first (its layer is reused while only nightcopy's code changes).
COPY requirements/worker.lock /tmp/worker.lock
RUN python -m venv /opt/nightcopy \
 && /opt/nightcopy/bin/pip install --require-hashes --only-binary :all: -r /tmp/worker.lock \
 && rm /tmp/worker.lock

# nightcopy itself from this checkout: no dependencies, no build isolation, no index (the
# build backend came from the lock), so nothing unhashed is downloaded.
COPY . /tmp/nightcopy-src
RUN /opt/nightcopy/bin/pip install --no-deps --no-build-isolation --no-index /tmp/nightcopy-src \
 && rm -rf /tmp/nightcopy-src \
 && /opt/nightcopy/bin/nightcopy --version

# The RDS certificate authorities, for DSNs with sslmode=verify-full (or verify-ca) that name no
# sslrootcert: fetched and checked against the pinned checksum by scripts/rds-ca-bundle (which
# scripts/build-image runs first), never downloaded unchecked here.
COPY worker-ca/rds-ca-bundle.pem /opt/nightcopy/rds-ca-bundle.pem
ENV NIGHTCOPY_CA_BUNDLE=/opt/nightcopy/rds-ca-bundle.pem

ENV PATH=/opt/nightcopy/bin:$PATH
# numeric, so that a runtime can check "not root" without reading /etc/passwd
USER 10001:10001
WORKDIR /home/nightcopy
CMD ["nightcopy", "--help"]

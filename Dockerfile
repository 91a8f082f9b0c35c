# The worker image for WorkerSource=image: nightcopy preinstalled, so a build downloads no
# source and no packages (VPC endpoints suffice, no NAT gateway). Built and pushed by
# scripts/build-image; CodeBuild runs `nightcopy copy` in it (inline buildspec in template.yaml).
FROM public.ecr.aws/docker/library/python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

COPY . /tmp/nightcopy-src
# A virtualenv keeps nightcopy's pinned dependencies apart from the image's own Python packages.
RUN python -m venv /opt/nightcopy \
 && /opt/nightcopy/bin/pip install --no-cache-dir /tmp/nightcopy-src \
 && rm -rf /tmp/nightcopy-src \
 && /opt/nightcopy/bin/nightcopy --version

ENV PATH=/opt/nightcopy/bin:$PATH
WORKDIR /tmp
CMD ["nightcopy", "--help"]
